// NumPy .npy files, float32 ('<f4') or float16 ('<f2') little-endian in C order (include/fuseblock/io.hpp).
//
// Format (numpy.lib.format): the magic "\x93NUMPY", a major and a minor version byte, the header
// length (2 bytes little-endian in version 1.0, 4 bytes in 2.0 and 3.0), then the header: a Python
// dict literal such as {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with
// spaces and ended by '\n', then the raw data.
#include <bit>
#include <cstring>
#include <optional>

#include "fuseblock/error.hpp"
#include "fuseblock/io.hpp"
#include "ir/checked.hpp"
#include "params/element_codec.hpp"
#include "params/file_io.hpp"

namespace fuseblock {
namespace {

static_assert(std::endian::native == std::endian::little, "tensor files are read by memcpy on a little-endian host");

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
constexpr uint32_t kMaxHeaderLen = 1u << 20;  // numpy's own headers are a few hundred bytes
constexpr size_t kMaxNesting = 64;             // tuples inside tuples in a header

// A value of the Python literal subset that .npy headers use.
struct PyValue {
  enum Kind { Str, Bool, None, Int, Tuple } kind = None;
  std::string str;
  bool boolean = false;
  int64_t integer = 0;
  std::vector<PyValue> items;
};

// A parser over the header text; errors name the file and the offending spot.
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& file) : s_(text), file_(file) {}

  std::vector<std::pair<std::string, PyValue>> parse_dict() {
    std::vector<std::pair<std::string, PyValue>> out;
    expect('{');
    skip_ws();
    while (peek() != '}') {
      PyValue key = parse_value();
      if (key.kind != PyValue::Str) fail("a dict key that is not a string");
      expect(':');
      out.emplace_back(key.str, parse_value());
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        skip_ws();
      } else if (peek() != '}') {
        fail("expected ',' or '}'");
      }
    }
    ++pos_;
    skip_ws();
    if (pos_ != s_.size()) fail("text after the closing '}'");
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw UserError(file_ + ": malformed .npy header: " + what + " at offset " + std::to_string(pos_) +
                    " of \"" + printable() + "\"");
  }
  std::string printable() const {
    std::string out;
    for (char c : s_) out += (c == '\n') ? std::string("\\n") : std::string(1, c);
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out.size() > 200 ? out.substr(0, 200) + "..." : out;
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  void expect(char c) {
    skip_ws();
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  bool take_word(const char* w) {
    size_t n = std::strlen(w);
    if (s_.compare(pos_, n, w) != 0) return false;
    pos_ += n;
    return true;
  }

  // Iterative: open tuples and lists wait on a stack, so a header of tens of thousands of '('
  // is an error message, not a stack overflow. Their depth is limited as well, since PyValue's
  // destructor recurses (numpy writes depth 1, a shape; structured dtypes a few more).
  PyValue parse_value() {
    std::vector<PyValue> open;  // containers being filled, innermost last
    std::vector<char> closers;  // the character that closes each
    while (true) {
      skip_ws();
      PyValue v;
      const char c = peek();
      if (c == '(' || c == '[') {
        if (open.size() >= kMaxNesting) fail("tuples nested more than " + std::to_string(kMaxNesting) + " deep");
        ++pos_;
        open.emplace_back().kind = PyValue::Tuple;
        closers.push_back(c == '(' ? ')' : ']');
        skip_ws();
        if (peek() != closers.back()) continue;  // the first item follows
        ++pos_;  // an empty one: complete at once
        v = std::move(open.back());
        open.pop_back(), closers.pop_back();
      } else {
        v = parse_scalar();
      }
      // v is complete: it joins the innermost open container, which may end here too.
      while (true) {
        if (open.empty()) return v;
        open.back().items.push_back(std::move(v));
        skip_ws();
        const char close = closers.back();
        if (peek() == ',') {
          ++pos_;
          skip_ws();
          if (peek() != close) break;  // the next item follows
        } else if (peek() != close) {
          fail(std::string("expected ',' or '") + close + "'");
        }
        ++pos_;
        v = std::move(open.back());
        open.pop_back(), closers.pop_back();
      }
    }
  }

  PyValue parse_scalar() {
    PyValue v;
    char c = peek();
    if (c == '\'' || c == '"') {
      v.kind = PyValue::Str;
      ++pos_;
      while (peek() != c) {
        if (pos_ >= s_.size()) fail("an unterminated string");
        if (peek() == '\\') ++pos_;
        if (pos_ >= s_.size()) fail("an unterminated string");
        v.str += s_[pos_++];
      }
      ++pos_;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      v.kind = PyValue::Int;
      bool neg = (c == '-');
      if (neg) ++pos_;
      if (!(peek() >= '0' && peek() <= '9')) fail("expected a digit");
      CheckedInt n = 0;
      while (peek() >= '0' && peek() <= '9') {
        n = n * 10 + (peek() - '0');
        if (!n.ok()) fail("an integer too large");
        ++pos_;
      }
      v.integer = n.value();
      if (peek() == 'L') ++pos_;  // Python 2 long suffix, written by old numpy versions
      if (neg) v.integer = -v.integer;
    } else if (take_word("True")) {
      v.kind = PyValue::Bool;
      v.boolean = true;
    } else if (take_word("False")) {
      v.kind = PyValue::Bool;
    } else if (take_word("None")) {
      v.kind = PyValue::None;
    } else {
      fail("an unexpected character");
    }
    return v;
  }

  const std::string& s_;
  const std::string& file_;
  size_t pos_ = 0;
};

std::string format_shape_tuple(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  out += s.size() == 1 ? ",)" : ")";
  return out;
}

}  // namespace

