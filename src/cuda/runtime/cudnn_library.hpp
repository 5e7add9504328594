// libcudnn (cuDNN 9), loaded at run time as the driver and NVRTC are (driver_api.hpp): fuseblock
// never links it, so one binary runs where cuDNN is missing and says why. The cuDNN frontend's
// dynamic-loading mode resolves every cuDNN call in the handle loaded here (cudnn_conv_plan.cpp).
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace fuseblock::cuda {

struct CudnnLibrary {
  void* handle = nullptr;  // from dlopen
  size_t version = 0;      // cudnnGetVersion(): 91900 for 9.19.0
  std::string path;        // the file it was loaded from (from dladdr), for messages and explain
};

// The files to try, in order: $FUSEBLOCK_CUDNN_LIBRARY alone when it is set (a file chosen by
// hand never falls back to another cuDNN); else libcudnn.so.9 by name, which finds the copy a
// framework such as PyTorch already loaded in this process before the loader's search path,
// then the same under $CUDA_HOME, $CUDA_PATH and /usr/local/cuda.
std::vector<std::string> cudnn_library_candidates();
// Loads the first candidate that opens and is cuDNN 9 (the frontend's graph API and these
// headers' ABI); otherwise returns an empty CudnnLibrary and says in *why what was tried and
// how to install it. Each call loads anew (tests); cudnn_library() is the process's one.
CudnnLibrary load_cudnn_library(const std::vector<std::string>& candidates, std::string* why);
// load_cudnn_library(cudnn_library_candidates()) once per process; null, with *why, when it
// failed. Thread-safe; never throws.
const CudnnLibrary* cudnn_library(std::string* why);

std::string cudnn_version_string(size_t version);  // 91900 -> "9.19.0"

}  // namespace fuseblock::cuda
