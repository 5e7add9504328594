// Runs captured in CUDA graphs. The executor's launch makes no host synchronisation and no
// allocation (what graph capture, and PyTorch's CUDA graphs around the custom op, need). Covers
// the general path, the guarded fill path (a memset node, the guard kernel, gated fallbacks with
// programmatic dependent launch) and a fill with a dropout mask.
//  - explicit seeds (the C++ API, the CLI): every replay gives the same output, bit for bit;
//  - a dropout state in device memory: the kernels read (seed, offset) when they run and the run
//    advances the offset, so every replay draws a fresh mask, each a valid one that the CPU
//    backend draws bit for bit from the same (seed, offset).
#include <cmath>
#include <cstring>

#include "cuda/codegen/emit_epilogue.hpp"
#include "cuda/runtime/device_context.hpp"
#include "cuda/runtime/device_memory.hpp"
#include "cuda/runtime/driver_api.hpp"
#include "cuda/executor/executor.hpp"
#include "fuseblock/random.hpp"
#include "gpu_support.hpp"

namespace fbgpu {
namespace {

const char* kSpecs[] = {
    "input f32[3, 3, 6, 9, 10]\nconv3d 16 3\ngroup_norm 8\nsilu\ndropout 0.2 seed=5\n",
    "input f32[3, 3, 6, 9, 10]\nconv3d 16 3\ngroup_norm 8\nminimum 0\nclamp min=0 max=1\ndropout 0.2\n",
    "input f32[3, 3, 6, 9, 10]\nconv3d 8 3 padding=1\ngroup_norm 4\nmaximum 1\nclamp min=0 max=1\ndropout 0.3 seed=7\n",
};

TEST(GpuGraph, CapturedRunReplaysTheSameOutput) {
  REQUIRE_GPU();
  for (const char* spec : kSpecs) {
    SCOPED_TRACE(spec);
    const Plan plan = lower(parse_spec(spec, "graph.block"));
    const Params params = init_params(plan.guard ? plan.fallback : plan.pipeline, 1);
    const Tensor x = uniform_tensor(plan.pipeline.input_shape, 2);
    const Tensor direct = run_gpu(plan, params, x, true);

    auto ex = cuda::executor_for(plan, true);
    cuda::use_device();
    cuda::DeviceBuffer dx = cuda::to_device(x.vec());
    cuda::DeviceBuffer dy(static_cast<size_t>(direct.numel()) * 4);
    cuda::DeviceBuffer dw = cuda::to_device(params.conv_weight.vec()), db = cuda::to_device(params.conv_bias.vec());
    cuda::DeviceBuffer dg = cuda::to_device(params.norm_weight.vec()), dbeta = cuda::to_device(params.norm_bias.vec());
    cuda::DeviceBuffer scratch(ex->scratch_bytes());
    cuda::RunArgs args;
    args.seed = cuda::drawn_dropout(plan.pipeline).seed;  // the one dropout that draws, wherever it stands
    args.offset = cuda::drawn_dropout(plan.pipeline).offset;

    CUstream stream = nullptr;
    FB_CU(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
    FB_CU(cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
    ex->launch(block_tensors(dx, dy, dw, db, dg, dbeta, scratch), args, stream);
    CUgraph graph = nullptr;
    FB_CU(cuStreamEndCapture(stream, &graph));
    CUgraphExec exec = nullptr;
    FB_CU(cuGraphInstantiateWithFlags(&exec, graph, 0));
    for (int replay = 0; replay < 2; ++replay) {
      dy.fill_u32(0x7fa5a5a5u + static_cast<uint32_t>(replay));  // poison: a NaN pattern
      cuda::synchronize();
      FB_CU(cuGraphLaunch(exec, stream));
      FB_CU(cuStreamSynchronize(stream));
      Tensor y(plan.pipeline.output_shape);
      dy.download(y.data(), static_cast<size_t>(y.numel()) * 4);
      EXPECT_EQ(0, std::memcmp(y.data(), direct.data(), static_cast<size_t>(y.numel()) * 4)) << "replay " << replay;
    }
    FB_CU(cuGraphExecDestroy(exec));
    FB_CU(cuGraphDestroy(graph));
    FB_CU(cuStreamDestroy(stream));
  }
}

// Elements the mask dropped: exactly zero (the input is positive-mean; a kept value is 0 only by
// accident, rare enough for the counts below).
int64_t zeros(const Tensor& y) {
  int64_t z = 0;
  for (float v : y.vec()) z += v == 0.0f;
  return z;
}

TEST(GpuGraph, ReplaysWithADeviceDropoutStateDrawFreshValidMasks) {
  REQUIRE_GPU();
  // The general path and a fill with a mask. (kSpecs[1]'s mask lives in the exact fallback, whose
  // chain is 0 for every finite value and NaN otherwise: no mask to see there.)
  const char* specs[] = {kSpecs[0], kSpecs[2]};
  for (const char* spec : specs) {
    SCOPED_TRACE(spec);
    Plan plan = lower(parse_spec(spec, "graph.block"));
    const Params params = init_params(plan.guard ? plan.fallback : plan.pipeline, 1);
    const Tensor x = uniform_tensor(plan.pipeline.input_shape, 3);
    const double p = plan.pipeline.dropout.p;
    ASSERT_FALSE(plan.pipeline.dropout.is_identity());
    auto ex = cuda::executor_for(plan, true);
    cuda::use_device();
    cuda::DeviceBuffer dx = cuda::to_device(x.vec());
    const int64_t count = numel(plan.pipeline.output_shape);
    cuda::DeviceBuffer dy(static_cast<size_t>(count) * 4);
    cuda::DeviceBuffer dw = cuda::to_device(params.conv_weight.vec()), db = cuda::to_device(params.conv_bias.vec());
    cuda::DeviceBuffer dg = cuda::to_device(params.norm_weight.vec()), dbeta = cuda::to_device(params.norm_bias.vec());
    cuda::DeviceBuffer scratch(ex->scratch_bytes());
    const uint64_t seed0 = 0x1234abcdull, offset0 = 1000;
    std::vector<uint64_t> state_host = {seed0, offset0};
    cuda::DeviceBuffer state(16);
    state.upload(state_host.data(), 16);
    cuda::RunArgs args;  // no explicit seeds: the kernels read the state

    CUstream stream = nullptr;
    FB_CU(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
    FB_CU(cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
    ex->launch(block_tensors(dx, dy, dw, db, dg, dbeta, scratch, state.ptr()), args, stream);
    CUgraph graph = nullptr;
    FB_CU(cuStreamEndCapture(stream, &graph));
    CUgraphExec exec = nullptr;
    FB_CU(cuGraphInstantiateWithFlags(&exec, graph, 0));
    std::vector<Tensor> outs;
    for (int replay = 0; replay < 3; ++replay) {
      dy.fill_u32(0x7fa5a5a5u + static_cast<uint32_t>(replay));
      cuda::synchronize();
      FB_CU(cuGraphLaunch(exec, stream));
      FB_CU(cuStreamSynchronize(stream));
      Tensor y(plan.pipeline.output_shape);
      dy.download(y.data(), static_cast<size_t>(count) * 4);
      // The CPU backend with the (seed, offset) this replay read: the same mask, bit for bit.
      Plan at = plan;
      for (Pipeline* q : {&at.pipeline, &at.fallback}) q->dropout.seed = seed0, q->dropout.offset = offset0 + replay;
      const Tensor cpu = run_cpu(at, params, x);
      const Agreement a = agree(at.pipeline, y, cpu, 3e-3);
      EXPECT_TRUE(a.ok) << "replay " << replay << ": " << a.message;
      // A valid mask: the dropped share within 5 binomial standard deviations of p.
      const double dropped = static_cast<double>(zeros(y)) / static_cast<double>(count);
      EXPECT_NEAR(dropped, p, 5 * std::sqrt(p * (1 - p) / static_cast<double>(count))) << "replay " << replay;
      for (const Tensor& prev : outs) {
        int64_t differ = 0;
        for (int64_t i = 0; i < count; ++i) differ += (prev.data()[i] == 0.0f) != (y.data()[i] == 0.0f);
        EXPECT_GT(differ, count / 20) << "replay " << replay << " drew the same mask as an earlier one";
      }
      outs.push_back(y);
    }
    state.download(state_host.data(), 16);
    EXPECT_EQ(state_host[0], seed0);
    EXPECT_EQ(state_host[1], offset0 + 3) << "each replay advanced the offset once";
    FB_CU(cuGraphExecDestroy(exec));
    FB_CU(cuGraphDestroy(graph));
    FB_CU(cuStreamDestroy(stream));
  }
}

}  // namespace
}  // namespace fbgpu
