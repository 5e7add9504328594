// A whole run captured in a CUDA graph replays to the same output, bit for bit: the executor's
// launch makes no host synchronisation and no allocation (what graph capture, and PyTorch's
// CUDA graphs around the custom op, need). Covers the general path, the guarded fill path (a
// memset node, the guard kernel, gated fallbacks with programmatic dependent launch) and a fill
// with a dropout mask.
#include <cstring>

#include "cuda/device_context.hpp"
#include "cuda/device_memory.hpp"
#include "cuda/driver_api.hpp"
#include "cuda/executor.hpp"
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
    args.seed = plan.pipeline.dropout.seed;
    args.offset = plan.pipeline.dropout.offset;
    if (plan.guard) args.guard_bound = guard_input_bound(params, plan.guard->conv_output_bound);

    CUstream stream = nullptr;
    FB_CU(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
    FB_CU(cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
    ex->launch({dx.ptr(), dy.ptr(), dw.ptr(), db.ptr(), dg.ptr(), dbeta.ptr()}, scratch.ptr(), args, stream);
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

}  // namespace
}  // namespace fbgpu
