// safetensors files (include/fuseblock/io.hpp) and load_params (include/fuseblock/params.hpp).
//
// Format: an 8-byte little-endian header length N, N bytes of JSON
//   {"NAME": {"dtype": "F32", "shape": [2, 3], "data_offsets": [BEGIN, END]}, ...,
//    "__metadata__": {"key": "value"}}
// (padded with spaces), then the data buffer; offsets are relative to the buffer's start. As in the
// reference implementation, the tensors must tile the buffer exactly: no gaps, no overlaps.
#include <algorithm>
#include <bit>
#include <cstring>
#include <tuple>
#include <nlohmann/json.hpp>

#include "fuseblock/error.hpp"
#include "fuseblock/io.hpp"
#include "fuseblock/params.hpp"
#include "params/element_codec.hpp"
#include "params/file_io.hpp"
#include "params/param_slots.hpp"

namespace fuseblock {
namespace {

static_assert(std::endian::native == std::endian::little, "tensor files are read by memcpy on a little-endian host");

constexpr uint64_t kMaxHeaderLen = 100ull << 20;  // the reference implementation's limit
constexpr const char* kMetadataKey = "__metadata__";

struct Entry {
  std::string name;
  std::string dtype;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

// Bytes per element of the dtypes safetensors defines; 0 for one we do not know.
uint64_t dtype_size(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "I8" || d == "U8" || d == "BOOL" || d == "F8_E4M3" || d == "F8_E5M2") return 1;
  return 0;
}

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path) : file_(path) { parse_header(); }

  const std::string& path() const { return file_.path(); }
  const std::vector<Entry>& entries() const { return entries_; }
  const Entry* find(const std::string& name) const {
    for (const Entry& e : entries_)
      if (e.name == name) return &e;
    return nullptr;
  }
  std::string names() const {
    std::string out;
    for (const Entry& e : entries_) out += (out.empty() ? "" : ", ") + e.name;
    return out.empty() ? "(none)" : out;
  }

  Tensor read(const Entry& e) const {
    const std::optional<DType> d = dtype_from_safetensors(e.dtype);
    if (!d)
      throw UserError(path() + ": tensor '" + e.name + "' has dtype " + e.dtype + "; only F32, BF16 and F16 are read",
                      "convert before saving, e.g. tensor.float() in PyTorch");
    return detail::read_elements(file_, data_start_ + e.begin, e.shape, *d, "tensor '" + e.name + "'");
  }

 private:
  [[noreturn]] void fail(const std::string& what, const std::string& hint = {}) const {
    throw UserError(path() + ": " + what, hint);
  }

  void parse_header() {
    const uint64_t size = file_.size();
    if (size < 8)
      fail("truncated: a safetensors file starts with an 8-byte header length, the file has " + std::to_string(size) +
           " bytes");
    unsigned char len_buf[8];
    file_.read_at(0, len_buf, 8, "the header length");
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | len_buf[i];
    if (n > kMaxHeaderLen)
      fail("safetensors header length " + std::to_string(n) + " is implausible (not a safetensors file?)");
    if (n > size - 8)
      fail("truncated: the safetensors header needs " + std::to_string(n) + " bytes, the file has " +
           std::to_string(size - 8) + " after the length");
    std::string text(n, '\0');
    file_.read_at(8, text.data(), n, "the header");
    data_start_ = 8 + n;
    const uint64_t data_size = size - data_start_;

    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      fail(std::string("safetensors header is not valid JSON: ") + e.what());
    }
    if (!j.is_object()) fail("safetensors header is not a JSON object");
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == kMetadataKey) continue;
      entries_.push_back(parse_entry(it.key(), it.value(), data_size));
    }

    // The tensors must tile [0, data_size) in order of their offsets.
    std::vector<const Entry*> order;
    for (const Entry& e : entries_) order.push_back(&e);
    std::stable_sort(order.begin(), order.end(),
                     [](const Entry* a, const Entry* b) { return std::tie(a->begin, a->end) < std::tie(b->begin, b->end); });
    uint64_t at = 0;
    const Entry* prev = nullptr;
    for (const Entry* e : order) {
      if (e->begin < at)
        fail("tensors '" + prev->name + "' and '" + e->name + "' overlap (data_offsets " + offsets(*prev) + " and " +
             offsets(*e) + ")");
      if (e->begin > at)
        fail("a gap of " + std::to_string(e->begin - at) + " bytes before tensor '" + e->name + "' (data_offsets " +
             offsets(*e) + ")");
      at = e->end;
      prev = e;
    }
    if (at != data_size)
      fail(std::to_string(data_size - at) + " bytes after the last tensor's data (corrupt file?)");
  }

  static std::string offsets(const Entry& e) {
    std::string out = "[";
    out += std::to_string(e.begin);
    out += ", ";
    out += std::to_string(e.end);
    return out + "]";
  }

  Entry parse_entry(const std::string& name, const nlohmann::json& v, uint64_t data_size) const {
    const std::string where = "tensor '" + name + "'";
    if (!v.is_object()) fail(where + ": header entry is not an object");
    Entry e;
    e.name = name;
    auto dtype = v.find("dtype");
    if (dtype == v.end() || !dtype->is_string()) fail(where + ": \"dtype\" is missing or not a string");
    e.dtype = dtype->get<std::string>();
    auto shape = v.find("shape");
    if (shape == v.end() || !shape->is_array()) fail(where + ": \"shape\" is missing or not an array");
    for (const auto& d : *shape) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
        fail(where + ": \"shape\" holds something other than a non-negative integer: " + shape->dump());
      e.shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
    }
    auto offs = v.find("data_offsets");
    if (offs == v.end() || !offs->is_array() || offs->size() != 2 || !(*offs)[0].is_number_unsigned() ||
        !(*offs)[1].is_number_unsigned())
      fail(where + ": \"data_offsets\" is missing or not [BEGIN, END] with non-negative integers");
    e.begin = (*offs)[0].get<uint64_t>();
    e.end = (*offs)[1].get<uint64_t>();
    if (e.begin > e.end) fail(where + ": data_offsets " + offsets(e) + " end before they begin");
    if (e.end > data_size)
      fail(where + ": data_offsets " + offsets(e) + " run past the end of the data (" + std::to_string(data_size) +
           " bytes): the file is truncated or corrupt");
    if (uint64_t es = dtype_size(e.dtype)) {
      uint64_t need = detail::checked_nbytes(e.shape, es, path(), where);
      if (e.end - e.begin != need)
        fail(where + " of dtype " + e.dtype + " and shape " + shape_str(e.shape) + " needs " + std::to_string(need) +
             " bytes, its data_offsets " + offsets(e) + " hold " + std::to_string(e.end - e.begin));
    }
    return e;
  }

  detail::InputFile file_;
  std::vector<Entry> entries_;
  uint64_t data_start_ = 0;
};

}  // namespace

