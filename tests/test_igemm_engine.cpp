// store_once's igemm conv engine without a GPU: which tile each C_out gets by default (the
// measured winners of dev/igemm v1), what the engine refuses and why, that cuDNN stays a config
// and is the only one for f32, and that every engine config compiles with NVRTC for sm_80, sm_89
// and sm_90 without spills or local memory (registers printed, one line a kernel).
#include <gtest/gtest.h>

#include <filesystem>

#include "cuda/codegen/emit_program_options.hpp"
#include "cuda/runtime/nvrtc_compile.hpp"
#include "cuda/select/select.hpp"
#include "cuda/strategies/store_once/emit_igemm.hpp"
#include "cuda/strategies/strategy.hpp"
#include "fuseblock/fuseblock.hpp"
#include "tune/tuner.hpp"
#include "tune/tuning_cache.hpp"
#include "tune/tuning_key.hpp"

using namespace fuseblock;

namespace {

Plan plan_of(const std::string& spec) { return lower(parse_spec(spec, "t.block")); }

const cuda::ConvStrategy& store_once() { return *cuda::find_strategy("store_once"); }

// The realworld shapes of issue 10 (smaller batches: the program's constants change, not its
// code paths), problem 83's geometry, and the generalizations: stride, dilation, no padding,
// C_in padded, no bias, no norm.
const char* const kBodies[] = {
    "[2, 320, 64, 64]\nconv2d 320 3 padding=1\ngroup_norm 32 eps=1e-6\nsilu\ndropout p=0.1\n",
    "[1, 128, 64, 64]\nconv2d 128 3 padding=1\ngroup_norm 32\nsilu\n",
    "[1, 32, 24, 24, 24]\nconv3d 32 3 padding=1\ngroup_norm 8\nrelu\ndropout p=0.1\n",
    "[2, 64, 1600]\nconv1d 64 3 padding=1\ngroup_norm 16\ngelu\n",
    "[4, 3, 16, 32, 32]\nconv3d 16 3\ngroup_norm 8\nsilu\ndropout p=0.2\n",
    "[3, 5, 37]\nconv1d 32 3 stride=2 dilation=2 bias=false\ngroup_norm 32 affine=false\ngelu\n",
    "[2, 8, 7, 9]\nconv2d 16 (3, 5) padding=(1, 2)\nminimum 0.5\nclamp min=0 max=0.3\n",
    // diffusers' ResnetBlock2D (the per-(sample, channel) add in the conv's statistics epilogue),
    // MONAI's prelu with per-channel slopes
    "[2, 32, 12, 12]\nconv2d 32 3 padding=1\nadd_per_sample_channel\ngroup_norm 8\nsilu\nprelu num_parameters=32\n"
    "dropout p=0.1\n",
};

std::string tile(const cuda::ConvTuning& t) {
  return std::to_string(t.ig_bm) + "x" + std::to_string(t.ig_bn) + " w" + std::to_string(t.ig_wm) + "x" +
         std::to_string(t.ig_wn);
}

}  // namespace

// configs(): cuDNN's conv first (the default: measured faster as a whole program, store_once.cpp),
// then the engine's tile that v1 measured fastest for the shape's C_out; without cuDNN the default
// is that tile, or the first that fits the device's shared memory.
TEST(IgemmEngine, TilesFollowCudnnWithTheMeasuredWinnerFirst) {
  const std::pair<const char*, const char*> cases[] = {
      {"input bf16[8, 320, 64, 64]\nconv2d 320 3 padding=1\ngroup_norm 32\nsilu\n", "256x160 w64x80"},
      {"input f16[1, 128, 256, 256]\nconv2d 128 3 padding=1\ngroup_norm 32\nsilu\n", "128x128 w64x32"},
      {"input bf16[2, 32, 96, 96, 96]\nconv3d 32 3 padding=1\ngroup_norm 8\nrelu\n", "256x32 w64x32"},
      {"input bf16[16, 64, 16000]\nconv1d 64 3 padding=1\ngroup_norm 16\ngelu\n", "256x64 w64x32"},
      {"input bf16[128, 3, 16, 32, 32]\nconv3d 16 3\ngroup_norm 8\n", "256x16 w64x16"},
  };
  for (const auto& [spec, want] : cases) {
    const Plan plan = plan_of(spec);
    const cuda::ConvProblem problem{&plan, true};
    ASSERT_FALSE(store_once().unsupported(problem, cuda::DeviceLimits{})) << spec;
    const std::vector<cuda::ConvTuning> cfgs = store_once().configs(problem);
    ASSERT_GE(cfgs.size(), 2u) << spec;
    EXPECT_EQ(cfgs[0], cuda::ConvTuning{}) << "cuDNN's conv first (tune measures the first few)";
    EXPECT_EQ(tile(cfgs[1]), want) << spec;
    EXPECT_EQ(store_once().default_config(problem), cfgs[0]);
    EXPECT_EQ(store_once().default_config_on(problem, cuda::DeviceLimits{}), cfgs[0]);
    for (const cuda::ConvTuning& t : cfgs)
      if (t.ig_bm > 0) EXPECT_EQ(plan.pipeline.output_shape[1] % t.ig_bn, 0) << spec << " " << tile(t);
    const cuda::LaunchProgram prog = store_once().build(problem, cfgs[1]);
    std::vector<std::string> kernels;
    for (const cuda::Step& s : prog.steps) kernels.push_back(s.name);
    EXPECT_EQ(kernels, (std::vector<std::string>{"fb_ig_pack_w", "fb_ig_to_cl", "fb_ig_conv", "fb_so_apply"}))
        << "no statistics kernel with the igemm engine";
    EXPECT_EQ(prog.source.find(" fb_so_stats("), std::string::npos);
    EXPECT_NE(prog.config.find("igemm"), std::string::npos) << prog.config;
  }
}

