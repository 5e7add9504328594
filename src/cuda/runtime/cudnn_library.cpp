// Run-time loading of libcudnn (cudnn_library.hpp).
#include "cuda/runtime/cudnn_library.hpp"

#include <dlfcn.h>
#include <fmt/format.h>

#include <cstdlib>

#include "cuda/runtime/driver_api.hpp"

namespace fuseblock::cuda {

std::vector<std::string> cudnn_library_candidates() {
  if (const char* chosen = std::getenv("FUSEBLOCK_CUDNN_LIBRARY"); chosen && *chosen) return {chosen};
  const std::string name = "libcudnn.so.9";
  std::vector<std::string> out = {name};
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
    if (const char* home = std::getenv(var); home && *home) {
      out.push_back(std::string(home) + "/lib64/" + name);
      out.push_back(std::string(home) + "/lib/" + name);
    }
  out.push_back("/usr/local/cuda/lib64/" + name);
  out.push_back("/usr/local/cuda/lib/" + name);
  return out;
}

std::string cudnn_version_string(size_t v) {
  // cuDNN 9 encodes major * 10000 + minor * 100 + patch; cuDNN 8 used major * 1000.
  if (v >= 90000) return fmt::format("{}.{}.{}", v / 10000, v / 100 % 100, v % 100);
  return fmt::format("{}.{}.{}", v / 1000, v / 100 % 10, v % 100);
}

CudnnLibrary load_cudnn_library(const std::vector<std::string>& candidates, std::string* why) {
  std::string tried;
  for (const std::string& file : candidates) {
    void* lib = dlopen_first({file}, &tried);
    if (!lib) continue;
    using GetVersion = size_t (*)();
    auto get_version = reinterpret_cast<GetVersion>(dlsym(lib, "cudnnGetVersion"));
    if (!get_version) {
      tried += "\n  " + file + ": not cuDNN (no cudnnGetVersion)";
      dlclose(lib);
      continue;
    }
    const size_t version = get_version();
    if (version / 10000 != 9) {
      tried += "\n  " + file + ": cuDNN " + cudnn_version_string(version) + ", and fuseblock needs cuDNN 9";
      dlclose(lib);
      continue;
    }
    CudnnLibrary out;
    out.handle = lib;
    out.version = version;
    Dl_info info{};
    out.path = dladdr(reinterpret_cast<void*>(get_version), &info) && info.dli_fname ? info.dli_fname : file;
    return out;
  }
  if (why)
    *why =
        "libcudnn.so.9 (cuDNN 9) could not be loaded: install it (pip install nvidia-cudnn-cu12 or "
        "nvidia-cudnn-cu13, or the distribution's libcudnn9 package) and put its lib folder on "
        "LD_LIBRARY_PATH, or set FUSEBLOCK_CUDNN_LIBRARY to the file. Tried:" +
        tried;
  return {};
}

const CudnnLibrary* cudnn_library(std::string* why) {
  struct Loaded {
    CudnnLibrary lib;
    std::string why;
  };
  static const Loaded loaded = [] {
    Loaded l;
    l.lib = load_cudnn_library(cudnn_library_candidates(), &l.why);
    return l;
  }();
  if (loaded.lib.handle) return &loaded.lib;
  if (why) *why = loaded.why;
  return nullptr;
}

}  // namespace fuseblock::cuda
