// GroupNorm statistics of conv outputs up to about 1e36 (issue 13 item 5) on every strategy:
// two-pass with the MMA (tf32) and FMA (strict fp32) engines, sample runs, and the guarded
// fill's gated fallback, against the CPU backend (itself checked against the float64 oracle in
// test_cpu_nonfinite.cpp). Float32 sums of such values overflow (the H200 run gave a
// whole sample of NaN) and their variance exceeds float: each case must stay finite where the
// CPU is, and normalize as it does.
#include <cmath>
#include <limits>
#include <random>
#include <string>

#include "cuda/executor/executor.hpp"
#include "cuda/select/select.hpp"
#include "cuda/strategies/strategy.hpp"
#include "gpu_support.hpp"
#include "pipeline_fixtures.hpp"

namespace fbgpu {
namespace {

// Problem-83-shaped and small enough for the sanitizers: the sample-runs kernels apply.
const char* kSpec =
    "input f32[3, 3, 8, 16, 64]\nconv3d out_channels=16 kernel_size=3\ngroup_norm num_groups=8 eps=1e-5\nsilu\n"
    "dropout p=0.2 training=true seed=5 offset=12\n";

struct HugeCase {
  const char* name;
  float sample0_scale;    // sample 0's input times this
  float channel_value;    // sample 1's input channel 0 set to this (0: left alone)
  float weight_scale;     // all conv weights times this
  float channel0_weight;  // output channel 0's weights times this (mixed magnitudes in its group)
};

// Conv outputs: input in [-1, 1] and default weights give about 0.5 times the scales below.
const HugeCase kHugeCases[] = {
    {"the issue's: sample 0 at 1e30, sample 1's channel 0 at -3e38", 1e30f, -3e38f, 1e-2f, 1.0f},
    {"sample 0 at 1e36", 3e36f, 0.0f, 1.0f, 1.0f},
    {"sample 0 at 1e20 (variance past float)", 1e20f, 0.0f, 1.0f, 1.0f},
    {"one channel at 1e30 beside ordinary ones in its group", 1.0f, 0.0f, 1.0f, 1e30f},
};

void make_huge(const HugeCase& c, const Pipeline& p, Params& params, Tensor& x) {
  std::mt19937_64 rng(83);
  x = fbtest::uniform_input(p.input_shape, rng, -1.0f, 1.0f);
  const int64_t per = x.numel() / x.size(0), plane = per / x.size(1);
  for (int64_t i = 0; i < per; ++i) x.data()[i] *= c.sample0_scale;
  if (c.channel_value != 0.0f)
    for (int64_t i = 0; i < plane; ++i) x.data()[per + i] = c.channel_value;
  const int64_t per_out = params.conv_weight.numel() / params.conv_weight.size(0);
  for (int64_t i = 0; i < params.conv_weight.numel(); ++i)
    params.conv_weight.data()[i] *= c.weight_scale * (i < per_out ? c.channel0_weight : 1.0f);
}

void expect_agreement(const Plan& plan, const cuda::LaunchProgram& prog, const HugeCase& c, double rtol,
                      const std::string& what) {
  const Pipeline& exact = plan.guard ? plan.fallback : plan.pipeline;
  Params params = init_params(exact, 3);
  Tensor x;
  make_huge(c, exact, params, x);
  int64_t unwritten = -1;
  const Tensor gpu = run_gpu_program(plan, prog, params, x, &unwritten);
  EXPECT_EQ(unwritten, 0) << what << ", " << c.name;
  const Tensor cpu = run_cpu(plan, params, x);
  int64_t finite = 0;
  for (float v : cpu.vec()) finite += std::isfinite(v);
  // Not a vacuous comparison: the CPU backend normalizes these (the non-finite ones are the NaN
  // that dropout's 0 * x cannot give, none here).
  EXPECT_EQ(finite, cpu.numel()) << what << ", " << c.name;
  const Agreement a = agree(plan.pipeline, gpu, cpu, rtol);
  EXPECT_TRUE(a.ok) << what << ", " << c.name << "\n" << a.message;
}

TEST(GpuHugeStats, TwoPassBothEngines) {
  REQUIRE_GPU();
  const Plan plan = lower(parse_spec(kSpec, "huge"));
  for (bool tf32 : {true, false}) {
    const cuda::LaunchProgram prog = cuda::find_strategy("recompute_two_pass")->build({&plan, tf32}, {});
    ASSERT_EQ(prog.source.find("fb_mma_tf32(acc") != std::string::npos, tf32) << "engine: MMA with tf32, FMA without";
    for (const HugeCase& c : kHugeCases) expect_agreement(plan, prog, c, tf32 ? 4e-3 : 3e-5, tf32 ? "two-pass tf32" : "two-pass fp32");
  }
}

TEST(GpuHugeStats, SampleRuns) {
  REQUIRE_GPU();
  const Plan plan = lower(parse_spec(kSpec, "huge"));
  const cuda::ConvStrategy& st = *cuda::find_strategy("recompute_sample_runs");
  ASSERT_FALSE(st.unsupported({&plan, true}, cuda::current_device_limits()).has_value());
  const cuda::LaunchProgram prog = st.build({&plan, true}, {});
  for (const HugeCase& c : kHugeCases) expect_agreement(plan, prog, c, 4e-3, "sample runs");
}

// conv -> GroupNorm -> minimum(-1) -> clamp(0.25, 0.5): the fill path; the huge samples fail its
// guard and run the gated two-pass kernels, whose statistics must not turn them into NaN.
TEST(GpuHugeStats, GuardedFillFallback) {
  REQUIRE_GPU();
  Plan plan = lower(parse_spec(
      "input f32[3, 3, 8, 16, 64]\nconv3d out_channels=16 kernel_size=3\ngroup_norm num_groups=8\nminimum -1.0\n"
      "clamp min=0.25 max=0.5\ndropout p=0.2 training=true seed=5 offset=12\n",
      "huge fill"));
  ASSERT_TRUE(plan.pipeline.fill_path());
  const cuda::LaunchProgram prog = cuda::default_program(plan, true);
  ASSERT_EQ(prog.strategy, "constant_fill");
  for (const HugeCase& c : kHugeCases) expect_agreement(plan, prog, c, 4e-3, "guarded fill");
}

}  // namespace
}  // namespace fbgpu
