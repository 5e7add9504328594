// Run-time loading of libcuda and libnvrtc (driver_api.hpp).
#include "cuda/runtime/driver_api.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <vector>

#include "fuseblock/error.hpp"

namespace fuseblock::cuda {
namespace {

#define FB_STRINGIFY_EXPANDED2(x) #x
#define FB_STRINGIFY_EXPANDED(x) FB_STRINGIFY_EXPANDED2(x)

// Resolves every listed symbol; returns the first missing name, or empty.
template <class Api>
std::string resolve_all(void* lib, Api& api);

#define FB_RESOLVE(name)                                                              \
  api.name = reinterpret_cast<decltype(api.name)>(dlsym(lib, FB_STRINGIFY_EXPANDED(name))); \
  if (!api.name) return FB_STRINGIFY_EXPANDED(name);

template <>
std::string resolve_all(void* lib, DriverApi& api) {
  FB_CUDA_DRIVER_FUNCS(FB_RESOLVE)
  return {};
}
template <>
std::string resolve_all(void* lib, NvrtcApi& api) {
  FB_NVRTC_FUNCS(FB_RESOLVE)
  return {};
}

struct DriverState {
  DriverApi api;
  bool ok = false;
  std::string why;
};

struct NvrtcState {
  NvrtcApi api;
  bool ok = false;
  std::string why;
};

const DriverState& driver_state() {
  static DriverState s = [] {
    DriverState st;
    std::string tried;
    void* lib = dlopen_first({"libcuda.so.1", "libcuda.so"}, &tried);
    if (!lib) {
      st.why = "the CUDA driver (libcuda.so.1) is not installed or not on the library path";
      return st;
    }
    if (std::string missing = resolve_all(lib, st.api); !missing.empty()) {
      st.why = "the CUDA driver lacks " + missing + " (driver too old)";
      return st;
    }
    st.api.cuLaunchKernelEx = reinterpret_cast<decltype(st.api.cuLaunchKernelEx)>(dlsym(lib, "cuLaunchKernelEx"));
    st.api.cuTensorMapEncodeTiled =
        reinterpret_cast<decltype(st.api.cuTensorMapEncodeTiled)>(dlsym(lib, "cuTensorMapEncodeTiled"));
    st.api.cuTensorMapEncodeIm2col =
        reinterpret_cast<decltype(st.api.cuTensorMapEncodeIm2col)>(dlsym(lib, "cuTensorMapEncodeIm2col"));
    CUresult r = st.api.cuInit(0);
    if (r != CUDA_SUCCESS) {
      const char* s = nullptr;
      st.api.cuGetErrorString(r, &s);
      st.why = "cuInit failed with " + std::to_string(static_cast<int>(r)) + " (" + (s ? s : "?") + ")";
      return st;
    }
    int count = 0;
    r = st.api.cuDeviceGetCount(&count);
    if (r != CUDA_SUCCESS || count == 0) {
      st.why = "no CUDA device found";
      return st;
    }
    st.ok = true;
    return st;
  }();
  return s;
}

std::vector<std::string> nvrtc_candidates() {
  std::vector<std::string> names = {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"};
  std::vector<std::string> dirs;
  if (const char* h = std::getenv("CUDA_HOME")) dirs.push_back(std::string(h) + "/lib64");
  if (const char* h = std::getenv("CUDA_PATH")) dirs.push_back(std::string(h) + "/lib64");
  dirs.push_back("/usr/local/cuda/lib64");
  std::vector<std::string> out = names;
  for (const auto& d : dirs)
    for (const auto& n : names) out.push_back(d + "/" + n);
  return out;
}

const NvrtcState& nvrtc_state() {
  static NvrtcState s = [] {
    NvrtcState st;
    std::string tried;
    void* lib = dlopen_first(nvrtc_candidates(), &tried);
    if (!lib) {
      st.why = "NVRTC (libnvrtc.so) could not be loaded; set CUDA_HOME. Tried:" + tried;
      return st;
    }
    if (std::string missing = resolve_all(lib, st.api); !missing.empty()) {
      st.why = "NVRTC lacks " + missing + " (toolkit too old)";
      return st;
    }
    if (st.api.nvrtcVersion(&st.api.major, &st.api.minor) != NVRTC_SUCCESS) {
      st.why = "nvrtcVersion failed";
      return st;
    }
    st.ok = true;
    return st;
  }();
  return s;
}

}  // namespace

void* dlopen_first(const std::vector<std::string>& names, std::string* tried) {
  for (const std::string& n : names) {
    if (void* h = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL)) return h;
    const char* e = dlerror();
    *tried += "\n  " + n + ": " + (e ? e : "not found");
  }
  return nullptr;
}

bool driver_available(std::string* why) {
  const DriverState& s = driver_state();
  if (!s.ok && why) *why = s.why;
  return s.ok;
}

bool nvrtc_available(std::string* why) {
  const NvrtcState& s = nvrtc_state();
  if (!s.ok && why) *why = s.why;
  return s.ok;
}

std::string nvrtc_library_path() {
  const NvrtcState& s = nvrtc_state();
  Dl_info info{};
  if (!s.ok || !dladdr(reinterpret_cast<void*>(s.api.nvrtcVersion), &info) || !info.dli_fname) return {};
  return info.dli_fname;
}

const DriverApi& driver() {
  const DriverState& s = driver_state();
  if (!s.ok) throw UserError("CUDA is not available: " + s.why + "; use --device cpu");
  return s.api;
}

const NvrtcApi& nvrtc() {
  const NvrtcState& s = nvrtc_state();
  if (!s.ok) throw UserError("CUDA is not available: " + s.why + "; use --device cpu");
  return s.api;
}

void check_cu(CUresult result, const char* call) {
  if (result == CUDA_SUCCESS) return;
  const char* name = nullptr;
  const char* str = nullptr;
  const DriverApi& api = driver_state().api;
  if (api.cuGetErrorName) api.cuGetErrorName(result, &name);
  if (api.cuGetErrorString) api.cuGetErrorString(result, &str);
  std::string msg = std::string(call) + " failed: " + std::to_string(static_cast<int>(result)) + " " +
                    (name ? name : "?") + " (" + (str ? str : "no description") + ")";
  switch (result) {
    case CUDA_ERROR_OUT_OF_MEMORY:
      throw UserError(msg, "the block does not fit in GPU memory: use a smaller batch or --device cpu");
    case CUDA_ERROR_NO_BINARY_FOR_GPU:
    case CUDA_ERROR_UNSUPPORTED_PTX_VERSION:
    case CUDA_ERROR_INVALID_PTX:
      throw UserError(msg, "this GPU's compute capability or driver is not supported: use --device cpu");
    case CUDA_ERROR_NO_DEVICE:
    case CUDA_ERROR_INVALID_DEVICE:
      throw UserError(msg, "use --device cpu");
    default:
      throw InternalError(msg);
  }
}

void check_nvrtc(nvrtcResult result, const char* call) {
  if (result == NVRTC_SUCCESS) return;
  const NvrtcApi& api = nvrtc_state().api;
  const char* str = api.nvrtcGetErrorString ? api.nvrtcGetErrorString(result) : nullptr;
  throw InternalError(std::string(call) + " failed: " + std::to_string(static_cast<int>(result)) + " (" +
                      (str ? str : "no description") + ")");
}

}  // namespace fuseblock::cuda
