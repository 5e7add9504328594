// Helpers for the GPU suite: skipping without a GPU, running a plan on the GPU into a poisoned
// output, and comparing with the CPU backend (masks bit for bit, values within a tolerance
// relative to the output's norm, NaN and Inf at the same positions).
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include <cstdint>
#include <string>

#include "cuda/executor/cuda_backend.hpp"
#include "cuda/executor/executor.hpp"
#include "cuda/runtime/device_memory.hpp"
#include "cuda/program/launch_program.hpp"
#include "fuseblock/fuseblock.hpp"

namespace fbgpu {

using namespace fuseblock;

#define REQUIRE_GPU()                                                        \
  do {                                                                       \
    std::string why_;                                                        \
    if (!::fuseblock::cuda::available(&why_)) GTEST_SKIP() << "no GPU: " << why_; \
  } while (0)

// cuDNN's conv steps (store_once's default engine) need a GPU and the library.
#define REQUIRE_CUDNN()                                                                            \
  do {                                                                                             \
    REQUIRE_GPU();                                                                                 \
    if (auto why_ = ::fuseblock::cuda::cudnn_unavailable()) GTEST_SKIP() << "no cuDNN: " << *why_; \
  } while (0)

Plan plan_of(const Pipeline& p);

// Runs the plan through its Executor on device buffers, the output poisoned first;
// *unwritten counts elements still holding the poison afterwards.
Tensor run_gpu(const Plan& plan, const Params& params, const Tensor& x, bool tf32, int64_t* unwritten = nullptr);
// The same with a given program (a strategy's build rather than the selection's winner).
Tensor run_gpu_program(const Plan& plan, const cuda::LaunchProgram& program, const Params& params, const Tensor& x,
                       int64_t* unwritten = nullptr);
Tensor run_cpu(const Plan& plan, const Params& params, const Tensor& x);

// A NaN and an Inf in the first sample only: a norm spreads them over its whole (sample, group),
// so every later sample stays finite and its values and dropout mask are still compared.
void inject_nonfinite_in_first_sample(Tensor& x);
// The block's device buffers bound by role (an empty buffer binds 0), with the scratch and,
// when non-zero, a device dropout state.
cuda::DeviceTensors block_tensors(const cuda::DeviceBuffer& x, const cuda::DeviceBuffer& y, const cuda::DeviceBuffer& weight,
                                  const cuda::DeviceBuffer& bias, const cuda::DeviceBuffer& gamma,
                                  const cuda::DeviceBuffer& beta, const cuda::DeviceBuffer& scratch,
                                  uint64_t dropout_state = 0);

struct Agreement {
  bool ok = true;
  std::string message;
  double worst = 0;  // largest |gpu - cpu| / (rtol * (rms(cpu) + |cpu|)) over finite elements
};
// GPU against CPU for pipeline p (whose dropout defines the mask): same NaN and signed-Inf
// positions; every element the mask drops is exactly 0 or NaN on both (never a scaled value);
// finite elements within rtol * (rms + |cpu|).
Agreement agree(const Pipeline& p, const Tensor& gpu, const Tensor& cpu, double rtol);

}  // namespace fbgpu
