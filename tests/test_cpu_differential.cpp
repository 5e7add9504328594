// The CPU backend against the float64 oracle on random blocks: conv1d/2d/3d with random
// stride/padding/dilation/bias, odd/prime/size-1 shapes, G = 1 and G = C, affine on and off,
// chains of every pointwise op, dropout in train and eval mode. Output poisoned before each run.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>

#include "cpu/cpu_backend.hpp"
#include "oracle/compare.hpp"
#include "oracle/oracle.hpp"
#include "pipeline_fixtures.hpp"
#include "random_blocks.hpp"

namespace fbtest {
namespace {

Plan plan_of(const Pipeline& p) {
  Plan plan;
  plan.pipeline = p;
  return plan;
}

// Runs the CPU backend on a poisoned output and checks it against the oracle.
void expect_matches_oracle(const Pipeline& p, const Params& params, const Tensor& x, const std::string& repro_line,
                           double rtol = 1e-5) {
  Tensor y(p.output_shape);
  poison(y);
  cpu::run(plan_of(p), params, x, y);
  EXPECT_EQ(count_poisoned(y), 0) << "elements never written\n" << repro_line;
  OracleStats stats;
  const std::vector<double> ref = oracle_forward(p, params, x, &stats);
  const Comparison c = compare_with_oracle(y, ref, stats, rtol);
  EXPECT_TRUE(c.ok) << c.message << repro_line;
  if (std::getenv("FB_TEST_VERBOSE"))  // the margin: how close each case came to its tolerance
    std::printf("worst %.3g of tolerance, norm terms %.3g, %lld elements, %s\n", c.worst, stats.norm_terms,
                static_cast<long long>(y.numel()), repro_line.c_str());
}

TEST(CpuDifferential, RandomBlocks) {
  int with_norm = 0, with_dropout = 0, g_equals_c = 0;
  for (uint64_t seed : test_seeds(1000, 1500)) {
    const RandomBlock b = random_block(seed);
    with_norm += b.pipeline.norm.has_value();
    with_dropout += !b.pipeline.dropout.is_identity();
    g_equals_c += b.pipeline.norm && b.pipeline.norm->num_groups == b.pipeline.output_shape[1] &&
                  b.pipeline.output_shape[1] > 1;
    expect_matches_oracle(b.pipeline, b.params, b.input, repro("CpuDifferential.RandomBlocks", seed, b.pipeline));
    if (HasFailure()) break;  // one repro is enough
  }
  if (!std::getenv("FB_TEST_SEED")) {  // the generator covers what it claims to
    EXPECT_GT(with_norm, 1000);
    EXPECT_GT(with_dropout, 400);
    EXPECT_GT(g_equals_c, 150);
  }
}

// Every pointwise op alone after a norm, with each conv rank: no op is left to chance.
TEST(CpuDifferential, EveryPointwiseOpAfterGroupNorm) {
  std::mt19937_64 rng(7);
  for (int dims = 1; dims <= 3; ++dims)
    for (int k = static_cast<int>(OpKind::Minimum); k <= static_cast<int>(OpKind::Fill); ++k) {
      ConvSpec c;
      c.dims = dims;
      c.in_spatial = dims == 1 ? std::vector<int64_t>{29} : dims == 2 ? std::vector<int64_t>{7, 9} : std::vector<int64_t>{3, 5, 6};
      c.kernel = {3, 2, 3};
      c.padding = {1, 0, 1};
      Op op = random_pointwise_op(rng);
      op.kind = static_cast<OpKind>(k);
      if (op.kind == OpKind::Clamp || op.kind == OpKind::Hardtanh) op = pointwise(op.kind, -0.7, 0.9, true, true);
      if (op.kind == OpKind::Softplus) op = pointwise(op.kind, 1.0, 20.0);
      if (op.kind == OpKind::LeakyRelu) op = pointwise(op.kind, 0.01);
      if (op.kind == OpKind::Elu) op = pointwise(op.kind, 1.0);
      if (op.kind == OpKind::Div) op = pointwise(op.kind, 0.75);
      for (bool tanh_approx : {false, true}) {
        if (tanh_approx && op.kind != OpKind::Gelu) continue;
        op.pw.tanh_approx = tanh_approx;
        const Pipeline p = make_pipeline(c, group_norm(2), {op});
        const Params params = random_params(p, rng);
        const Tensor x = uniform_input(p.input_shape, rng);
        expect_matches_oracle(p, params, x, "op " + std::string(op_name(op.kind)) + ": " + describe(p));
      }
    }
}

// The KernelBench problem-83 block, scaled down: conv3d -> GroupNorm(8) -> min 0 -> clamp 0..1 -> dropout 0.2,
// and its non-collapsing variant (min 0.5, clamp 0..0.5).
TEST(CpuDifferential, Problem83Scaled) {
  std::mt19937_64 rng(83);
  ConvSpec c;
  c.batch = 3;
  c.c_in = 3;
  c.c_out = 16;
  c.in_spatial = {6, 11, 13};
  for (double m : {0.0, 0.5}) {
    const Pipeline p = make_pipeline(c, group_norm(8), {op_minimum(m), op_clamp(0.0, m == 0.0 ? 1.0 : 0.5)},
                                     dropout(0.2, true, 42, 3));
    const Params params = random_params(p, rng);
    const Tensor x = uniform_input(p.input_shape, rng, 0.0f, 1.0f);
    expect_matches_oracle(p, params, x, describe(p));
  }
}

// Runs over sample ranges (as the guard's fallback does) equal one run over the batch, bit for bit.
TEST(CpuDifferential, SampleRangesEqualWholeBatch) {
  for (uint64_t seed : test_seeds(5000, 40)) {
    const RandomBlock b = random_block(seed);
    const Pipeline& p = b.pipeline;
    Tensor whole(p.output_shape), pieces(p.output_shape);
    poison(whole);
    poison(pieces);
    cpu::run_pipeline(p, b.params, b.input, whole, 0, p.input_shape[0]);
    for (int64_t n = p.input_shape[0]; n-- > 0;) cpu::run_pipeline(p, b.params, b.input, pieces, n, n + 1);
    ASSERT_EQ(0, std::memcmp(whole.data(), pieces.data(), sizeof(float) * whole.numel()))
        << repro("CpuDifferential.SampleRangesEqualWholeBatch", seed, p);
  }
}

// Shapes larger than one chunk and one epilogue block, with channel boundaries that do not fall on
// multiples of four (so the dropout's Philox blocks straddle channels and samples).
TEST(CpuDifferential, SeveralChunksAndBlocks) {
  std::mt19937_64 rng(11);
  ConvSpec c;
  c.dims = 2;
  c.batch = 3;
  c.c_in = 2;
  c.c_out = 6;
  c.in_spatial = {67, 71};
  c.kernel = {3, 3};
  c.stride = {1, 1};
  c.padding = {1, 0};
  c.dilation = {1, 2};
  const Pipeline p = make_pipeline(c, group_norm(3), {pointwise(OpKind::Silu), op_maximum(-0.1)},
                                   dropout(0.3, true, 5, 17));
  const Params params = random_params(p, rng);
  const Tensor x = uniform_input(p.input_shape, rng);
  expect_matches_oracle(p, params, x, describe(p));
}

TEST(CpuDifferential, EmptyBatchWritesNothing) {
  ConvSpec c;
  c.batch = 0;
  const Pipeline p = make_pipeline(c, group_norm(2), {pointwise(OpKind::Relu)}, dropout(0.5));
  std::mt19937_64 rng(1);
  const Params params = random_params(p, rng);
  Tensor x(p.input_shape), y(p.output_shape);
  EXPECT_NO_THROW(cpu::run(plan_of(p), params, x, y));
  EXPECT_EQ(y.numel(), 0);
}

}  // namespace
}  // namespace fbtest
