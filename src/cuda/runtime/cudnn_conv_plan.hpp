// Between cudnn_conv.cpp and the one translation unit that includes the cuDNN frontend
// (cudnn_conv_plan.cpp: its headers take most of a minute to compile, so nothing else includes
// them). Built without the frontend's headers (CMake: FUSEBLOCK_CUDNN_FRONTEND_DIR), that file
// says so through cudnn_frontend_missing() and builds nothing.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cuda/runtime/cudnn_conv.hpp"

struct CUstream_st;

namespace fuseblock::cuda {

struct CudnnLibrary;
struct DeviceInfo;

// The tensors cuDNN is told of, dims and strides outermost first. cuDNN's convolutions take two
// or three spatial dimensions, so a 1-D conv is a 2-D one of height 1 (as PyTorch runs it).
struct CudnnConvTensors {
  std::vector<int64_t> x_dim, x_stride, w_dim, w_stride, y_dim, y_stride;
  std::vector<int64_t> padding, stride, dilation;
};
CudnnConvTensors cudnn_conv_tensors(const LibraryConvDesc& desc);

// A built execution plan of one conv on one device, shared by every CudnnConv of that device
// and desc.key(), and kept for the process's life.
struct CudnnConvPlan {
  int device = 0;
  size_t workspace_bytes = 0;
  std::string engine;                 // "cudnn 9.19.0 <plan name>"
  std::shared_ptr<const void> graph;  // the frontend's graph, opaque outside cudnn_conv_plan.cpp
};

// Empty where this build has the frontend, else why it has not and how to build it in.
std::string cudnn_frontend_missing();
// The plan for desc on `device` (current on the calling thread): from the cache, or built
// (heuristics mode A, then fallback; the first plan that builds). Throws UserError.
std::shared_ptr<const CudnnConvPlan> cudnn_conv_plan(const LibraryConvDesc& desc, const DeviceInfo& device,
                                                     const CudnnLibrary& library);
// Enqueues the conv on `stream` with a cuDNN handle of the plan's device (one per concurrent
// run; the device's context must be current). Throws UserError.
void run_cudnn_conv_plan(const CudnnConvPlan& plan, uint64_t x, uint64_t w, uint64_t y, uint64_t workspace,
                         CUstream_st* stream);

}  // namespace fuseblock::cuda
