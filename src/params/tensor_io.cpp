// load_tensor / save_tensor: pick the format from the path (include/fuseblock/io.hpp).
#include "fuseblock/error.hpp"
#include "fuseblock/io.hpp"
#include "params/file_io.hpp"

namespace fuseblock {
namespace {

constexpr const char* kSupported = "supported: FILE.npy, FILE.safetensors (one tensor) or FILE.safetensors:NAME";

struct TensorPath {
  enum Format { Npy, Safetensors } format;
  std::string file;
  std::string name;  // safetensors only; empty when not given
};

TensorPath parse_tensor_path(const std::string& path) {
  using detail::ends_with;
  if (ends_with(path, ".npy")) return {TensorPath::Npy, path, {}};
  if (ends_with(path, ".safetensors")) return {TensorPath::Safetensors, path, {}};
  size_t colon = path.rfind(':');
  if (colon != std::string::npos && ends_with(path.substr(0, colon), ".safetensors")) {
    std::string name = path.substr(colon + 1);
    if (name.empty()) throw UserError(path + ": empty tensor name after ':'", kSupported);
    return {TensorPath::Safetensors, path.substr(0, colon), name};
  }
  throw UserError(path + ": unknown tensor file type", kSupported);
}

}  // namespace

std::string detail::tensor_file(const std::string& tensor_path) { return parse_tensor_path(tensor_path).file; }

Tensor load_tensor(const std::string& path) {
  TensorPath tp = parse_tensor_path(path);
  if (tp.format == TensorPath::Npy) return load_npy(tp.file);
  return detail::load_safetensors_tensor(tp.file, tp.name);
}

void save_tensor(const std::string& path, const Tensor& t, const std::string& name) {
  TensorPath tp = parse_tensor_path(path);
  if (tp.format == TensorPath::Npy) return save_npy(tp.file, t);
  save_safetensors(tp.file, {{tp.name.empty() ? name : tp.name, t}});
}

}  // namespace fuseblock
