// Dropout before the chain's end (MONAI's norm -> dropout -> activation order): the spec form,
// its place in the Pipeline (a chain op; a last dropout stays Pipeline::dropout, unchanged), the
// masks at (seed, offset, element index) as for a last dropout, simplify and infer_ranges with
// ops after it, the CPU backend against the oracle in every dtype with NaN and Inf, and CUDA's
// refusal.
#include <gtest/gtest.h>

#include <cmath>

#include "block_forms_check.hpp"
#include "plan/cpu_only_forms.hpp"

namespace fbtest {
namespace {

const std::string kHead = "input f32[2, 3, 9, 8]\nconv2d 4 3 padding=1\ngroup_norm 2\n";

TEST(DropoutMidChain, IsAChainOpAndALastDropoutIsUnchanged) {
  const Plan mid = lower(parse_spec(kHead + "dropout 0.3 seed=7\nrelu\n", "t.block"));
  ASSERT_EQ(mid.pipeline.chain.size(), 2u) << dump(mid);
  EXPECT_EQ(mid.pipeline.chain[0].kind, OpKind::Dropout);
  EXPECT_EQ(mid.pipeline.chain[0].dropout.seed, 7u);
  EXPECT_TRUE(mid.pipeline.dropout.is_identity());
  const Plan last = lower(parse_spec(kHead + "relu\ndropout 0.3 seed=7\n", "t.block"));
  ASSERT_EQ(last.pipeline.chain.size(), 1u);
  EXPECT_EQ(last.pipeline.dropout.seed, 7u);
  EXPECT_FALSE(cpu_only_forms(last));
  // One dropout that draws, anywhere in the chain: the CUDA epilogue runs it. Two draw two masks
  // from one dropout state, which the CUDA strategies do not hold.
  EXPECT_FALSE(cpu_only_forms(mid)) << *cpu_only_forms(mid);
  const Plan two = lower(parse_spec(kHead + "dropout 0.3 seed=7\nrelu\ndropout 0.2 seed=8\n", "t.block"));
  const std::optional<std::string> why = cpu_only_forms(two);
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("more than one dropout that draws a mask"), std::string::npos);
  EXPECT_EQ(resolve_device(Device::Auto, two), Device::Cpu);
  // In eval mode (or p = 0) a mid-chain dropout is the identity and simplify removes it.
  const Plan eval = lower(parse_spec(kHead + "dropout 0.3 training=false\nrelu\n", "t.block"));
  EXPECT_EQ(eval.pipeline.chain.size(), 1u);
  EXPECT_FALSE(cpu_only_forms(eval));
}

// The ops after a dropout see x * mask * scale: relu after it keeps dropped zeros at 0, and the
// guarded fold still happens when the chain after it is constant.
TEST(DropoutMidChain, RangesAndSimplifyFollowIt) {
  const Plan relu = lower(parse_spec(kHead + "dropout 0.5\nrelu\n", "t.block"));
  const Range r = relu.exact.ops.back().range;
  EXPECT_EQ(r.lo, 0.0);
  const Plan fold = lower(parse_spec(kHead + "minimum 0\ndropout 0.5\nclamp min=0 max=1\nsilu\n", "t.block"));
  ASSERT_TRUE(fold.pipeline.fill_path()) << dump(fold);  // min 0 then clamp 0..1 is 0 whatever the mask
  // A constant that dropout splits into two values, then an op: the fill path runs it per element.
  const std::string spec = kHead + "clamp min=0.5 max=0.5\ndropout 0.5 seed=3\nadd 1\nprelu\n";
  const Plan split = lower(parse_spec(spec, "t.block"));
  ASSERT_TRUE(split.pipeline.fill_path()) << dump(split);
  for (uint64_t seed : test_seeds(600, 3)) expect_spec_matches_oracle(spec, seed, 1, "DropoutMidChain.*");
}

TEST(DropoutMidChain, CpuMatchesOracleInEveryDtypeWithNonFiniteInput) {
  const std::vector<std::string> bodies = {
      "conv1d 4 3 padding=1\ninstance_norm\ndropout 0.2 seed=11 offset=3\nprelu num_parameters=4\n",
      "conv2d 4 (2, 3)\ngroup_norm 2\nsilu\ndropout 0.5 seed=5\nmul 2\ndropout 0.1 seed=6\n",
      "conv3d 3 2 bias=false\ndropout 1.0\nrelu\n",
  };
  const std::vector<std::string> inputs = {"[3, 2, 17]", "[2, 3, 9, 11]", "[2, 2, 4, 5, 6]"};
  for (uint64_t seed : test_seeds(500, 5))
    for (size_t i = 0; i < bodies.size(); ++i)
      for (const char* dt : {"f32", "bf16", "f16"})
        expect_spec_matches_oracle(std::string("input ") + dt + inputs[i] + "\n" + bodies[i], seed,
                                   static_cast<int>(seed % 3), "DropoutMidChain.CpuMatchesOracleInEveryDtypeWithNonFiniteInput");
}

// The mask is the same definition wherever the dropout stands: with identity ops after it, a
// mid-chain dropout gives the same output as the same dropout last.
TEST(DropoutMidChain, SameMaskAsADropoutLast) {
  const std::string mid = kHead + "relu\ndropout 0.4 seed=9 offset=2\nmul 1\n";
  const std::string last = kHead + "relu\ndropout 0.4 seed=9 offset=2\n";
  LowerOptions keep;
  keep.simplify = false;  // keeps `mul 1`, so the dropout stays mid-chain
  const Plan a = lower(parse_spec(mid, "t.block"), keep), b = lower(parse_spec(last, "t.block"));
  ASSERT_EQ(a.pipeline.chain.back().kind, OpKind::Mul);
  std::mt19937_64 rng(1);
  const Params params = random_block_params(a.pipeline, rng);
  const Tensor x = uniform_input(a.pipeline.input_shape, rng);
  RunOptions cpu;
  cpu.device = Device::Cpu;
  const Tensor ya = run(a, params, x, cpu), yb = run(b, params, x, cpu);
  int64_t zeros = 0;
  for (int64_t i = 0; i < ya.numel(); ++i) {
    ASSERT_EQ(ya.data()[i], yb.data()[i]) << i;
    zeros += ya.data()[i] == 0.0f;
  }
  EXPECT_GT(zeros, ya.numel() / 4);  // relu's zeros and the dropped ones
}

}  // namespace
}  // namespace fbtest
