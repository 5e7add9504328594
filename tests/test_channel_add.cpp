// add_per_sample_channel (diffusers' ResnetBlock2D: conv1(x) + temb[:, :, None, None] -> GroupNorm):
// the spec form and its errors, the lowering (never guarded, never folded), the run() overload and
// its errors, the CPU backend against the oracle in f32, bf16 and f16 with NaN and Inf in both
// inputs, and CUDA's refusal.
#include <gtest/gtest.h>

#include "block_forms_check.hpp"
#include "plan/cpu_only_forms.hpp"
#include "user_error_of.hpp"

namespace fbtest {
namespace {

UserError spec_error(const std::string& spec) {
  return user_error_of([&] { lower(parse_spec(spec, "t.block")); }, spec);
}

const std::string kResnet = "input f32[2, 3, 8, 8]\nconv2d 4 3\nadd_per_sample_channel\ngroup_norm 2\nsilu\n";

TEST(ChannelAdd, ParsesAsAFlagOfTheConvAndShowsInTheDumps) {
  const Plan plan = lower(parse_spec(kResnet, "t.block"));
  EXPECT_TRUE(plan.pipeline.channel_add());
  EXPECT_EQ(channel_add_shape(plan), (Shape{2, 4}));
  EXPECT_NE(dump(plan.exact).find("+ add_per_sample_channel"), std::string::npos) << dump(plan.exact);
  EXPECT_NE(dump(plan).find("add_per_sample_channel [N, C_out]"), std::string::npos) << dump(plan);
  EXPECT_FALSE(lower(parse_spec("input f32[2, 3, 8, 8]\nconv2d 4 3\ngroup_norm 2\n", "t.block")).pipeline.channel_add());
  // Without a norm, and with dropout right after it.
  EXPECT_TRUE(lower(parse_spec("input f32[2, 3, 8]\nconv1d 4 3\nadd_per_sample_channel\ndropout\n", "t.block"))
                  .pipeline.channel_add());
}

// Problem 83's chain folds to 0 under the guard; the added input is not guarded (any value, NaN
// included), so with it the block keeps its conv and has no guard.
TEST(ChannelAdd, NeverTakesTheGuardedFillPath) {
  const std::string tail = "group_norm 2\nminimum 0.0\nclamp 0.0 1.0\n";
  const Plan folded = lower(parse_spec("input f32[2, 3, 8, 8]\nconv2d 4 3\n" + tail, "t.block"));
  ASSERT_TRUE(folded.guard.has_value());  // the baseline: this block does fold
  ASSERT_TRUE(folded.pipeline.fill_path());
  const Plan plan = lower(parse_spec("input f32[2, 3, 8, 8]\nconv2d 4 3\nadd_per_sample_channel\n" + tail, "t.block"));
  EXPECT_FALSE(plan.guard.has_value());
  EXPECT_FALSE(plan.pipeline.fill_path());
  const Op* conv = plan.exact.find(OpKind::Conv);
  EXPECT_TRUE(conv->range.nan);
  EXPECT_TRUE(std::isinf(conv->range.hi));
}

TEST(ChannelAdd, ErrorsNameLineColumnAndHint) {
  const std::string head = "input f32[2, 3, 8, 8]\nconv2d 4 3\n";
  UserError e = spec_error(head + "add_per_sample_channel\ngroup_norm 2\n  add_per_sample_channel\n");
  EXPECT_EQ(e.loc().line, 5);
  EXPECT_EQ(e.loc().col, 3);
  EXPECT_NE(std::string(e.what()).find("given twice: first at line 3, column 1"), std::string::npos) << e.formatted();
  e = spec_error(head + "group_norm 2\nadd_per_sample_channel\n");
  EXPECT_EQ(e.loc().line, 4);
  EXPECT_NE(std::string(e.what()).find("must come right after the convolution"), std::string::npos) << e.formatted();
  EXPECT_NE(e.hint().find("before the norm"), std::string::npos);
  e = spec_error(head + "relu\nadd_per_sample_channel\n");
  EXPECT_EQ(e.loc().line, 4);
  e = spec_error("input f32[2, 3, 8, 8]\nadd_per_sample_channel\n");
  EXPECT_EQ(e.loc().line, 2);
  EXPECT_NE(std::string(e.what()).find("needs a convolution before it"), std::string::npos) << e.formatted();
  e = spec_error(head + "add_per_sample_channel 3\n");
  EXPECT_EQ(e.loc().line, 3);
  e = spec_error(head + "add_per_sample_chanel\n");
  EXPECT_NE(e.hint().find("did you mean 'add_per_sample_channel'"), std::string::npos) << e.formatted();
}

TEST(ChannelAdd, RunChecksTheAddedInput) {
  const Plan plan = lower(parse_spec(kResnet, "t.block"));
  const Params params = init_params(plan.pipeline, 1);
  const Tensor x(plan.pipeline.input_shape, 0.5f);
  RunOptions cpu;
  cpu.device = Device::Cpu;
  UserError e = user_error_of([&] { run(plan, params, x, cpu); }, "no channel_add");
  EXPECT_NE(std::string(e.what()).find("[2, 4]"), std::string::npos) << e.formatted();
  EXPECT_NE(std::string(e.what()).find("none was given"), std::string::npos);
  e = user_error_of([&] { run(plan, params, x, Tensor(Shape{2, 3}), cpu); }, "wrong shape");
  EXPECT_NE(std::string(e.what()).find("has shape [2, 3], but the block expects [2, 4]"), std::string::npos) << e.formatted();
  const Plan plain = lower(parse_spec("input f32[2, 3, 8, 8]\nconv2d 4 3\ngroup_norm 2\n", "t.block"));
  e = user_error_of([&] { run(plain, init_params(plain.pipeline, 1), x, Tensor(Shape{2, 4}), cpu); }, "not needed");
  EXPECT_NE(std::string(e.what()).find("has no add_per_sample_channel"), std::string::npos) << e.formatted();
  const Plan half = lower(parse_spec("input bf16[2, 3, 8, 8]\nconv2d 4 3\nadd_per_sample_channel\n", "t.block"));
  Params hp = init_params(half.pipeline, 1);
  Tensor hx(half.pipeline.input_shape, 0.5f);
  hx.round_to(DType::BF16);
  e = user_error_of([&] { run(half, hp, hx, Tensor(Shape{2, 4}), cpu); }, "f32 add for a bf16 block");
  EXPECT_NE(std::string(e.what()).find("bf16"), std::string::npos) << e.formatted();
}

// By hand: a 1x1 conv of weight 2 and bias 1, then + add per (sample, channel); no norm.
TEST(ChannelAdd, AddsToTheConvOutputPerSampleAndChannel) {
  const Plan plan = lower(parse_spec("input f32[2, 1, 3]\nconv1d 2 1\nadd_per_sample_channel\n", "t.block"));
  Params params = init_params(plan.pipeline, 1);
  params.conv_weight = Tensor(Shape{2, 1, 1}, std::vector<float>{2.0f, -1.0f});
  params.conv_bias = Tensor(Shape{2}, std::vector<float>{1.0f, 0.0f});
  const Tensor x(Shape{2, 1, 3}, std::vector<float>{1, 2, 3, 4, 5, 6});
  const Tensor add(Shape{2, 2}, std::vector<float>{10, 20, 30, NAN});
  RunOptions cpu;
  cpu.device = Device::Cpu;
  const Tensor y = run(plan, params, x, add, cpu);
  const std::vector<float> want{13, 15, 17, 19, 18, 17, 39, 41, 43};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(y.data()[i], want[i]) << i;
  for (size_t i = 9; i < 12; ++i) EXPECT_TRUE(std::isnan(y.data()[i])) << i;
}

// In bf16 the conv output is stored first, then the sum (PyTorch eager: a conv output tensor, then
// `+`). 1 + 2^-8 is a tie between the bf16 neighbours 1 and 1 + 2^-7 and rounds to even, 1; so
// conv 1 * 1 + bias 2^-8 stores 1, and 1 + 2^-8 stores 1 again. The float32 sum rounded once,
// 1 + 2^-8 + 2^-8 = 1 + 2^-7, would be a bf16 value. `sub 1.0` then shows what was stored
// (0, where an unrounded sum would leave 2^-8 and a single rounding 2^-7).
TEST(ChannelAdd, HalfRoundsTheConvOutputThenTheSum) {
  const Plan plan = lower(parse_spec("input bf16[1, 1, 1]\nconv1d 1 1\nadd_per_sample_channel\nsub 1.0\n", "t.block"));
  Params params = init_params(plan.pipeline, 1);
  params.conv_weight = Tensor(Shape{1, 1, 1}, std::vector<float>{1.0f});
  params.conv_bias = Tensor(Shape{1}, std::vector<float>{0x1p-8f});
  params.conv_weight.round_to(DType::BF16);
  params.conv_bias.round_to(DType::BF16);
  Tensor x(Shape{1, 1, 1}, std::vector<float>{1.0f});
  x.round_to(DType::BF16);
  Tensor add(Shape{1, 1}, std::vector<float>{0x1p-8f});
  add.round_to(DType::BF16);
  RunOptions cpu;
  cpu.device = Device::Cpu;
  EXPECT_EQ(run(plan, params, x, add, cpu).data()[0], 0.0f);
  EXPECT_EQ(oracle_forward(plan.pipeline, params, x, nullptr, &add)[0], 0.0);
}

TEST(ChannelAdd, CpuMatchesOracleInEveryDtypeWithNonFiniteInputs) {
  const std::vector<std::string> specs = {
      "conv2d 8 3 padding=1\nadd_per_sample_channel\ngroup_norm 2 eps=1e-6\nsilu\ndropout 0.1\n",
      "conv1d 6 3\nadd_per_sample_channel\ngroup_norm 3 affine=false\ngelu\n",
      "conv3d 4 2 bias=false\nadd_per_sample_channel\nrelu\n",
      "conv2d 4 (2, 3) stride=2\nadd_per_sample_channel\ninstance_norm affine=true\nprelu\n",
  };
  const std::vector<std::string> inputs = {"[2, 3, 7, 6]", "[3, 2, 17]", "[2, 2, 4, 5, 3]", "[2, 3, 9, 11]"};
  for (uint64_t seed : test_seeds(500, 6))
    for (size_t i = 0; i < specs.size(); ++i)
      for (const char* dt : {"f32", "bf16", "f16"})
        expect_spec_matches_oracle(std::string("input ") + dt + inputs[i] + "\n" + specs[i], seed,
                                   static_cast<int>(seed % 3), "ChannelAdd.CpuMatchesOracleInEveryDtypeWithNonFiniteInputs");
}

// Only store_once emits the add (before its statistics): the CUDA backend runs the block, the
// recompute strategies refuse it naming the add.
TEST(ChannelAdd, OnlyStoreOnceRunsItOnCuda) {
  const Plan plan = lower(parse_spec(kResnet, "t.block"));
  EXPECT_FALSE(cpu_only_forms(plan)) << *cpu_only_forms(plan);
  EXPECT_TRUE(needs_store_once(plan));
  const std::optional<std::string> why = recompute_unsupported_forms(plan);
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("the block uses add_per_sample_channel: only store_once"), std::string::npos) << *why;
}

}  // namespace
}  // namespace fbtest
