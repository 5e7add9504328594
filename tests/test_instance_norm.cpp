// instance_norm (nn.InstanceNormNd, track_running_stats=False): the spec form, its errors, its
// lowering to GroupNorm with one channel a group, the CPU backend against the oracle's own
// per-(sample, channel) loop in f32, bf16 and f16 with NaN and Inf, and CUDA's refusal.
#include <gtest/gtest.h>

#include "block_forms_check.hpp"
#include "plan/cpu_only_forms.hpp"
#include "user_error_of.hpp"

namespace fbtest {
namespace {

UserError spec_error(const std::string& spec) {
  return user_error_of([&] { lower(parse_spec(spec, "t.block")); }, spec);
}

TEST(InstanceNorm, ParsesWithPyTorchDefaultsAndLowersToOneChannelPerGroup) {
  const Plan plan = lower(parse_spec("input f32[2, 3, 8, 8]\nconv2d 6 3\ninstance_norm\nrelu\n", "t.block"));
  ASSERT_TRUE(plan.pipeline.norm.has_value());
  EXPECT_TRUE(plan.pipeline.norm->instance);
  EXPECT_EQ(plan.pipeline.norm->num_groups, 6);
  EXPECT_FALSE(plan.pipeline.norm->affine);  // nn.InstanceNorm2d's default, unlike GroupNorm's
  EXPECT_EQ(plan.pipeline.norm->eps, 1e-5);
  EXPECT_NE(dump(plan.exact).find("instance_norm eps=1e-05 affine=false"), std::string::npos) << dump(plan.exact);
  EXPECT_NE(dump(plan).find("instance_norm"), std::string::npos);
  const Plan affine = lower(parse_spec("input f32[2, 3, 8]\nconv1d 4 3\ninstance_norm 4 1e-3 affine=true\n", "t.block"));
  EXPECT_TRUE(affine.pipeline.norm->affine);
  EXPECT_EQ(affine.pipeline.norm->eps, 1e-3);
  // Affine: norm.weight and norm.bias as for group_norm (same state_dict keys), PyTorch's 1 and 0.
  const Params params = init_params(affine.pipeline, 1);
  ASSERT_EQ(params.norm_weight.numel(), 4);
  EXPECT_EQ(params.norm_weight.data()[0], 1.0f);
  EXPECT_EQ(params.norm_bias.data()[3], 0.0f);
}

TEST(InstanceNorm, ErrorsNameLineColumnAndHint) {
  const std::string head = "input f32[2, 3, 8, 8]\nconv2d 4 3\n";
  UserError e = spec_error(head + "instance_norm track_running_stats=true\n");
  EXPECT_EQ(e.loc().line, 3);
  EXPECT_EQ(e.loc().col, 15);
  EXPECT_NE(std::string(e.what()).find("track_running_stats"), std::string::npos);
  EXPECT_NE(e.hint().find("out of scope"), std::string::npos);
  e = spec_error(head + "instance_norm num_features=5\n");
  EXPECT_EQ(e.loc().col, 15);
  EXPECT_NE(std::string(e.what()).find("num_features=5 but the conv gives 4"), std::string::npos);
  e = spec_error("input f32[2, 3, 3, 3]\nconv2d 4 3\ninstance_norm\n");
  EXPECT_EQ(e.loc().line, 3);
  EXPECT_NE(std::string(e.what()).find("more than 1 spatial element"), std::string::npos);
  e = spec_error(head + "instance_norm afine=true\n");
  EXPECT_NE(e.hint().find("did you mean 'affine'"), std::string::npos) << e.formatted();
  e = spec_error(head + "relu\ninstance_norm\n");
  EXPECT_EQ(e.loc().line, 4);
  EXPECT_NE(std::string(e.what()).find("instance_norm must come right after the convolution"), std::string::npos);
  e = spec_error("input f32[2, 3, 8, 8]\ninstance_norm\n");
  EXPECT_NE(std::string(e.what()).find("instance_norm needs a convolution before it"), std::string::npos);
}

// The CPU backend (through lower and run) against the oracle's instance_norm, which is its own
// loop, not the GroupNorm code with G = C.
TEST(InstanceNorm, CpuMatchesOracleInEveryDtypeWithNonFiniteInput) {
  const std::vector<std::string> specs = {
      "conv1d 5 3 padding=1\ninstance_norm affine=true\nsilu\n",
      "conv2d 4 (2, 3) stride=2\ninstance_norm eps=0.1\n",
      "conv3d 3 2 bias=false\ninstance_norm affine=true\nleaky_relu 0.2\n",
  };
  const std::vector<std::string> inputs = {"[3, 2, 17]", "[2, 3, 9, 11]", "[2, 2, 4, 5, 6]"};
  for (uint64_t seed : test_seeds(300, 6))
    for (size_t i = 0; i < specs.size(); ++i)
      for (const char* dt : {"f32", "bf16", "f16"})
        expect_spec_matches_oracle(std::string("input ") + dt + inputs[i] + "\n" + specs[i], seed,
                                   static_cast<int>(seed % 3), "InstanceNorm.CpuMatchesOracleInEveryDtypeWithNonFiniteInput");
}

// InstanceNorm is GroupNorm with one channel a group: every CUDA strategy runs it, affine or not
// (the GPU tests compare them with the CPU backend, tests/gpu/test_gpu_store_once.cpp).
TEST(InstanceNorm, CudaRunsItAsAGroupNormOfOneChannelAGroup) {
  for (const char* norm : {"instance_norm\n", "instance_norm affine=true\n"}) {
    const Plan plan = lower(parse_spec(std::string("input f32[2, 3, 8, 8]\nconv2d 4 3\n") + norm, "t.block"));
    ASSERT_TRUE(plan.pipeline.norm.has_value());
    EXPECT_EQ(plan.pipeline.norm->num_groups, 4) << norm;
    EXPECT_FALSE(cpu_only_forms(plan)) << norm << *cpu_only_forms(plan);
  }
  // With a prelu only store_once runs it: the recompute strategies name the prelu, not the norm.
  const Plan plan = lower(parse_spec("input f32[2, 3, 8, 8]\nconv2d 4 3\ninstance_norm\nprelu\n", "t.block"));
  EXPECT_FALSE(cpu_only_forms(plan)) << *cpu_only_forms(plan);
  const std::optional<std::string> why = recompute_unsupported_forms(plan);
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("prelu"), std::string::npos);
  EXPECT_EQ(why->find("instance_norm"), std::string::npos) << *why;
}

}  // namespace
}  // namespace fbtest
