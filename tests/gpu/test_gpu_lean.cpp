// The lean general path (src/cuda/lean_kernels.cuh) against the CPU backend on problem-83-shaped
// blocks small enough to run quickly: chains that do not fold, dropout in training and eval,
// bias and affine on and off, one sample and several (the blocks-per-sample split changes with
// the batch), NaN and +-Inf injected into one sample. Each case first checks that its program
// really is on the lean path, so a change of the tiling cannot quietly route it elsewhere.
#include <cmath>
#include <limits>
#include <string>

#include "cuda/select/select.hpp"
#include "fuseblock/random.hpp"
#include "gpu_support.hpp"
#include "random_blocks.hpp"

namespace fbgpu {
namespace {

struct LeanCase {
  const char* name;
  std::string spec;
};

std::string spec(int batch, const char* conv_extra, const char* norm_extra, const char* chain, const char* dropout,
                 int groups = 8) {
  return "input f32[" + std::to_string(batch) + ", 3, 8, 16, 64]\nconv3d out_channels=16 kernel_size=3" + conv_extra +
         "\ngroup_norm num_groups=" + std::to_string(groups) + norm_extra + "\n" + chain + dropout;
}

const LeanCase kCases[] = {
    {"silu, training, 3 samples", spec(3, "", "", "silu\n", "dropout p=0.2 training=true seed=5 offset=12\n")},
    {"gelu, eval, no bias, not affine", spec(2, " bias=false", " affine=false", "gelu\n", "dropout p=0.2 training=false\n")},
    {"min/clamp, p=0.5, one sample", spec(1, "", "", "minimum 0.5\nclamp min=0.0 max=0.5\n", "dropout p=0.5\n")},
    {"silu, 4 groups of 4 channels, 5 samples", spec(5, "", "", "silu\n", "dropout p=0.1 seed=77\n", 4)},
};

TEST(GpuLean, AgreesWithTheCpuBackend) {
  REQUIRE_GPU();
  for (const LeanCase& c : kCases) {
    const Plan plan = lower(parse_spec(c.spec, c.name));
    ASSERT_EQ(cuda::default_program(plan, true).strategy, "recompute_sample_runs") << c.name << "\n" << c.spec;
    const Params params = init_params(plan.pipeline, 3);
    const int64_t batch = plan.pipeline.input_shape[0];
    for (float bad : {0.0f, std::numeric_limits<float>::quiet_NaN(), INFINITY, -INFINITY}) {
      // Centred input, as the other differential tests: with torch.rand's [0, 1) the conv's mean
      // is several standard deviations, and TF32's relative error, scaled by mean / std after the
      // normalisation, passes 4e-3 (both kernel generations compute the same accumulators).
      std::mt19937_64 rng(41);
      Tensor x = fbtest::uniform_input(plan.pipeline.input_shape, rng, -1.0f, 1.0f);
      const int64_t per = x.numel() / batch;
      const int64_t hit = batch - 1;  // the last sample
      if (bad != 0.0f) x.data()[hit * per + per / 3] = bad;
      int64_t unwritten = -1;
      const Tensor gpu = run_gpu(plan, params, x, true, &unwritten);
      EXPECT_EQ(unwritten, 0) << c.name;
      const Tensor cpu = run_cpu(plan, params, x);
      const Agreement a = agree(plan.pipeline, gpu, cpu, 4e-3);
      EXPECT_TRUE(a.ok) << c.name << ", injected " << bad << "\n" << a.message;
      if (bad != 0.0f) {  // that sample's statistics are NaN: its output is NaN where not dropped to 0 * NaN
        const int64_t out_per = gpu.numel() / batch;
        int64_t finite_in_hit = 0;
        for (int64_t i = hit * out_per; i < (hit + 1) * out_per; ++i) finite_in_hit += std::isfinite(gpu.data()[i]);
        EXPECT_EQ(finite_in_hit, 0) << c.name << ", injected " << bad;
      }
    }
  }
}

}  // namespace
}  // namespace fbgpu
