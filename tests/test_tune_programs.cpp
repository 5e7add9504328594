// The tuning rules on fuseblock's real conv programs, compiled with NVRTC (no GPU; an H100's SM
// limits): which rule fires for the shapes docs/benchmarks.md measures, and that the candidates
// the rules produce all compile without spills.
#include <gtest/gtest.h>

#include "cuda/driver_api.hpp"
#include "cuda/emit_program_options.hpp"
#include "cuda/select/select.hpp"
#include "cuda/strategies/strategy.hpp"
#include "cuda/nvrtc_compile.hpp"
#include <fmt/format.h>

#include "fuseblock/fuseblock.hpp"
#include "tune/conv_traits.hpp"
#include "tune/tuning_key.hpp"

using namespace fuseblock;

namespace {

#define REQUIRE_NVRTC_HERE()                                                             \
  do {                                                                                   \
    std::string why_;                                                                    \
    if (!cuda::nvrtc_available(&why_)) GTEST_SKIP() << "NVRTC not available: " << why_;  \
  } while (0)

cuda::CompiledProgram compile(const cuda::LaunchProgram& prog) {
  cuda::CompileRequest req;
  req.source = prog.source;
  req.arch = "sm_90";
  req.options = cuda::program_compile_options();
  return cuda::compile_program(req);
}

tune::ConvTraits traits_for(const std::string& spec, bool tf32) {
  const Plan plan = lower(parse_spec(spec, "<test>"));
  const cuda::LaunchProgram prog = cuda::default_program(plan, tf32);
  return tune::conv_traits(prog, compile(prog), measure::SmLimits{});
}

const std::string kSilu =
    "input f32[128, 3, 16, 64, 64]\nconv3d out_channels=16 kernel_size=3\ngroup_norm num_groups=8 eps=1e-5\nsilu\n"
    "dropout p=0.2\n";

}  // namespace

TEST(TuneOnRealPrograms, Problem83SiluIsRegisterLimitedOnAnH100) {
  REQUIRE_NVRTC_HERE();
  const tune::ConvTraits t = traits_for(kSilu, true);
  ASSERT_EQ(t.kernels.size(), 2u) << t.describe();
  EXPECT_TRUE(t.traits.occupancy_register_limited) << t.describe();
  EXPECT_TRUE(t.traits.has_tile_width);
  EXPECT_GE(t.traits.distinct_input_loads, 3);
  const auto configs = tune::candidate_configs(t.traits);
  ASSERT_EQ(configs.size(), 1u) << "high register pressure: the baseline only; " << t.describe();
  EXPECT_NE(configs[0].rule.find("baseline only"), std::string::npos);
}

TEST(TuneOnRealPrograms, StrictFp32HasNoTileWidthKnob) {
  REQUIRE_NVRTC_HERE();
  const tune::ConvTraits t = traits_for(kSilu, false);
  EXPECT_FALSE(t.traits.has_tile_width);
  EXPECT_EQ(tune::candidate_configs(t.traits).size(), 1u) << t.describe();
}

TEST(TuneOnRealPrograms, LowPressureStrictFp32ConvTriesUnrollAndEveryCandidateCompilesWithoutSpills) {
  REQUIRE_NVRTC_HERE();
  // No norm and no bias: two inputs; the FMA engine's occupancy is limited by shared memory.
  const std::string spec = "input f32[8, 4, 16, 64, 64]\nconv3d out_channels=8 kernel_size=3 bias=false\nrelu\n";
  const Plan plan = lower(parse_spec(spec, "<test>"));
  const cuda::LaunchProgram base = cuda::default_program(plan, false);
  const tune::ConvTraits t = tune::conv_traits(base, compile(base), measure::SmLimits{});
  ASSERT_EQ(t.traits.distinct_input_loads, 2) << t.describe();
  ASSERT_LT(t.traits.registers, 96) << t.describe();
  ASSERT_FALSE(t.traits.occupancy_register_limited) << t.describe();
  const auto configs = tune::candidate_configs(t.traits);
  ASSERT_EQ(configs.size(), 2u) << t.describe();
  EXPECT_EQ(configs[1].conv.epilogue_unroll, 2);
  for (const tune::Config& c : configs) {
    const cuda::LaunchProgram prog =
        cuda::find_strategy("recompute_two_pass")->build({&plan, false}, tune::to_conv_tuning(c.conv));
    EXPECT_NE(prog.config.find(fmt::format("epilogue unroll {}", c.conv.epilogue_unroll)), std::string::npos) << prog.config;
    const cuda::CompiledProgram compiled = compile(prog);
    for (const auto& k : compiled.kernels)
      EXPECT_EQ(k.spill_store_bytes + k.spill_load_bytes, 0) << c.describe() << " " << k.name;
  }
}

TEST(TuneOnRealPrograms, EveryConvKnobTheRulesCanProposeCompilesForProblem83) {
  REQUIRE_NVRTC_HERE();
  // The rules' whole repertoire, on the general path's largest program: the runtime may be handed
  // any of these from the tuning cache.
  const Plan plan = lower(parse_spec(kSilu, "<test>"));
  for (const tune::ConvKnobs k : {tune::ConvKnobs{2, 2, 1}, tune::ConvKnobs{4, 2, 2}, tune::ConvKnobs{2, 2, 2}}) {
    const cuda::LaunchProgram prog = cuda::find_strategy("recompute_two_pass")->build({&plan, true}, tune::to_conv_tuning(k));
    EXPECT_EQ(prog.strategy, "recompute_two_pass");
    const cuda::CompiledProgram compiled = compile(prog);
    for (const auto& kr : compiled.kernels) EXPECT_EQ(kr.spill_store_bytes + kr.spill_load_bytes, 0) << kr.name;
  }
}
