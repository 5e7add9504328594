// The CUDA driver API and NVRTC, loaded at run time with dlopen so that one binary runs on a
// machine without a GPU, a driver or the toolkit (the CPU backend then serves every request).
//
// The toolkit headers give only the types; each entry point is a function pointer resolved by
// name (cuda.h's versioning macros turn e.g. cuMemAlloc into cuMemAlloc_v2, and the pointer
// members take the same expanded names, so callers write api.cuMemAlloc(...) as usual).
// Every call goes through check_cu / check_nvrtc, which name the call, the code and its string.
//
// The availability queries need no CUDA headers (tests and tools outside fuseblock_core include
// this file without the toolkit on their path); the API tables need cuda.h and nvrtc.h.
#pragma once
#include <string>
#include <vector>

namespace fuseblock::cuda {

// dlopen's the first of `names` that loads (RTLD_NOW | RTLD_LOCAL), or returns null; `tried`
// collects "name: dlerror" lines for the message. Shared by the driver, NVRTC and cuDNN loaders.
void* dlopen_first(const std::vector<std::string>& names, std::string* tried);

// False, with a plain reason in *why, when the driver cannot be loaded or sees no GPU.
bool driver_available(std::string* why);
bool nvrtc_available(std::string* why);
// The file NVRTC was loaded from (for logs and explain), or empty.
std::string nvrtc_library_path();

}  // namespace fuseblock::cuda

#if __has_include(<cuda.h>) && __has_include(<nvrtc.h>)
#include <cuda.h>
#include <nvrtc.h>

namespace fuseblock::cuda {

#define FB_CUDA_DRIVER_FUNCS(X)                                                            \
  X(cuInit) X(cuDriverGetVersion) X(cuGetErrorString) X(cuGetErrorName)                    \
  X(cuDeviceGetCount) X(cuDeviceGet) X(cuDeviceGetAttribute) X(cuDeviceGetName)            \
  X(cuDeviceTotalMem) X(cuDevicePrimaryCtxRetain) X(cuDevicePrimaryCtxRelease)             \
  X(cuCtxSetCurrent) X(cuCtxGetCurrent) X(cuCtxSynchronize)                                \
  X(cuModuleLoadData) X(cuModuleUnload) X(cuModuleGetFunction)                             \
  X(cuFuncGetAttribute) X(cuFuncSetAttribute) X(cuLaunchKernel)                            \
  X(cuOccupancyMaxActiveBlocksPerMultiprocessor)                                           \
  X(cuMemAlloc) X(cuMemFree) X(cuMemGetInfo) X(cuMemcpyHtoD) X(cuMemcpyDtoH)               \
  X(cuMemcpyHtoDAsync) X(cuMemcpyDtoHAsync) X(cuMemcpyDtoDAsync)                           \
  X(cuMemsetD8Async) X(cuMemsetD16Async) X(cuMemsetD32Async)                             \
  X(cuStreamCreate) X(cuStreamDestroy) X(cuStreamSynchronize)                              \
  X(cuEventCreate) X(cuEventDestroy) X(cuEventRecord) X(cuEventSynchronize)                \
  X(cuEventElapsedTime)                                                                    \
  X(cuStreamBeginCapture) X(cuStreamEndCapture) X(cuGraphInstantiateWithFlags)            \
  X(cuGraphLaunch) X(cuGraphExecDestroy) X(cuGraphDestroy)

#define FB_NVRTC_FUNCS(X)                                                                  \
  X(nvrtcVersion) X(nvrtcGetErrorString) X(nvrtcCreateProgram) X(nvrtcDestroyProgram)      \
  X(nvrtcCompileProgram) X(nvrtcGetProgramLogSize) X(nvrtcGetProgramLog)                   \
  X(nvrtcGetPTXSize) X(nvrtcGetPTX) X(nvrtcGetCUBINSize) X(nvrtcGetCUBIN)                  \
  X(nvrtcGetNumSupportedArchs) X(nvrtcGetSupportedArchs)

#define FB_DECLARE_POINTER(name) decltype(&::name) name = nullptr;

struct DriverApi {
  FB_CUDA_DRIVER_FUNCS(FB_DECLARE_POINTER)
  // Optional (drivers before CUDA 12.0 lack it; null then): launches with attributes, used for
  // programmatic dependent launch on sm_90+, with cuLaunchKernel as the fallback.
  decltype(&::cuLaunchKernelEx) cuLaunchKernelEx = nullptr;
  // Optional too (CUDA 12.0 on): TMA descriptors for tensor-map arguments (executor/tensor_map.hpp).
  decltype(&::cuTensorMapEncodeTiled) cuTensorMapEncodeTiled = nullptr;
  decltype(&::cuTensorMapEncodeIm2col) cuTensorMapEncodeIm2col = nullptr;
};

struct NvrtcApi {
  FB_NVRTC_FUNCS(FB_DECLARE_POINTER)
  int major = 0, minor = 0;  // nvrtcVersion()
};

// The loaded driver, initialised (cuInit done) with at least one device; throws a UserError
// "CUDA is not available: <why>; use --device cpu" otherwise. Thread-safe; loads once.
const DriverApi& driver();
// The loaded NVRTC; throws a UserError naming the paths tried when it is missing.
const NvrtcApi& nvrtc();

// Throw an InternalError naming the call, the result code and its string when result != success.
void check_cu(CUresult result, const char* call);
void check_nvrtc(nvrtcResult result, const char* call);

}  // namespace fuseblock::cuda

// FB_CU(cuMemAlloc(&p, n)) calls through the loaded driver and checks the result.
#define FB_CU(call) ::fuseblock::cuda::check_cu(::fuseblock::cuda::driver().call, #call)
#define FB_NVRTC(call) ::fuseblock::cuda::check_nvrtc(::fuseblock::cuda::nvrtc().call, #call)
#endif  // cuda.h and nvrtc.h
