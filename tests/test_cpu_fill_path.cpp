// The fill path under its guard on the CPU: samples whose input is finite and bounded get the
// folded constant (through dropout's mask), the others the exact fallback pipeline.
#include <gtest/gtest.h>

#include <cfloat>
#include <cstring>
#include <cmath>
#include <limits>

#include "cpu/cpu_backend.hpp"
#include "device_common/philox.h"
#include "oracle/compare.hpp"
#include "oracle/oracle.hpp"
#include "pipeline_fixtures.hpp"

namespace fbtest {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

struct GuardCase {
  std::vector<float> values;
  double bound;
  bool passes;
};

TEST(GuardPasses, Table) {
  const double nan = std::nan("");
  const GuardCase cases[] = {
      {{0.5f, -0.5f, 1.0f}, 1.0, true},          // |x| == bound passes
      {{0.5f, -1.0000001f}, 1.0, false},         // just past the bound
      {{0.0f, -0.0f, FLT_TRUE_MIN}, 0.0, false},  // a denormal is above a zero bound
      {{0.0f, -0.0f}, 0.0, true},
      {{1.0f, kNaN, 1.0f}, 10.0, false},
      {{1.0f, kInf}, 10.0, false},
      {{-kInf}, std::numeric_limits<double>::infinity(), false},  // Inf fails even an infinite bound
      {{FLT_MAX, -FLT_MAX}, std::numeric_limits<double>::infinity(), true},
      {{1.0f}, nan, false},                      // non-finite parameters: every sample fails
      {{}, nan, false},
      {{1.0f}, -std::numeric_limits<double>::infinity(), false},
      {{}, 1.0, true},
      {{16777218.0f}, 16777217.9, false},        // float(bound) rounds up to 16777218: not the limit
      {{16777216.0f}, 16777217.9, true},
  };
  for (const GuardCase& c : cases)
    EXPECT_EQ(cpu::guard_passes(c.values.data(), static_cast<int64_t>(c.values.size()), c.bound), c.passes)
        << "bound " << c.bound << ", first value " << (c.values.empty() ? 0.0f : c.values[0]);
  // A bad value far into a long sample (past the early-exit blocks) is still found.
  std::vector<float> long_sample(100003, 0.25f);
  EXPECT_TRUE(cpu::guard_passes(long_sample.data(), 100003, 1.0));
  long_sample[100002] = kNaN;
  EXPECT_FALSE(cpu::guard_passes(long_sample.data(), 100003, 1.0));
}

// conv3d -> GroupNorm -> minimum(-1) -> clamp(0.25, 0.5) -> dropout: 0.25 for every finite input.
Pipeline exact_block(double p = 0.2) {
  ConvSpec c;
  c.batch = 4;
  c.c_in = 3;
  c.c_out = 4;
  c.in_spatial = {4, 7, 9};
  return make_pipeline(c, group_norm(2), {op_minimum(-1.0), op_clamp(0.25, 0.5)}, dropout(p, true, 31, 4));
}

Plan guarded_plan(const Pipeline& exact, double value) {
  Plan plan;
  plan.pipeline = make_fill_pipeline(exact, value);
  plan.guard = Guard{1e12, "minimum(-1) then clamp(0.25, 0.5) is 0.25 for finite input"};
  plan.fallback = exact;
  return plan;
}

Tensor run_plan(const Plan& plan, const Params& params, const Tensor& x) {
  Tensor y(plan.pipeline.output_shape);
  poison(y);
  cpu::run(plan, params, x, y);
  EXPECT_EQ(count_poisoned(y), 0);
  return y;
}

void expect_matches_exact(const Tensor& y, const Pipeline& exact, const Params& params, const Tensor& x) {
  OracleStats stats;
  const std::vector<double> ref = oracle_forward(exact, params, x, &stats);
  const Comparison c = compare_with_oracle(y, ref, stats);
  EXPECT_TRUE(c.ok) << c.message << describe(exact);
}

TEST(CpuFillPath, FiniteInputGivesConstantThroughMask) {
  for (double p : {0.0, 0.2, 1.0}) {
    std::mt19937_64 rng(41);
    const Pipeline exact = exact_block(p);
    const Plan plan = guarded_plan(exact, 0.25);
    const Params params = random_params(exact, rng);
    const Tensor x = uniform_input(exact.input_shape, rng, 0.0f, 1.0f);
    const Tensor y = run_plan(plan, params, x);
    const float scale = fb_dropout_scale(p);
    for (int64_t i = 0; i < y.numel(); ++i) {
      const bool keep = p == 0.0 || fb_dropout_bits(31, 4, i / 4).v[i % 4] < fb_keep_threshold(p);
      ASSERT_EQ(y.data()[i], keep ? 0.25f * scale : 0.0f) << "p " << p << " element " << i;
    }
    // The exact pipeline gives the same, bit for bit.
    Tensor y_exact(exact.output_shape);
    cpu::run_pipeline(exact, params, x, y_exact, 0, exact.input_shape[0]);
    EXPECT_EQ(0, std::memcmp(y.data(), y_exact.data(), sizeof(float) * y.numel())) << "p " << p;
    expect_matches_exact(y, exact, params, x);
  }
}

TEST(CpuFillPath, FailingSampleRunsExactFallback) {
  std::mt19937_64 rng(42);
  const Pipeline exact = exact_block();
  const Plan plan = guarded_plan(exact, 0.25);
  const Params params = random_params(exact, rng);
  Tensor x = uniform_input(exact.input_shape, rng, 0.0f, 1.0f);
  const int64_t in_per = x.numel() / 4;
  x.data()[1 * in_per + 100] = kNaN;  // sample 1: NaN
  x.data()[2 * in_per + 7] = -kInf;   // sample 2: -Inf
  const Tensor y = run_plan(plan, params, x);
  const int64_t per = y.numel() / 4;
  for (int64_t i = 0; i < y.numel(); ++i) {
    const int64_t n = i / per;
    if (n == 1 || n == 2) ASSERT_TRUE(std::isnan(y.data()[i])) << "sample " << n << " element " << i;
    else ASSERT_TRUE(y.data()[i] == 0.0f || y.data()[i] == 0.3125f) << "sample " << n << " element " << i;
  }
  expect_matches_exact(y, exact, params, x);
}

// A non-finite parameter makes the bound NaN: every sample takes the fallback. A NaN GroupNorm weight
// gives NaN in its channel only, which the fill could never produce.
TEST(CpuFillPath, NonFiniteParamsFailEverySample) {
  std::mt19937_64 rng(43);
  const Pipeline exact = exact_block();
  const Plan plan = guarded_plan(exact, 0.25);
  Params params = random_params(exact, rng);
  params.norm_weight.data()[2] = kNaN;
  const Tensor x = uniform_input(exact.input_shape, rng, 0.0f, 1.0f);
  const Tensor y = run_plan(plan, params, x);
  const int64_t spatial = y.numel() / (4 * 4);
  for (int64_t i = 0; i < y.numel(); ++i) ASSERT_EQ(std::isnan(y.data()[i]), (i / spatial) % 4 == 2) << i;
  expect_matches_exact(y, exact, params, x);
}

// assume_finite: the caller's promise replaces the guard, so even a NaN sample gets the fill.
TEST(CpuFillPath, AssumeFiniteSkipsGuard) {
  std::mt19937_64 rng(44);
  const Pipeline exact = exact_block(0.0);
  Plan plan = guarded_plan(exact, 0.25);
  plan.assume_finite = true;
  const Params params = random_params(exact, rng);
  Tensor x = uniform_input(exact.input_shape, rng, 0.0f, 1.0f);
  x.data()[5] = kNaN;
  const Tensor y = run_plan(plan, params, x);
  for (float v : y.vec()) ASSERT_EQ(v, 0.25f);
}

// Ops after the Fill apply to the constant; a NaN constant stays NaN when dropped (x * 0).
TEST(CpuFillPath, ChainAfterFill) {
  std::mt19937_64 rng(45);
  const Pipeline exact = exact_block(0.5);
  Plan plan;
  plan.pipeline = make_fill_pipeline(exact, 2.0, {pointwise(OpKind::Mul, 3.0), pointwise(OpKind::Sub, 1.0)});
  const Params params = random_params(exact, rng);
  const Tensor x = uniform_input(exact.input_shape, rng);
  Tensor y = run_plan(plan, params, x);
  for (float v : y.vec()) ASSERT_TRUE(v == 0.0f || v == 10.0f) << v;

  plan.pipeline = make_fill_pipeline(exact, std::nan(""));
  y = run_plan(plan, params, x);
  for (float v : y.vec()) ASSERT_TRUE(std::isnan(v));
  // And the oracle agrees on the fill path itself.
  OracleStats stats;
  const Comparison c = compare_with_oracle(y, oracle_forward(plan.pipeline, params, x, &stats), stats);
  EXPECT_TRUE(c.ok) << c.message;
}

}  // namespace
}  // namespace fbtest
