// A norm kept in float32 in a bf16/f16 block (`param_dtype=f32`, as nn.GroupNorm(..., dtype=
// torch.float32) after a bfloat16 conv): the combinations PyTorch accepts and refuses, the
// parameter slots' types, the CPU backend against the float64 oracle with unrounded float32
// norm parameters (NaN/Inf injected), and store_once's program reading them as float.
#include <gtest/gtest.h>

#include "block_forms_check.hpp"
#include "cuda/runtime/nvrtc_compile.hpp"
#include "cuda/codegen/emit_program_options.hpp"
#include "cuda/select/select.hpp"
#include "cuda/strategies/strategy.hpp"
#include "plan/cpu_only_forms.hpp"
#include "user_error_of.hpp"

namespace fbtest {
namespace {

std::string spec_of(const char* dtype, const char* norm) {
  return std::string("input ") + dtype + "[3, 4, 7, 6]\nconv2d 8 3 padding=1\n" + norm + "\nsilu\n";
}

TEST(MixedNorm, AcceptsWhatPyTorchAcceptsAndRefusesTheRestNamingTheFix) {
  for (const char* half : {"bf16", "f16"}) {
    const Plan plan = lower(parse_spec(spec_of(half, "group_norm 4 param_dtype=f32"), "t.block"));
    ASSERT_TRUE(plan.pipeline.types.norm_params.has_value());
    EXPECT_EQ(*plan.pipeline.types.norm_params, DType::F32);
    EXPECT_EQ(plan.pipeline.types.norm_param_type(), DType::F32);
    EXPECT_NE(plan.pipeline.types.storage, DType::F32);
    // Its own type written out is no mixed block.
    const Plan same = lower(parse_spec(spec_of(half, std::string("group_norm 4 param_dtype=").append(half).c_str()), "t.block"));
    EXPECT_FALSE(same.pipeline.types.norm_params.has_value());
  }
  // PyTorch: "mixed dtype (CPU): expect parameter to have scalar type of Float".
  for (auto [dt, norm] : {std::pair{"f32", "group_norm 4 param_dtype=bf16"}, {"bf16", "group_norm 4 param_dtype=f16"},
                          {"f16", "instance_norm affine=true param_dtype=bf16"}}) {
    const std::string spec = spec_of(dt, norm);
    const UserError e = user_error_of([&] { lower(parse_spec(spec, "t.block")); }, spec);
    EXPECT_NE(std::string(e.what()).find("param_dtype"), std::string::npos) << e.what();
  }
  const std::string typo = spec_of("bf16", "group_norm 4 param_dtype=f33");
  const UserError e = user_error_of([&] { lower(parse_spec(typo, "t.block")); }, typo);
  EXPECT_NE(std::string(e.what()).find("unknown param_dtype"), std::string::npos) << e.what();
}

TEST(MixedNorm, ParamsKeepTheNormInFloat32AndTheConvInTheBlockType) {
  const Plan plan = lower(parse_spec(spec_of("bf16", "group_norm 4 param_dtype=f32"), "t.block"));
  const Params p = init_params(plan.pipeline, 7);
  EXPECT_EQ(p.conv_weight.dtype(), DType::BF16);
  EXPECT_EQ(p.norm_weight.dtype(), DType::F32);
  EXPECT_NO_THROW(check_params(plan.pipeline, p));
  Params fine = p;
  fine.conv_weight = Tensor(p.conv_weight.shape(), 0.5f);  // f32 values in a bf16 slot: refused
  EXPECT_THROW(check_params(plan.pipeline, fine), UserError);
}

// CPU backend against the oracle, the norm parameters unrounded float32; and those parameters
// really are read unrounded: the same block with them rounded to the storage type differs.
TEST(MixedNorm, CpuMatchesTheOracleWithFloat32NormParameters) {
  for (const uint64_t seed : fresh_test_seeds(4))
    for (const char* half : {"bf16", "f16"})
      for (const char* norm : {"group_norm 4 param_dtype=f32", "instance_norm affine=true param_dtype=f32"}) {
        const std::string spec = spec_of(half, norm);
        LowerOptions exact_opts;
        exact_opts.simplify = false;
        const Plan exact = lower(parse_spec(spec, "t.block"), exact_opts);
        std::mt19937_64 rng(seed);
        Params params = random_block_params(exact.pipeline, rng);
        std::uniform_real_distribution<float> u(0.5f, 1.5f);
        for (float& v : params.norm_weight.vec()) v = u(rng);  // float32 values, most not bf16/f16 ones
        for (float& v : params.norm_bias.vec()) v = u(rng) - 1.0f;
        params.norm_weight.round_to(DType::F32);
        params.norm_bias.round_to(DType::F32);
        for (int nonfinite : {0, 3})
          expect_spec_matches_oracle(spec, seed, nonfinite, "MixedNorm.CpuMatchesTheOracleWithFloat32NormParameters",
                                     &params);
        // Rounded parameters give another result: the float32 ones are not rounded on the way.
        const Plan plan = lower(parse_spec(spec, "t.block"));
        Tensor x = uniform_input(plan.pipeline.input_shape, rng);
        x.round_to(plan.pipeline.types.storage);
        RunOptions cpu;
        cpu.device = Device::Cpu;
        const Tensor y = run(plan, params, x, cpu);
        const Plan same = lower(parse_spec(spec_of(half, std::string(norm).substr(0, std::string(norm).find(" param")).c_str()), "t.block"));
        Params rounded = params;
        rounded.norm_weight.round_to(same.pipeline.types.storage);
        rounded.norm_bias.round_to(same.pipeline.types.storage);
        EXPECT_NE(y.vec(), run(same, rounded, x, cpu).vec()) << spec << " seed " << seed;
      }
}

TEST(MixedNorm, StoreOnceReadsFloat32ParametersAndTheRecomputeStrategiesRefuse) {
  const Plan plan = lower(parse_spec(spec_of("bf16", "group_norm 4 param_dtype=f32"), "t.block"));
  const auto why = recompute_unsupported_forms(plan);
  ASSERT_TRUE(why.has_value());
  const cuda::LaunchProgram prog = cuda::find_strategy("store_once")->build({&plan, true}, {});
  EXPECT_NE(prog.source.find("const float* __restrict__ gamma"), std::string::npos);
  for (const auto& b : prog.buffers)
    if (b.ref.role == cuda::BufferRole::NormWeight) EXPECT_EQ(b.bytes, 4u * 8u);
  try {
    cuda::nvrtc_version_string();
  } catch (const std::exception& e) {
    GTEST_SKIP() << "no NVRTC: " << e.what();
  }
  cuda::CompileRequest req;
  req.source = prog.source;
  req.arch = "sm_90";
  req.options = cuda::program_compile_options();
  const cuda::CompiledProgram out = cuda::compile_program(req);
  EXPECT_FALSE(out.cubin.empty()) << out.log;
}

}  // namespace
}  // namespace fbtest
