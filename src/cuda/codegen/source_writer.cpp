// Exact literals for emitted source (source_writer.hpp).
#include "cuda/codegen/source_writer.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>

namespace fuseblock::cuda {

std::string float_literal(float v) {
  if (std::isnan(v) || std::isinf(v)) {
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    if (std::isnan(v)) bits = 0x7fc00000u | (bits & 0x80000000u);
    char buf[48];
    std::snprintf(buf, sizeof buf, "__int_as_float(0x%08x)", bits);
    return buf;
  }
  char buf[48];
  std::snprintf(buf, sizeof buf, "%af", static_cast<double>(v));
  return buf;
}

std::string double_literal(double v) {
  if (std::isnan(v)) return "__longlong_as_double(0x7ff8000000000000ll)";
  if (std::isinf(v)) return v > 0 ? "__longlong_as_double(0x7ff0000000000000ll)" : "__longlong_as_double(0xfff0000000000000ll)";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%a", v);
  return buf;
}

std::string u64_literal(uint64_t v) { return std::to_string(v) + "ull"; }

}  // namespace fuseblock::cuda