Tensor load_npy(const std::string& path) {
  detail::InputFile f(path);
  char prefix[10];
  if (f.size() < kMagicLen + 2) throw UserError(path + ": not a .npy file: too short (" + std::to_string(f.size()) + " bytes)");
  f.read_at(0, prefix, kMagicLen + 2, "the .npy magic");
  if (std::memcmp(prefix, kMagic, kMagicLen) != 0)
    throw UserError(path + ": not a .npy file: bad magic (expected \"\\x93NUMPY\")",
                    "write it with numpy.save(), or use a .safetensors file");
  int major = static_cast<unsigned char>(prefix[6]), minor = static_cast<unsigned char>(prefix[7]);
  if (major < 1 || major > 3 || minor != 0)
    throw UserError(path + ": unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor),
                    "versions 1.0, 2.0 and 3.0 are read");
  uint64_t len_bytes = (major == 1) ? 2 : 4;
  unsigned char len_buf[4] = {0, 0, 0, 0};
  f.read_at(kMagicLen + 2, len_buf, len_bytes, "the .npy header length");
  uint32_t header_len = len_buf[0] | (len_buf[1] << 8) | (uint32_t{len_buf[2]} << 16) | (uint32_t{len_buf[3]} << 24);
  if (header_len > kMaxHeaderLen)
    throw UserError(path + ": .npy header length " + std::to_string(header_len) + " is implausible (corrupt file?)");
  uint64_t header_start = kMagicLen + 2 + len_bytes;
  std::string header(header_len, '\0');
  f.read_at(header_start, header.data(), header_len, "the .npy header");

  std::optional<PyValue> descr, fortran, shape_v;
  for (auto& [key, value] : HeaderParser(header, path).parse_dict()) {
    if (key == "descr") descr = value;
    else if (key == "fortran_order") fortran = value;
    else if (key == "shape") shape_v = value;
    else throw UserError(path + ": .npy header has an unexpected key '" + key + "'");
  }
  if (!descr || !fortran || !shape_v)
    throw UserError(path + ": .npy header lacks '" +
                    std::string(!descr ? "descr" : !fortran ? "fortran_order" : "shape") + "'");
  if (descr->kind != PyValue::Str)
    throw UserError(path + ": .npy holds a structured dtype; only float32 ('<f4') and float16 ('<f2') are read",
                    "save a plain array: numpy.save(path, x.astype('<f4'))");
  const std::optional<DType> dtype = dtype_from_npy_descr(descr->str);
  if (!dtype) {
    std::string hint = descr->str == ">f4" || descr->str == ">f2"
                           ? "the data is big-endian; save x.astype('<" + descr->str.substr(1) + "')"
                           : "convert first: numpy.save(path, x.astype(numpy.float32))";
    throw UserError(path + ": .npy dtype '" + descr->str +
                        "' is not supported; only float32 ('<f4') and float16 ('<f2') are read",
                    hint);
  }
  if (fortran->kind != PyValue::Bool) throw UserError(path + ": .npy 'fortran_order' is not True or False");
  if (shape_v->kind != PyValue::Tuple) throw UserError(path + ": .npy 'shape' is not a tuple");
  Shape shape;
  for (const PyValue& d : shape_v->items) {
    if (d.kind != PyValue::Int || d.integer < 0)
      throw UserError(path + ": .npy 'shape' holds something other than a non-negative integer");
    shape.push_back(d.integer);
  }
  if (fortran->boolean) {
    // Column-major data is the same as row-major when at most one dimension exceeds 1.
    int big_dims = 0;
    for (int64_t d : shape) big_dims += (d > 1);
    if (big_dims > 1)
      throw UserError(path + ": .npy array of shape " + shape_str(shape) + " is stored in Fortran order; only C order is read",
                      "save a C-ordered copy: numpy.save(path, numpy.ascontiguousarray(x))");
  }
  const uint64_t elem_bytes = static_cast<uint64_t>(dtype_info(*dtype).bytes);
  uint64_t nbytes = detail::checked_nbytes(shape, elem_bytes, path, "the .npy array");
  uint64_t data_start = header_start + header_len;
  uint64_t have = f.size() - data_start;
  if (have < nbytes)
    throw UserError(path + ": truncated: a " + dtype_info(*dtype).long_name + " array of shape " + shape_str(shape) + " needs " + std::to_string(nbytes) +
                    " bytes of data, the file holds " + std::to_string(have));
  if (have > nbytes)
    throw UserError(path + ": " + std::to_string(have - nbytes) + " unexpected bytes after the data of a " + dtype_info(*dtype).long_name + " array of shape " +
                    shape_str(shape));
  return detail::read_elements(f, data_start, std::move(shape), *dtype, "the .npy data");
}