std::map<std::string, Tensor> load_safetensors(const std::string& path) {
  SafetensorsFile f(path);
  std::map<std::string, Tensor> out;
  for (const Entry& e : f.entries()) out.emplace(e.name, f.read(e));
  return out;
}

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::vector<detail::Chunk> chunks(1);
  std::vector<std::vector<uint16_t>> converted(tensors.size());  // 16-bit data, alive until written
  uint64_t at = 0;
  for (const auto& [name, t] : tensors) {
    if (name.empty() || name == kMetadataKey)
      throw UserError(path + ": cannot save a tensor named '" + name + "' in a safetensors file");
    if (t.numel() != numel(t.shape()))
      throw UserError(path + ": cannot save tensor '" + name + "': it has no data (shape " + shape_str(t.shape()) + ", " +
                      std::to_string(t.numel()) + " elements)");
    const detail::Chunk data = detail::element_bytes(t, converted[chunks.size() - 1]);
    uint64_t bytes = data.size;
    header[name] = {{"dtype", dtype_info(t.dtype()).safetensors_name}, {"shape", t.shape()}, {"data_offsets", {at, at + bytes}}};
    chunks.push_back(data);
    at += bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    throw UserError(path + ": cannot write the safetensors header (tensor names must be UTF-8): " + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data 8-byte aligned, as the reference does
  char len_buf[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len_buf[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  std::string head(len_buf, 8);
  head += text;
  chunks[0] = {head.data(), head.size()};
  detail::write_file_atomically(path, chunks);
}

namespace detail {
Tensor load_safetensors_tensor(const std::string& path, const std::string& name) {
  SafetensorsFile f(path);
  if (name.empty()) {
    if (f.entries().size() != 1)
      throw UserError(path + ": holds " + std::to_string(f.entries().size()) + " tensors (" + f.names() +
                          "), so the one to read must be named",
                      "name it as " + path + ":NAME");
    return f.read(f.entries().front());
  }
  const Entry* e = f.find(name);
  if (!e) throw UserError(path + ": has no tensor '" + name + "'", "it holds: " + f.names());
  return f.read(*e);
}
}  // namespace detail

Params load_params(const Pipeline& p, const std::string& path) {
  using Need = detail::ParamSlot::Need;
  SafetensorsFile f(path);
  Params out;
  for (const detail::ParamSlot& s : detail::param_slots(p)) {
    if (s.need == Need::Absent) continue;  // extra keys are ignored
    const Entry* e = f.find(s.name);
    if (!e) {
      if (s.need == Need::Optional) continue;
      throw UserError(path + ": " + s.name + " is missing (expected shape " + shape_str(s.shape) + ")",
                      "the file holds: " + f.names());
    }
    // The slot's own dtype (the norm's may be F32 in a bf16/f16 block), or F32 rounded to it as
    // PyTorch's module.to(dtype) would.
    const DType storage = s.dtype;
    const bool dtype_ok = e->dtype == "F32" || e->dtype == dtype_info(storage).safetensors_name;
    if (e->shape != s.shape || !dtype_ok) {
      if (s.need == Need::Optional) continue;  // not read by this block: ignored like any extra key
      if (e->shape == s.shape && !dtype_from_safetensors(e->dtype)) f.read(*e);  // throws the dtype error
      if (e->shape == s.shape)
        throw UserError(path + ": " + s.name + " has dtype " + e->dtype + ", but the block stores " + dtype_name(storage),
                        storage == DType::F32 ? std::string("save it as F32")
                                              : std::string("save it as ") + dtype_info(storage).safetensors_name +
                                                    " or F32 (F32 is rounded)");
      throw UserError(path + ": " + s.name + " has shape " + shape_str(e->shape) + ", expected " + shape_str(s.shape));
    }
    s.of(out) = rounded_to(f.read(*e), storage);
  }
  return out;
}

}  // namespace fuseblock
