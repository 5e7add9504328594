// A tiny printer for emitted CUDA C++: lines with indentation, and exact literals. Emitted
// source must be deterministic (golden tests compare it byte for byte), so every number goes
// through these helpers: floats as hex literals, so the device sees the host's exact value.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace fuseblock::cuda {

class SourceWriter {
 public:
  template <class... Args>
  void line(fmt::format_string<Args...> f, Args&&... args) {
    out_.append(static_cast<size_t>(indent_) * 2, ' ');
    out_ += fmt::format(f, std::forward<Args>(args)...);
    out_ += '\n';
  }
  void blank() { out_ += '\n'; }
  void raw(std::string_view text) { out_ += text; }  // pasted as is (headers, fixed bodies)
  void open(std::string_view head) {  // "head {" and indent
    line("{} {{", head);
    ++indent_;
  }
  void close(std::string_view tail = "}") {
    --indent_;
    line("{}", tail);
  }
  const std::string& str() const { return out_; }

 private:
  std::string out_;
  int indent_ = 0;
};

// A float32 literal with exactly this value: "0x1.8p-1f", "-0x0p+0f", or an __int_as_float for
// NaN and infinities.
std::string float_literal(float v);
// A double literal with exactly this value.
std::string double_literal(double v);
// An unsigned 64-bit literal: "123ull".
std::string u64_literal(uint64_t v);

}  // namespace fuseblock::cuda