TEST(IgemmEngine, RefusesWithReasonsAndLeavesCudnnAsTheConfig) {
  auto configs = [](const std::string& spec) {
    const Plan plan = plan_of(spec);
    return store_once().configs({&plan, true});
  };
  auto why = [](const std::string& spec) { return cuda::igemm_unsupported(plan_of(spec).pipeline); };
  // f32: cuDNN (TF32 or strict) alone, as before.
  const std::string f32 = "input f32[2, 32, 16, 16]\nconv2d 32 3 padding=1\ngroup_norm 8\n";
  EXPECT_EQ(configs(f32), std::vector<cuda::ConvTuning>{cuda::ConvTuning{}});
  ASSERT_TRUE(why(f32));
  EXPECT_NE(why(f32)->find("bf16/f16"), std::string::npos) << *why(f32);
  // C_out not a multiple of 16 (the narrowest tile's N).
  const std::string c24 = "input bf16[2, 8, 16, 16]\nconv2d 24 3 padding=1\ngroup_norm 8\n";
  EXPECT_EQ(configs(c24), std::vector<cuda::ConvTuning>{cuda::ConvTuning{}});
  ASSERT_TRUE(why(c24));
  EXPECT_NE(why(c24)->find("multiple of 16"), std::string::npos) << *why(c24);
  // More than 32 taps: a row's tap mask is 32 bits.
  const std::string k4 = "input bf16[1, 8, 8, 8, 8]\nconv3d 16 4\ngroup_norm 4\n";
  ASSERT_TRUE(why(k4));
  EXPECT_NE(why(k4)->find("32"), std::string::npos) << *why(k4);
  // Stride, dilation, asymmetric kernels and no padding are accepted.
  EXPECT_FALSE(why("input bf16[3, 5, 37]\nconv1d 32 3 stride=2 dilation=2\n"));
  EXPECT_FALSE(why("input f16[2, 8, 7, 9]\nconv2d 16 (3, 5) stride=(2, 1) padding=(1, 2)\ngroup_norm 4\n"));
  // Without cuDNN on a real device the igemm engine still runs half precision.
  const Plan sd = plan_of("input bf16[2, 64, 16, 16]\nconv2d 64 3 padding=1\ngroup_norm 32\n");
  cuda::DeviceLimits real;
  real.probe_libraries = true;
  EXPECT_FALSE(store_once().unsupported({&sd, true}, real)) << *store_once().unsupported({&sd, true}, real);
}

