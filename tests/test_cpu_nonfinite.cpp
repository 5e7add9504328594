// NaN, Inf, -0.0, denormals and ill-conditioned groups through the CPU backend, each checked
// against the float64 oracle and against what PyTorch gives by definition.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <limits>

#include "cpu/cpu_backend.hpp"
#include "oracle/compare.hpp"
#include "oracle/oracle.hpp"
#include "pipeline_fixtures.hpp"

namespace fbtest {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

Tensor run_cpu(const Pipeline& p, const Params& params, const Tensor& x) {
  Plan plan;
  plan.pipeline = p;
  Tensor y(p.output_shape);
  poison(y);
  cpu::run(plan, params, x, y);
  EXPECT_EQ(count_poisoned(y), 0) << describe(p);
  return y;
}

Tensor run_and_compare(const Pipeline& p, const Params& params, const Tensor& x) {
  Tensor y = run_cpu(p, params, x);
  OracleStats stats;
  const std::vector<double> ref = oracle_forward(p, params, x, &stats);
  const Comparison c = compare_with_oracle(y, ref, stats);
  EXPECT_TRUE(c.ok) << c.message << describe(p);
  return y;
}

int64_t sample_size(const Tensor& t) { return t.numel() / t.size(0); }

int64_t count_nan(const Tensor& y, int64_t n) {
  const int64_t per = sample_size(y);
  int64_t k = 0;
  for (int64_t i = n * per; i < (n + 1) * per; ++i) k += std::isnan(y.data()[i]);
  return k;
}

ConvSpec small_conv3d() {
  ConvSpec c;
  c.batch = 3;
  c.c_in = 3;
  c.c_out = 4;
  c.in_spatial = {5, 6, 7};
  return c;
}

// One NaN or Inf in one input sample: conv spreads it into every channel (so every group), the
// group's statistics become NaN, and the whole sample is NaN; the other samples are untouched.
TEST(CpuNonFinite, NonFiniteInputPoisonsItsSampleOnly) {
  for (float bad : {kNaN, kInf, -kInf})
    for (bool training : {true, false}) {
      std::mt19937_64 rng(3);
      const Pipeline p = make_pipeline(small_conv3d(), group_norm(2), {op_minimum(0.5), op_clamp(0.0, 0.5)},
                                       dropout(0.2, training, 9, 0));
      const Params params = random_params(p, rng);
      Tensor x = uniform_input(p.input_shape, rng, 0.0f, 1.0f);
      x.data()[1 * sample_size(x) + 2 * 42 + 17] = bad;  // sample 1, channel 0, inside the volume
      const Tensor y = run_and_compare(p, params, x);
      const std::string what = std::string("bad value ") + std::to_string(bad) + (training ? " training" : " eval");
      EXPECT_EQ(count_nan(y, 1), sample_size(y)) << what;
      EXPECT_EQ(count_nan(y, 0), 0) << what;
      EXPECT_EQ(count_nan(y, 2), 0) << what;
    }
}

// A NaN weight of out channel 0 makes channel 0 NaN everywhere, hence its group; other groups
// stay finite. A NaN GroupNorm weight makes only its channel NaN.
TEST(CpuNonFinite, NanParameterPoisonsItsGroupOrChannel) {
  std::mt19937_64 rng(4);
  const Pipeline p = make_pipeline(small_conv3d(), group_norm(2), {pointwise(OpKind::Gelu)}, dropout(0.2, true, 1, 2));
  const Tensor x = uniform_input(p.input_shape, rng);
  const int64_t spatial = numel(p.output_shape) / (p.output_shape[0] * p.output_shape[1]);

  Params params = random_params(p, rng);
  params.conv_weight.data()[5] = kNaN;  // out channel 0 -> group 0 (channels 0, 1)
  Tensor y = run_and_compare(p, params, x);
  for (int64_t n = 0; n < 3; ++n)
    for (int64_t c = 0; c < 4; ++c)
      for (int64_t s = 0; s < spatial; ++s)
        ASSERT_EQ(std::isnan(y.data()[(n * 4 + c) * spatial + s]), c < 2) << "n " << n << " c " << c;

  params = random_params(p, rng);
  params.norm_weight.data()[3] = kNaN;
  y = run_and_compare(p, params, x);
  for (int64_t n = 0; n < 3; ++n)
    for (int64_t c = 0; c < 4; ++c)
      for (int64_t s = 0; s < spatial; ++s)
        ASSERT_EQ(std::isnan(y.data()[(n * 4 + c) * spatial + s]), c == 3) << "n " << n << " c " << c;
}

// torch.clamp / minimum / maximum with a NaN scalar give NaN everywhere.
TEST(CpuNonFinite, NanBoundGivesNanEverywhere) {
  std::mt19937_64 rng(5);
  const double nan = std::nan("");
  for (const Op& op : {op_clamp(nan, 1.0), op_clamp(0.0, nan), op_clamp(nan, std::nullopt), op_minimum(nan),
                       op_maximum(nan), pointwise(OpKind::Hardtanh, -1.0, nan, true, true)}) {
    const Pipeline p = make_pipeline(small_conv3d(), group_norm(4), {op}, dropout(0.5, true, 3, 3));
    const Params params = random_params(p, rng);
    const Tensor y = run_and_compare(p, params, uniform_input(p.input_shape, rng));
    for (float v : y.vec()) ASSERT_TRUE(std::isnan(v)) << describe(p);
  }
}

// clamp(min = 0.8, max = -0.3): PyTorch gives max everywhere.
TEST(CpuNonFinite, ClampMinAboveMaxGivesMax) {
  std::mt19937_64 rng(6);
  for (OpKind k : {OpKind::Clamp, OpKind::Hardtanh}) {
    const Pipeline p = make_pipeline(small_conv3d(), group_norm(1), {pointwise(k, 0.8, -0.3, true, true)});
    const Params params = random_params(p, rng);
    const Tensor y = run_and_compare(p, params, uniform_input(p.input_shape, rng));
    for (float v : y.vec()) ASSERT_EQ(v, -0.3f);
  }
}

// Denormal and -0.0 inputs and weights compute exactly (no flush to zero): a 1x1 conv with weight 2
// and no norm doubles every input exactly.
TEST(CpuNonFinite, DenormalsAndNegativeZero) {
  ConvSpec c;
  c.dims = 1;
  c.batch = 2;
  c.c_in = 1;
  c.c_out = 1;
  c.in_spatial = {37};
  c.kernel = {1};
  c.bias = false;
  const Pipeline p = make_pipeline(c, std::nullopt, {pointwise(OpKind::Mul, 0.5)});
  Params params;
  params.conv_weight = Tensor({1, 1, 1}, 4.0f);
  Tensor x(p.input_shape);
  for (int64_t i = 0; i < x.numel(); ++i)
    x.data()[i] = (i % 3 == 0 ? -1.0f : 1.0f) * FLT_TRUE_MIN * static_cast<float>(i * 977 % 4099);
  x.data()[0] = -0.0f;
  x.data()[1] = FLT_MIN;
  const Tensor y = run_and_compare(p, params, x);
  for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ(y.data()[i], 2.0f * x.data()[i]) << "element " << i;

  // Through a full block too, with denormal weights and a -0.0 bias.
  std::mt19937_64 rng(8);
  const Pipeline q = make_pipeline(small_conv3d(), group_norm(2), {pointwise(OpKind::Silu)});
  Params qp = random_params(q, rng);
  for (int64_t i = 0; i < qp.conv_weight.numel(); i += 3) qp.conv_weight.data()[i] = FLT_TRUE_MIN * 100;
  qp.conv_bias.data()[0] = -0.0f;
  Tensor qx = uniform_input(q.input_shape, rng);
  for (int64_t i = 0; i < qx.numel(); i += 5) qx.data()[i] = i % 2 ? -0.0f : FLT_TRUE_MIN * 7;
  run_and_compare(q, qp, qx);
}

// A constant input and G = C: every group is constant (var = 0), rstd = 1/sqrt(eps) stays finite and
// the output is the GroupNorm bias.
TEST(CpuNonFinite, ConstantGroupsGiveBeta) {
  std::mt19937_64 rng(9);
  ConvSpec c = small_conv3d();
  const Pipeline p = make_pipeline(c, group_norm(c.c_out));
  const Params params = random_params(p, rng);
  const Tensor x(p.input_shape, 0.37f);
  const Tensor y = run_and_compare(p, params, x);
  const std::vector<double> ref = oracle_forward(p, params, x);
  const int64_t spatial = y.numel() / (c.batch * c.c_out);
  for (int64_t i = 0; i < y.numel(); ++i) {
    const float beta = params.norm_bias.data()[(i / spatial) % c.c_out];
    ASSERT_NEAR(ref[i], static_cast<double>(beta), 1e-9);  // the oracle is exact up to double rounding
    ASSERT_TRUE(std::isfinite(y.data()[i]));
    ASSERT_NEAR(y.data()[i], beta, 1e-4);  // float32's a * x + b with a = gamma / sqrt(eps)
  }
}

// 1e4 + noise: the statistics must not lose the variance (a one-pass float32 sum of squares
// would). Each group's output has mean 0 and variance 1 to float32's precision at 1e4.
TEST(CpuNonFinite, LargeDcOffsetKeepsVariance) {
  std::mt19937_64 rng(10);
  ConvSpec c = small_conv3d();
  c.batch = 2;
  for (int64_t groups : {int64_t{1}, c.c_out}) {
    const Pipeline p = make_pipeline(c, group_norm(groups, false));
    const Params params = random_params(p, rng);
    Tensor x = uniform_input(p.input_shape, rng, -1.0f, 1.0f);
    for (float& v : x.vec()) v += 1e4f;
    const Tensor y = run_and_compare(p, params, x);
    const int64_t per_group = y.numel() / (c.batch * groups);
    for (int64_t g = 0; g < c.batch * groups; ++g) {
      double s = 0, sq = 0;
      for (int64_t i = g * per_group; i < (g + 1) * per_group; ++i) s += y.data()[i], sq += double(y.data()[i]) * y.data()[i];
      const double mean = s / per_group, var = sq / per_group - mean * mean;
      EXPECT_NEAR(mean, 0.0, 1e-2) << "group " << g << " of G=" << groups;
      EXPECT_NEAR(var, 1.0, 2e-2) << "group " << g << " of G=" << groups;
    }
  }
}

// Conv outputs up to about 1e36 (issue 13 item 5): float32 sums and squares of them overflow
// (PyTorch's CPU kernel gives NaN, its CUDA kernel rstd = 0, docs/semantics.md); fuseblock
// normalizes as the oracle does. Cases: a sample scaled to 1e20, 1e30, 1e36 beside ordinary
// ones; the sample at 1e30 with another sample's input channel at -3e38; one channel at
// 1e30 beside ordinary channels in its group, and alone in its group (G = C).
TEST(CpuNonFinite, HugeConvOutputsNormalizeAsTheOracle) {
  ConvSpec c = small_conv3d();
  struct Case {
    float sample0_scale, channel_value, weight_scale, channel0_weight;
    int64_t groups;
  };
  const Case cases[] = {{1e20f, 0, 1, 1, 2},     {1e30f, 0, 1, 1, 2}, {3e36f, 0, 1, 1, 2},
                        {1e30f, -3e38f, 1e-2f, 1, 2}, {1, 0, 1, 1e30f, 2}, {1, 0, 1, 1e30f, c.c_out}};
  for (const Case& k : cases) {
    std::mt19937_64 rng(13);
    const Pipeline p = make_pipeline(c, group_norm(k.groups), {pointwise(OpKind::Silu)});
    Params params = random_params(p, rng);
    Tensor x = uniform_input(p.input_shape, rng, -1.0f, 1.0f);
    const int64_t per = sample_size(x), plane = per / c.c_in;
    for (int64_t i = 0; i < per; ++i) x.data()[i] *= k.sample0_scale;
    if (k.channel_value != 0) std::fill(x.data() + per, x.data() + per + plane, k.channel_value);
    const int64_t per_out = params.conv_weight.numel() / c.c_out;
    for (int64_t i = 0; i < params.conv_weight.numel(); ++i)
      params.conv_weight.data()[i] *= k.weight_scale * (i < per_out ? k.channel0_weight : 1.0f);
    const Tensor y = run_and_compare(p, params, x);
    for (float v : y.vec()) ASSERT_TRUE(std::isfinite(v)) << "scale " << k.sample0_scale << ", G " << k.groups;
  }
}

// float32 overflow inside the chain is Inf (as PyTorch stores each op in float32), and Inf - Inf is NaN.
TEST(CpuNonFinite, ChainOverflowGivesInfThenNan) {
  std::mt19937_64 rng(12);
  const Pipeline p = make_pipeline(small_conv3d(), group_norm(2), {pointwise(OpKind::Mul, 1e30), pointwise(OpKind::Mul, 1e30)});
  const Params params = random_params(p, rng);
  const Tensor x = uniform_input(p.input_shape, rng);
  const Tensor y = run_and_compare(p, params, x);
  int64_t infs = 0;
  for (float v : y.vec()) infs += std::isinf(v);
  EXPECT_GT(infs, y.numel() / 2);

  Pipeline q = p;
  q.chain.push_back(pointwise(OpKind::Sub, std::numeric_limits<double>::infinity()));
  q.chain.push_back(pointwise(OpKind::Mish));
  q.dropout = dropout(0.5, true, 1, 1);
  run_and_compare(q, params, x);
}

}  // namespace
}  // namespace fbtest
