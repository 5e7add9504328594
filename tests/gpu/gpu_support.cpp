// GPU suite helpers (gpu_support.hpp).
#include "gpu_support.hpp"

#include <cmath>
#include <sstream>

#include "cpu/cpu_backend.hpp"
#include "cuda/codegen/emit_epilogue.hpp"
#include "cuda/runtime/device_memory.hpp"
#include "cuda/executor/executor.hpp"
#include "device_common/philox.h"
#include "oracle/compare.hpp"

namespace fbgpu {

Plan plan_of(const Pipeline& p) {
  Plan plan;
  plan.pipeline = p;
  return plan;
}

namespace {

Tensor run_on(const cuda::Executor& executor, const Plan& plan, const Params& params, const Tensor& x,
              int64_t* unwritten) {
  const cuda::Executor* const ex = &executor;
  const cuda::LaunchProgram& prog = ex->program();
  Tensor y(plan.pipeline.output_shape);
  poison(y);
  cuda::DeviceBuffer dx = cuda::to_device(x.vec()), dy = cuda::to_device(y.vec());
  cuda::DeviceBuffer dw, db, dg, dbeta;
  using R = cuda::BufferRole;  // upload the parameters the program declares
  if (prog.find(R::ConvWeight)) dw = cuda::to_device(params.conv_weight.vec());
  if (prog.find(R::ConvBias)) db = cuda::to_device(params.conv_bias.vec());
  if (prog.find(R::NormWeight)) dg = cuda::to_device(params.norm_weight.vec());
  if (prog.find(R::NormBias)) dbeta = cuda::to_device(params.norm_bias.vec());
  cuda::DeviceBuffer scratch(ex->scratch_bytes());
  cuda::RunArgs args;
  args.seed = cuda::drawn_dropout(plan.pipeline).seed;  // the one dropout that draws, wherever it stands
  args.offset = cuda::drawn_dropout(plan.pipeline).offset;
  ex->launch(block_tensors(dx, dy, dw, db, dg, dbeta, scratch), args, nullptr);
  cuda::synchronize();
  dy.download(y.data(), static_cast<size_t>(y.numel()) * sizeof(float));
  if (unwritten) *unwritten = count_poisoned(y);
  return y;
}

}  // namespace

cuda::DeviceTensors block_tensors(const cuda::DeviceBuffer& x, const cuda::DeviceBuffer& y, const cuda::DeviceBuffer& weight,
                                  const cuda::DeviceBuffer& bias, const cuda::DeviceBuffer& gamma,
                                  const cuda::DeviceBuffer& beta, const cuda::DeviceBuffer& scratch,
                                  uint64_t dropout_state) {
  using R = cuda::BufferRole;
  cuda::DeviceTensors t;
  t.bind(R::Input, x.ptr()).bind(R::Output, y.ptr()).bind(R::ConvWeight, weight.ptr()).bind(R::ConvBias, bias.ptr());
  t.bind(R::NormWeight, gamma.ptr()).bind(R::NormBias, beta.ptr()).bind(R::DropoutState, dropout_state);
  t.scratch = scratch.ptr();
  return t;
}

Tensor run_gpu(const Plan& plan, const Params& params, const Tensor& x, bool tf32, int64_t* unwritten) {
  return run_on(*cuda::executor_for(plan, tf32), plan, params, x, unwritten);
}

Tensor run_gpu_program(const Plan& plan, const cuda::LaunchProgram& program, const Params& params, const Tensor& x,
                       int64_t* unwritten) {
  const cuda::Executor executor(plan, program);
  return run_on(executor, plan, params, x, unwritten);
}

Tensor run_cpu(const Plan& plan, const Params& params, const Tensor& x) {
  Tensor y(plan.pipeline.output_shape);
  cpu::run(plan, params, x, y);
  return y;
}

void inject_nonfinite_in_first_sample(Tensor& x) {
  const int64_t sample = x.numel() / x.shape()[0];
  if (sample < 8) return;
  x.data()[3] = NAN;
  x.data()[sample - 2] = INFINITY;
}

Agreement agree(const Pipeline& p, const Tensor& gpu, const Tensor& cpu, double rtol) {
  Agreement a;
  std::ostringstream msg;
  int shown = 0;
  auto fail = [&](int64_t i, const char* why) {
    a.ok = false;
    if (shown++ < 8) msg << "  [" << i << "] gpu " << gpu.data()[i] << " cpu " << cpu.data()[i] << ": " << why << "\n";
  };
  if (gpu.shape() != cpu.shape()) {
    a.ok = false;
    a.message = "shapes differ";
    return a;
  }
  double sq = 0;
  int64_t finite = 0;
  for (float v : cpu.vec())
    if (std::isfinite(v)) sq += static_cast<double>(v) * v, ++finite;
  const double rms = finite ? std::sqrt(sq / static_cast<double>(finite)) : 0.0;
  const bool dropout = !p.dropout.is_identity();
  const fb_u32 threshold = fb_keep_threshold(p.dropout.p);
  fb_u32x4 bits{};
  int64_t block = -1;
  for (int64_t i = 0; i < gpu.numel(); ++i) {
    const float g = gpu.data()[i], c = cpu.data()[i];
    if (dropout) {
      if (i / 4 != block) block = i / 4, bits = fb_dropout_bits(p.dropout.seed, p.dropout.offset, static_cast<fb_u64>(block));
      if (!(bits.v[i % 4] < threshold) && !(g == 0.0f || std::isnan(g))) fail(i, "the mask drops it: must be 0 or NaN");
    }
    if (std::isnan(g) != std::isnan(c)) {
      fail(i, "NaN on one side only");
      continue;
    }
    if (std::isinf(g) || std::isinf(c)) {
      if (g != c) fail(i, "Inf differs");
      continue;
    }
    if (std::isnan(g)) continue;
    const double tol = rtol * (rms + std::fabs(static_cast<double>(c)));
    const double err = std::fabs(static_cast<double>(g) - c);
    if (tol > 0) a.worst = std::max(a.worst, err / tol);
    if (err > tol) fail(i, "value differs");
  }
  a.message = msg.str();
  return a;
}

}  // namespace fbgpu