void save_npy(const std::string& path, const Tensor& t) {
  if (t.numel() != numel(t.shape()))
    throw UserError(path + ": cannot save a tensor with no data (shape " + shape_str(t.shape()) + ", " +
                    std::to_string(t.numel()) + " elements)");
  const char* descr = dtype_info(t.dtype()).npy_descr;
  if (!descr)
    throw UserError(path + ": " + dtype_name(t.dtype()) + " has no .npy type (numpy has no bfloat16)",
                    "write a .safetensors file (it stores BF16), or convert the tensor to f32 first");
  std::string dict = "{'descr': '" + std::string(descr) + "', 'fortran_order': False, 'shape': " + format_shape_tuple(t.shape()) + ", }";
  // Pad with spaces so that the data starts on a 64-byte boundary, as numpy does; '\n' ends it.
  auto padded = [&](size_t prefix) {
    size_t total = prefix + dict.size() + 1;
    return dict + std::string((64 - total % 64) % 64, ' ') + '\n';
  };
  size_t prefix = kMagicLen + 2 + 2;
  std::string header = padded(prefix);
  if (header.size() > 65535) {  // too long for version 1.0's 2-byte length
    prefix = kMagicLen + 2 + 4;
    header = padded(prefix);
  }
  dict = header;
  std::string head(kMagic, kMagicLen);
  head += static_cast<char>(prefix == 10 ? 1 : 2);
  head += '\0';
  uint32_t hl = static_cast<uint32_t>(dict.size());
  head += static_cast<char>(hl & 0xff);
  head += static_cast<char>((hl >> 8) & 0xff);
  if (prefix != 10) {
    head += static_cast<char>((hl >> 16) & 0xff);
    head += static_cast<char>((hl >> 24) & 0xff);
  }
  head += dict;
  std::vector<uint16_t> converted;
  detail::write_file_atomically(path, {{head.data(), head.size()}, detail::element_bytes(t, converted)});
}

}  // namespace fuseblock
