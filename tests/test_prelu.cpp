// prelu (nn.PReLU): the spec form and its parameter keys, its errors, F.prelu's formula on -0.0
// and NaN, the CPU backend against the oracle in f32, bf16 and f16 with NaN and Inf in the input
// and in the slopes, the range analysis under the guard (a NaN slope must fail the guard), and
// CUDA's refusal.
#include <gtest/gtest.h>

#include <cmath>

#include "block_forms_check.hpp"
#include "ops/pointwise_eval.hpp"
#include "plan/cpu_only_forms.hpp"
#include "user_error_of.hpp"

namespace fbtest {
namespace {

const std::string kHead = "input f32[2, 3, 9, 8]\nconv2d 4 3 padding=1\n";

TEST(PRelu, ParsesWithPyTorchDefaultsAndNamesItsWeights) {
  const Plan one = lower(parse_spec(kHead + "group_norm 2\nprelu\n", "t.block"));
  ASSERT_EQ(one.pipeline.chain.size(), 1u);
  const Op& op = one.pipeline.chain[0];
  EXPECT_EQ(op.kind, OpKind::PRelu);
  EXPECT_EQ(op.pw.num_parameters, 1);
  EXPECT_EQ(prelu_weight_key(op.pw), "prelu.weight");
  const Params params = init_params(one.pipeline, 3);
  ASSERT_EQ(params.prelu_weight.size(), 1u);
  ASSERT_EQ(params.prelu_weight[0].shape(), Shape{1});
  EXPECT_EQ(params.prelu_weight[0].data()[0], 0.25f);  // nn.PReLU's init

  const Plan two = lower(parse_spec(kHead + "prelu num_parameters=4 init=0.1\nsilu\nprelu\n", "t.block"));
  ASSERT_EQ(two.pipeline.chain.size(), 3u);
  EXPECT_EQ(prelu_weight_key(two.pipeline.chain[0].pw), "prelu.0.weight");
  EXPECT_EQ(prelu_weight_key(two.pipeline.chain[2].pw), "prelu.1.weight");
  const Params p2 = init_params(two.pipeline, 3);
  ASSERT_EQ(p2.prelu_weight.size(), 2u);
  EXPECT_EQ(p2.prelu_weight[0].shape(), Shape{4});
  EXPECT_EQ(p2.prelu_weight[0].data()[3], 0.1f);
  EXPECT_NE(dump(two.exact).find("prelu num_parameters=4 weight=prelu.0.weight"), std::string::npos) << dump(two.exact);
  // check_params names a missing or misshapen slope by its key.
  Params missing = p2;
  missing.prelu_weight.pop_back();
  UserError e = user_error_of([&] { check_params(two.pipeline, missing); }, "no prelu.1.weight");
  EXPECT_NE(std::string(e.what()).find("prelu.1.weight is missing"), std::string::npos);
  Params wrong = p2;
  wrong.prelu_weight[0] = Tensor({3}, 0.2f);
  e = user_error_of([&] { check_params(two.pipeline, wrong); }, "prelu.0.weight [3]");
  EXPECT_NE(std::string(e.what()).find("prelu.0.weight has shape [3], expected [4]"), std::string::npos);
}

TEST(PRelu, ErrorsNameLineColumnAndHint) {
  auto error = [](const std::string& spec) { return user_error_of([&] { lower(parse_spec(spec, "t.block")); }, spec); };
  UserError e = error(kHead + "prelu num_parameters=3\n");
  EXPECT_EQ(e.loc().line, 3);
  EXPECT_EQ(e.loc().col, 7);
  EXPECT_NE(std::string(e.what()).find("num_parameters=3 but its input has 4 channels"), std::string::npos);
  EXPECT_NE(e.hint().find("num_parameters=4"), std::string::npos);
  e = error(kHead + "prelu 0\n");
  EXPECT_NE(std::string(e.what()).find("must be 1 or the channel count"), std::string::npos);
  e = error(kHead + "prelu init=abc\n");
  EXPECT_EQ(e.loc().col, 12);
  e = error(kHead + "prelu num_parameter=4\n");
  EXPECT_NE(e.hint().find("did you mean 'num_parameters'"), std::string::npos);
}

TEST(PRelu, FollowsFPreluOnZerosAndNaN) {
  EXPECT_EQ(eval_prelu(2.0f, -0.5f), 2.0f);
  EXPECT_EQ(eval_prelu(-2.0f, -0.5f), 1.0f);
  // x > 0 is false for -0.0: the slope applies, and a negative slope gives +0.
  EXPECT_FALSE(std::signbit(eval_prelu(-0.0f, -0.5f)));
  EXPECT_TRUE(std::signbit(eval_prelu(-0.0f, 0.5f)));
  EXPECT_TRUE(std::isnan(eval_prelu(NAN, 0.25f)));
  EXPECT_TRUE(std::isnan(eval_prelu(0.0f, NAN)));  // a NaN slope reaches zeros too
  EXPECT_EQ(eval_prelu(3.0f, NAN), 3.0f);
}

TEST(PRelu, CpuMatchesOracleInEveryDtypeWithNonFiniteInput) {
  const std::vector<std::string> bodies = {
      "conv1d 4 3 padding=1\ngroup_norm 2\nprelu\n",
      "conv2d 4 (2, 3) stride=2\ninstance_norm affine=true\nprelu num_parameters=4\nmul 3\nprelu\n",
      "conv3d 3 2 bias=false\nprelu num_parameters=3 init=-0.5\nclamp min=-1 max=1\n",
  };
  const std::vector<std::string> inputs = {"[3, 2, 17]", "[2, 3, 9, 11]", "[2, 2, 4, 5, 6]"};
  for (uint64_t seed : test_seeds(400, 5))
    for (size_t i = 0; i < bodies.size(); ++i)
      for (const char* dt : {"f32", "bf16", "f16"})
        expect_spec_matches_oracle(std::string("input ") + dt + inputs[i] + "\n" + bodies[i], seed,
                                   static_cast<int>(seed % 3), "PRelu.CpuMatchesOracleInEveryDtypeWithNonFiniteInput");
}

// A chain with prelu that folds under the guard (any finite slope times a finite value, clamped
// to [0, 0], is 0): a NaN or Inf slope voids that proof, so the guard must send every sample to
// the exact path, where NaN * x and Inf * 0 give NaN as in PyTorch.
TEST(PRelu, NonFiniteSlopesFailTheGuard) {
  const std::string spec = kHead + "group_norm 2\nprelu num_parameters=4\nclamp min=0 max=0\n";
  const Block b = parse_spec(spec, "t.block");
  const Plan plan = lower(b);
  ASSERT_TRUE(plan.guard.has_value()) << dump(plan);
  ASSERT_TRUE(plan.pipeline.fill_path());
  std::mt19937_64 rng(5);
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    Params params = random_block_params(plan.fallback, rng);
    params.prelu_weight[0].data()[1] = bad;
    EXPECT_TRUE(std::isnan(guard_input_bound(params, plan.guard->conv_output_bound)));
    expect_spec_matches_oracle(spec, 5, 0, "PRelu.NonFiniteSlopesFailTheGuard", &params);
  }
  // Without a guard-worthy proof the exact analysis keeps NaN possible at zeros and below.
  EXPECT_FALSE(plan.exact.ops.back().range.is_constant());
}

TEST(PRelu, RangesAreSound) {
  // relu then prelu: x >= 0, so only zeros meet the slope: under the guard a zero of either sign;
  // without it a NaN slope may make them NaN.
  const Block b = parse_spec(kHead + "group_norm 2\nrelu\nprelu\nclamp min=-1 max=0\n", "t.block");
  const Plan plan = lower(b);
  const Range exact = plan.exact.ops[4].range;
  EXPECT_TRUE(exact.nan);
  // x > 0 only (after clamp min=1): prelu is the identity and simplify drops it.
  const Plan dropped = lower(parse_spec(kHead + "group_norm 2\nclamp min=1\nprelu\n", "t.block"));
  EXPECT_EQ(dropped.pipeline.chain.size(), 1u) << dump(dropped);
}

// Only store_once emits prelu: the CUDA backend runs the block (cpu_only_forms is silent), the
// recompute and fill strategies refuse it naming the prelu, and a chain folded to a constant
// (constant_fill's, without prelu slopes) keeps it on the CPU.
TEST(PRelu, OnlyStoreOnceRunsItOnCuda) {
  const Plan plan = lower(parse_spec(kHead + "group_norm 2\nprelu\n", "t.block"));
  EXPECT_FALSE(cpu_only_forms(plan)) << *cpu_only_forms(plan);
  EXPECT_TRUE(needs_store_once(plan));
  const std::optional<std::string> why = recompute_unsupported_forms(plan);
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("the block uses prelu: only store_once"), std::string::npos) << *why;
  const Plan two = lower(parse_spec(kHead + "group_norm 2\nprelu num_parameters=4\nsilu\nprelu\n", "t.block"));
  EXPECT_FALSE(cpu_only_forms(two)) << *cpu_only_forms(two);
}

}  // namespace
}  // namespace fbtest
