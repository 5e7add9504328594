// The fill path on the GPU: one kernel writes c * mask and checks the guard; samples that fail
// (NaN, Inf, |x| past the bound, non-finite parameters) are recomputed by the gated exact
// kernels. Everything is compared with the CPU backend bit for bit where the output is the fill,
// within tolerance where the exact path ran; outputs are poisoned first.
#include <cstring>

#include "fuseblock/random.hpp"
#include "gpu_support.hpp"
#include "oracle/compare.hpp"
#include "pipeline_fixtures.hpp"

namespace fbgpu {
namespace {

using fbtest::dropout;
using fbtest::group_norm;
using fbtest::make_fill_pipeline;
using fbtest::make_pipeline;
using fbtest::op_clamp;
using fbtest::op_minimum;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// conv3d -> GroupNorm -> minimum(-1) -> clamp(0.25, 0.5) -> dropout: 0.25 for every finite input,
// with rows longer than one tile and an odd sample size (the guard's scalar path).
Pipeline exact_block(double p, bool odd = false) {
  fbtest::ConvSpec c;
  c.batch = 5;
  c.c_in = 3;
  c.c_out = 16;
  c.in_spatial = {5, 9, odd ? 67 : 68};
  return make_pipeline(c, group_norm(8), {op_minimum(-1.0), op_clamp(0.25, 0.5)}, dropout(p, true, 31, 4));
}

Plan guarded_plan(const Pipeline& exact, double value) {
  Plan plan;
  plan.pipeline = make_fill_pipeline(exact, value);
  plan.guard = Guard{1e12, "minimum(-1) then clamp(0.25, 0.5) is 0.25 for finite input"};
  plan.fallback = exact;
  return plan;
}

void expect_bitwise(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.numel(), b.numel());
  for (int64_t i = 0; i < a.numel(); ++i) {
    uint32_t x, y;
    std::memcpy(&x, a.data() + i, 4);
    std::memcpy(&y, b.data() + i, 4);
    if (std::isnan(a.data()[i]) && std::isnan(b.data()[i])) continue;
    ASSERT_EQ(x, y) << what << ": element " << i << " gpu " << a.data()[i] << " cpu " << b.data()[i];
  }
}

TEST(GpuFillPath, FiniteInputMatchesCpuBitForBit) {
  REQUIRE_GPU();
  for (bool odd : {false, true})
    for (double p : {0.0, 0.2, 1.0}) {
      std::mt19937_64 rng(41);
      const Pipeline exact = exact_block(p, odd);
      const Plan plan = guarded_plan(exact, 0.25);
      const Params params = fbtest::random_params(exact, rng);
      const Tensor x = fbtest::uniform_input(exact.input_shape, rng, 0.0f, 1.0f);
      int64_t unwritten = -1;
      const Tensor gpu = run_gpu(plan, params, x, true, &unwritten);
      EXPECT_EQ(unwritten, 0);
      expect_bitwise(gpu, run_cpu(plan, params, x), "p " + std::to_string(p));
    }
}

TEST(GpuFillPath, FailingSamplesRunTheExactFallback) {
  REQUIRE_GPU();
  for (bool tf32 : {true, false}) {
    std::mt19937_64 rng(42);
    const Pipeline exact = exact_block(0.2);
    const Plan plan = guarded_plan(exact, 0.25);
    const Params params = fbtest::random_params(exact, rng);
    Tensor x = fbtest::uniform_input(exact.input_shape, rng, 0.0f, 1.0f);
    const int64_t in_per = x.numel() / 5;
    x.data()[1 * in_per + 100] = kNaN;      // sample 1: NaN
    x.data()[2 * in_per + 7] = -kInf;       // sample 2: -Inf
    x.data()[4 * in_per - 1] = 3e38f;       // sample 3: finite, far past the bound (last element)
    int64_t unwritten = -1;
    const Tensor gpu = run_gpu(plan, params, x, tf32, &unwritten);
    EXPECT_EQ(unwritten, 0);
    const Tensor cpu = run_cpu(plan, params, x);
    const Agreement a = agree(exact, gpu, cpu, tf32 ? 4e-3 : 3e-5);
    EXPECT_TRUE(a.ok) << a.message;
    const int64_t per = gpu.numel() / 5;
    for (int64_t i = 0; i < gpu.numel(); ++i) {
      const int64_t n = i / per;
      if (n == 1 || n == 2) ASSERT_TRUE(std::isnan(gpu.data()[i])) << "sample " << n << " element " << i;
      if (n == 0 || n == 4) ASSERT_TRUE(gpu.data()[i] == 0.0f || gpu.data()[i] == 0.3125f) << i;
    }
  }
}

TEST(GpuFillPath, NonFiniteParamsFailEverySample) {
  REQUIRE_GPU();
  std::mt19937_64 rng(43);
  const Pipeline exact = exact_block(0.2);
  const Plan plan = guarded_plan(exact, 0.25);
  Params params = fbtest::random_params(exact, rng);
  params.norm_weight.data()[2] = kNaN;
  const Tensor x = fbtest::uniform_input(exact.input_shape, rng, 0.0f, 1.0f);
  const Tensor gpu = run_gpu(plan, params, x, false);
  const Agreement a = agree(exact, gpu, run_cpu(plan, params, x), 3e-5);
  EXPECT_TRUE(a.ok) << a.message;
  const int64_t spatial = gpu.numel() / (5 * 16);
  for (int64_t i = 0; i < gpu.numel(); ++i) ASSERT_EQ(std::isnan(gpu.data()[i]), (i / spatial) % 16 == 2) << i;
}

TEST(GpuFillPath, AssumeFiniteSkipsTheGuard) {
  REQUIRE_GPU();
  std::mt19937_64 rng(44);
  const Pipeline exact = exact_block(0.2);
  Plan plan = guarded_plan(exact, 0.25);
  plan.assume_finite = true;
  const Params params = fbtest::random_params(exact, rng);
  Tensor x = fbtest::uniform_input(exact.input_shape, rng, 0.0f, 1.0f);
  x.data()[5] = kNaN;
  int64_t unwritten = -1;
  const Tensor gpu = run_gpu(plan, params, x, true, &unwritten);
  EXPECT_EQ(unwritten, 0);
  expect_bitwise(gpu, run_cpu(plan, params, x), "assume_finite");
}

TEST(GpuFillPath, ChainAfterFillAndNaNConstant) {
  REQUIRE_GPU();
  std::mt19937_64 rng(45);
  const Pipeline exact = exact_block(0.5);
  Plan plan;
  plan.pipeline = make_fill_pipeline(exact, 2.0, {fbtest::pointwise(OpKind::Mul, 3.0), fbtest::pointwise(OpKind::Sub, 1.0)});
  const Params params = fbtest::random_params(exact, rng);
  const Tensor x = fbtest::uniform_input(exact.input_shape, rng);
  expect_bitwise(run_gpu(plan, params, x, true), run_cpu(plan, params, x), "fill 2 * 3 - 1");
  plan.pipeline = make_fill_pipeline(exact, std::nan(""));
  const Tensor y = run_gpu(plan, params, x, true);
  for (float v : y.vec()) ASSERT_TRUE(std::isnan(v));
}

// The default block through the public API and the real lowering: guard, fallback and all.
TEST(GpuFillPath, DefaultSpecLoweredSmall) {
  REQUIRE_GPU();
  const std::string spec =
      "input f32[6, 3, 7, 20, 33]\nconv3d out_channels=16 kernel_size=3\ngroup_norm num_groups=8 eps=1e-5\n"
      "minimum 0.0\nclamp min=0.0 max=1.0\ndropout p=0.2 training=true seed=9 offset=2\n";
  const Plan plan = lower(parse_spec(spec, "small-default"));
  ASSERT_TRUE(plan.pipeline.fill_path());
  ASSERT_TRUE(plan.guard.has_value());
  const Params params = init_params(plan.fallback, 3);
  Tensor x = uniform_tensor(plan.pipeline.input_shape, 17);
  x.data()[x.numel() / 6 * 4 + 33] = kNaN;
  RunOptions gpu_opts, cpu_opts;
  gpu_opts.device = Device::Cuda;
  cpu_opts.device = Device::Cpu;
  const Tensor gpu = run(plan, params, x, gpu_opts);
  const Tensor cpu = run(plan, params, x, cpu_opts);
  const Agreement a = agree(plan.fallback, gpu, cpu, 4e-3);
  EXPECT_TRUE(a.ok) << a.message;
}

}  // namespace
}  // namespace fbgpu
