// The CUDA backend on host tensors: copy in, run the plan's kernels, copy out. The work itself
// is done by an Executor (executor.hpp), which the Python package drives with device pointers
// and the caller's stream.
#pragma once
#include <string>

#include "fuseblock/fuseblock.hpp"

namespace fuseblock::cuda {

// False, with a plain reason, when there is no usable GPU (no driver, no device, no NVRTC, or a
// compute capability below 7.0).
bool available(std::string* why);

// y must already have plan.pipeline.output_shape. Throws the "CUDA is not available" UserError
// without a GPU.
void run(const Plan& plan, const Params& params, const Tensor& x, Tensor& y, const RunOptions& opts,
         const Tensor* channel_add = nullptr);

}  // namespace fuseblock::cuda