TEST(IgemmEngine, EveryConfigCompilesForAmpereAdaAndHopperWithoutSpills) {
  try {
    cuda::nvrtc_version_string();
  } catch (const std::exception& e) {
    GTEST_SKIP() << "no NVRTC: " << e.what();
  }
  int compiled = 0;
  for (const char* body : kBodies)
    for (const char* dt : {"bf16", "f16"}) {
      const Plan plan = plan_of(std::string("input ") + dt + body);
      const cuda::ConvProblem problem{&plan, true};
      ASSERT_FALSE(store_once().unsupported(problem, cuda::DeviceLimits{})) << body;
      for (const cuda::ConvTuning& t : store_once().configs(problem)) {
        if (t.ig_bm == 0) continue;  // cuDNN: test_store_once.cpp
        if (std::string(dt) == "f16" && !(t == store_once().default_config(problem))) continue;  // same code
        const cuda::LaunchProgram prog = store_once().build(problem, t);
        for (const char* arch : {"sm_80", "sm_89", "sm_90"}) {
          cuda::CompileRequest req;
          req.source = prog.source;
          req.arch = arch;
          req.options = cuda::program_compile_options();
          const cuda::CompiledProgram out = cuda::compile_program(req);
          const std::string where = std::string(dt) + " " + arch + " " + tile(t) + " " +
                                    std::string(body).substr(0, std::string(body).find('\n'));
          ASSERT_FALSE(out.cubin.empty()) << where << "\n" << out.log;
          ++compiled;
          EXPECT_NE(out.ptx.find(std::string("mma.sync.aligned.m16n8k16.row.col.f32.") + dt + "." + dt + ".f32"),
                    std::string::npos)
              << where;
          size_t kernels = 0;
          for (const cuda::Step& s : prog.steps) kernels += s.kind == cuda::StepKind::Kernel;
          EXPECT_EQ(out.kernels.size(), kernels) << where;
          for (const auto& k : out.kernels) {
            if (k.name == "fb_ig_conv")
              std::printf("[ igemm ] %-52s %3d registers, %d B spill, %d B stack, %zu B smem\n", where.c_str(),
                          k.registers, k.spill_store_bytes + k.spill_load_bytes, k.stack_bytes,
                          cuda::igemm_shape(plan.pipeline, t).smem);
            EXPECT_EQ(k.spill_store_bytes + k.spill_load_bytes, 0) << where << " " << k.name << "\n" << out.log;
            EXPECT_EQ(k.stack_bytes, 0) << where << " " << k.name;
            EXPECT_GT(k.registers, 0) << where << " " << k.name;
          }
        }
      }
    }
  EXPECT_GE(compiled, 60);
}

// tune's candidates for store_once are its own configs: cuDNN's conv (the baseline), then the
// igemm tiles, up to the seed's limit; a chosen tile survives the cache's JSON. (The `fuseblock
// tune` command refuses half blocks in this version, so none of these is measured yet.)
TEST(IgemmEngine, TuneMeasuresTheTilesAndCudnnAndCachesTheTile) {
  const Plan plan = plan_of("input bf16[8, 320, 64, 64]\nconv2d 320 3 padding=1\ngroup_norm 32\nsilu\n");
  const cuda::ConvProblem problem{&plan, true};
  const cuda::Selection sel = cuda::select_strategy(problem, cuda::DeviceLimits{});
  ASSERT_STREQ(sel.winner().strategy->name(), "store_once");
  const cuda::LaunchProgram base = cuda::build_selected(problem, sel);
  tune::ConvTraits traits;
  traits.traits.knobs = tune::KnobSet::Conv;
  traits.traits.registers = 64;
  std::vector<cuda::LaunchProgram> programs;
  std::vector<std::string> skipped;
  const std::vector<tune::Config> cands = tune::tune_candidates(problem, sel, base, traits, &programs, &skipped);
  ASSERT_GE(cands.size(), 3u);
  EXPECT_EQ(cands[0].conv, tune::ConvKnobs{}) << "cuDNN's conv first (the baseline)";
  EXPECT_EQ(programs[0].steps.size() > 1 ? programs[0].steps[0].kind : cuda::StepKind::Kernel,
            cuda::StepKind::LibraryConv);
  EXPECT_EQ(cands[1].conv.ig_bm, 256);
  EXPECT_EQ(cands[1].conv.ig_bn, 160);
  EXPECT_EQ(cands[2].conv.ig_bn, 160) << "128x160";
  EXPECT_EQ(cands[2].conv.ig_bm, 128);
  for (const tune::Config& c : cands) EXPECT_TRUE(c.conv.valid()) << c.describe();
  EXPECT_EQ(tune::to_conv_tuning(cands[2].conv), store_once().configs(problem)[2]);
  // The cache keeps the tile.
  const std::string path = (std::filesystem::temp_directory_path() / "fuseblock-igemm-tuning.json").string();
  std::filesystem::remove(path);
  tune::TuningRecord rec;
  rec.chosen = cands[2];
  rec.candidates = cands;
  rec.times_ms.assign(cands.size(), 1.0);
  const tune::TuningKey key{"dev", "drv", "nvrtc", "hash", "shape"};
  tune::TuningCache(path).store(key, rec);
  const std::optional<tune::TuningRecord> back = tune::TuningCache(path).lookup(key);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->chosen.conv, cands[2].conv);
  EXPECT_EQ(back->candidates.at(0).conv, tune::ConvKnobs{});
  EXPECT_EQ(back->candidates.at(1).conv, cands[1].conv);
  std::filesystem::remove(path);
}
