// Issue 2's acceptance checks, through the public API on the CPU: the default block (KernelBench
// level-2 problem 83) at its full shape, and the same block with a chain that does not fold.
#include <cmath>

#include <gtest/gtest.h>

#include "fuseblock/fuseblock.hpp"
#include "fuseblock/random.hpp"
#include "oracle/oracle.hpp"

using namespace fuseblock;

namespace {

RunOptions on_cpu() {
  RunOptions o;
  o.device = Device::Cpu;
  return o;
}

}  // namespace

TEST(Acceptance, DefaultBlockIsZeroForFiniteInputAndNaNOnlyInTheNaNSample) {
  Plan plan = lower(parse_spec(kDefaultSpec, "<default>"));
  ASSERT_TRUE(plan.pipeline.fill_path()) << dump(plan);
  ASSERT_TRUE(plan.guard.has_value());
  Params params = init_params(plan.fallback, 0);
  const uint64_t seed = ::testing::UnitTest::GetInstance()->random_seed();
  Tensor x = uniform_tensor(plan.pipeline.input_shape, seed);
  const int64_t n = x.size(0), in_per = x.numel() / n;
  const int64_t nan_sample = static_cast<int64_t>(seed % static_cast<uint64_t>(n));
  x.data()[nan_sample * in_per + static_cast<int64_t>(seed * 7919 % static_cast<uint64_t>(in_per))] = std::nanf("");

  Tensor y = run(plan, params, x, on_cpu());
  ASSERT_EQ(y.shape(), (Shape{128, 16, 14, 62, 62}));
  const int64_t out_per = y.numel() / n;
  int64_t bad = 0;
  for (int64_t s = 0; s < n; ++s)
    for (int64_t i = 0; i < out_per; ++i) {
      const float v = y.data()[s * out_per + i];
      bad += s == nan_sample ? !std::isnan(v) : v != 0.0f;
    }
  EXPECT_EQ(bad, 0) << "repro: --gtest_random_seed=" << seed << " (NaN in sample " << nan_sample << ")";
}

TEST(Acceptance, NonFoldingChainRunsTheConvolutionAndMatchesTheOracle) {
  // The problem-83 block with min 0.5 / clamp 0..0.5 at a shape the float64 oracle can afford.
  const std::string spec =
      "input f32[3, 3, 6, 12, 10]\nconv3d out_channels=16 kernel_size=3\ngroup_norm num_groups=8 eps=1e-5\n"
      "minimum 0.5\nclamp min=0.0 max=0.5\ndropout p=0.2 training=true seed=11\n";
  Plan plan = lower(parse_spec(spec, "t.block"));
  ASSERT_FALSE(plan.pipeline.fill_path()) << dump(plan);
  ASSERT_FALSE(plan.guard.has_value());
  const uint64_t seed = ::testing::UnitTest::GetInstance()->random_seed();
  Params params = init_params(plan.pipeline, seed);
  Tensor x = uniform_tensor(plan.pipeline.input_shape, seed + 1);
  Tensor y = run(plan, params, x, on_cpu());
  std::vector<double> ref = oracle_forward(plan.pipeline, params, x);
  ASSERT_EQ(ref.size(), static_cast<size_t>(y.numel()));
  double err2 = 0, ref2 = 0;
  int64_t nonzero = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    ASSERT_FALSE(std::isnan(y.data()[i]) || std::isnan(ref[i])) << i;
    err2 += (y.data()[i] - ref[i]) * (y.data()[i] - ref[i]);
    ref2 += ref[i] * ref[i];
    nonzero += ref[i] != 0.0;
  }
  EXPECT_GT(nonzero, y.numel() / 4) << "the reference must not be mostly zeros";
  EXPECT_LT(std::sqrt(err2 / ref2), 1e-5) << "repro: --gtest_random_seed=" << seed;
}

TEST(Acceptance, WrongInputShapeNamesBothShapes) {
  Plan plan = lower(parse_spec("input f32[2, 3, 8, 8]\nconv2d 4 3\n"));
  Params params = init_params(plan.pipeline, 0);
  Tensor x({2, 3, 8, 9}, 1.0f);
  try {
    run(plan, params, x, on_cpu());
    FAIL() << "no error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 3, 8, 9]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[2, 3, 8, 8]"), std::string::npos) << e.what();
  }
}
