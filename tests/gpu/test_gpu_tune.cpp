// `tune` and `profile` on the GPU: the tuner measures at most 4 configurations and keeps the 2%
// rule, a second tune of the same program reads the cache and measures nothing, the runtime
// (executor_for, through the CLI in a fresh process) runs the cached configuration, and profile's
// numbers add up. Every cache here lives in a fresh temporary folder.
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <fmt/format.h>

#include "cuda/runtime/device_context.hpp"
#include "cuda/select/select.hpp"
#include "fuseblock/random.hpp"
#include "gpu_support.hpp"
#include "profile/profile.hpp"
#include "tune/tuner.hpp"
#include "tune/tuning_key.hpp"

namespace fbgpu {
namespace {

namespace fs = std::filesystem;

// Strict fp32 with no norm and no bias: the FMA engine at low register pressure, limited by
// shared memory, two inputs: the rules propose the baseline and epilogue unroll 2.
const char* kLowPressureSpec = "input f32[8, 4, 16, 64, 64]\nconv3d out_channels=8 kernel_size=3 bias=false\nrelu\n";

fs::path fresh_dir(const std::string& tag) {
  fs::path d = fs::temp_directory_path() / ("fb-gpu-" + tag + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

struct Result {
  int code;
  std::string out;
};

Result cli(const fs::path& cache_dir, const std::string& args) {
  const std::string cmd = "FUSEBLOCK_CACHE_DIR=" + cache_dir.string() + " " + FB_CLI_PATH + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(GpuTune, MeasuresAtMostFourThenTheCacheAnswers) {
  REQUIRE_GPU();
  const Plan plan = lower(parse_spec(kLowPressureSpec, "<low>"));
  const Params params = init_params(plan.pipeline, 0);
  const Tensor x = uniform_tensor(plan.pipeline.input_shape, 1);
  tune::TuneOptions o;
  o.allow_tf32 = false;
  o.runs = 10;
  o.cache_path = (fresh_dir("tune") / "tuning.json").string();
  std::ostringstream progress;
  const tune::TuneReport first = tune::tune_plan(plan, params, x, o, progress);
  std::printf("%s%s", progress.str().c_str(), first.text().c_str());
  ASSERT_TRUE(first.tunable) << first.not_tunable_why;
  EXPECT_FALSE(first.cached);
  const tune::TuningRecord& r = first.record;
  EXPECT_EQ(first.measured, static_cast<int>(r.candidates.size()));
  EXPECT_GE(r.candidates.size(), 2u) << "this spec's rules propose a challenger";
  EXPECT_LE(r.candidates.size(), static_cast<size_t>(tune::kMaxConfigs));
  EXPECT_TRUE(r.candidates[0].is_baseline());
  for (double t : r.times_ms) EXPECT_TRUE(std::isfinite(t) && t > 0) << "every candidate agreed with the baseline";
  std::string why;
  EXPECT_EQ(r.chosen, r.candidates[tune::pick_config(r.candidates, r.times_ms, &why)]) << "the 2% rule decided";
  EXPECT_TRUE(contains(progress.str(), "compiling")) << "progress while it compiles";

  std::ostringstream again_progress;
  const tune::TuneReport again = tune::tune_plan(plan, params, x, o, again_progress);
  EXPECT_TRUE(again.cached);
  EXPECT_EQ(again.measured, 0);
  EXPECT_EQ(again.record.chosen, r.chosen);
  EXPECT_EQ(again.record.times_ms, r.times_ms);
  EXPECT_TRUE(contains(again.text(), "cached: the decision below")) << again.text();
  EXPECT_FALSE(contains(again_progress.str(), "measuring")) << again_progress.str();

  o.force = true;
  std::ostringstream forced_progress;
  EXPECT_FALSE(tune::tune_plan(plan, params, x, o, forced_progress).cached) << "--force measures again";
}

TEST(GpuTune, FillPathHasNothingToTune) {
  REQUIRE_GPU();
  const Plan plan = lower(parse_spec(kDefaultSpec, "<default>"));
  tune::TuneOptions o;
  o.cache_path = (fresh_dir("fill") / "tuning.json").string();
  std::ostringstream progress;
  const tune::TuneReport rep = tune::tune_plan(plan, init_params(plan.fallback, 0), uniform_tensor(plan.pipeline.input_shape, 0), o, progress);
  EXPECT_FALSE(rep.tunable);
  EXPECT_TRUE(contains(rep.text(), "nothing to tune")) << rep.text();
  EXPECT_FALSE(fs::exists(o.cache_path)) << "nothing measured, nothing stored";
}

TEST(GpuTune, CliTuneTwiceThenTheRuntimeRunsTheCachedConfiguration) {
  REQUIRE_GPU();
  const fs::path dir = fresh_dir("cli");
  const std::string spec = (dir / "low.block").string();
  { std::ofstream(spec) << kLowPressureSpec; }
  Result r = cli(dir, "tune " + spec + " --strict-fp32 --runs 5");
  std::printf("%s", r.out.c_str());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "measuring")) << r.out;
  EXPECT_TRUE(contains(r.out, "chosen:")) << r.out;
  r = cli(dir, "tune " + spec + " --strict-fp32 --runs 5");
  std::printf("%s", r.out.c_str());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "cached: the decision below")) << r.out;
  EXPECT_FALSE(contains(r.out, "measuring")) << r.out;
  EXPECT_FALSE(contains(r.out, "compiling")) << r.out;

  // Plant a decision for epilogue unroll 2 under this program's key: the runtime must run it.
  const Plan plan = lower(parse_spec(kLowPressureSpec, "<low>"));
  const tune::TuningKey key = tune::tuning_key(tune::current_device_identity(), cuda::default_program(plan, false).source, plan.pipeline);
  tune::TuningCache cache((dir / "tuning.json").string());
  std::optional<tune::TuningRecord> rec = cache.lookup(key);
  ASSERT_TRUE(rec.has_value()) << "the CLI stored under the key the library computes";
  rec->chosen = tune::Config{4, 2, "planted by the test", tune::ConvKnobs{4, 2, 2}, tune::KnobSet::Conv, "recompute_two_pass"};
  cache.store(key, *rec);
  r = cli(dir, "profile " + spec + " --strict-fp32 --runs 3");
  std::printf("%s", r.out.c_str());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "epilogue unroll 2), from the tuning cache")) << r.out;
  EXPECT_TRUE(contains(r.out, "every element written")) << r.out;
}

// Half-precision blocks are measured too: store_once's configs (cuDNN's conv, the igemm tiles) each
// run on bf16/f16 device buffers, their outputs complete (the 16-bit poison gone) and agreeing with
// the baseline within the storage type's tolerance; profile runs the same block.
TEST(GpuTune, HalfBlocksAreTunedAndProfiled) {
  REQUIRE_GPU();
  for (const char* dtype : {"bf16", "f16"}) {
    const std::string spec = fmt::format("input {}[2, 32, 16, 16]\nconv2d 32 3 padding=1\ngroup_norm 8\nsilu\n", dtype);
    const Plan plan = lower(parse_spec(spec, "<half>"));
    const Params params = init_params(plan.pipeline, 0);
    const Tensor x = uniform_tensor(plan.pipeline.input_shape, 1);
    tune::TuneOptions o;
    o.runs = 5;
    o.cache_path = (fresh_dir(std::string("half-") + dtype) / "tuning.json").string();
    std::ostringstream progress;
    const tune::TuneReport rep = tune::tune_plan(plan, params, x, o, progress);
    std::printf("%s%s", progress.str().c_str(), rep.text().c_str());
    ASSERT_TRUE(rep.tunable) << dtype << ": " << rep.not_tunable_why;
    EXPECT_GE(rep.record.candidates.size(), 2u) << dtype << ": cuDNN's conv and at least one igemm tile";
    EXPECT_EQ(rep.measured, static_cast<int>(rep.record.candidates.size())) << dtype;
    for (size_t i = 0; i < rep.record.times_ms.size(); ++i)
      EXPECT_TRUE(std::isfinite(rep.record.times_ms[i]) && rep.record.times_ms[i] > 0)
          << dtype << " " << rep.record.candidates[i].describe() << ": " << rep.record.notes[i];
    EXPECT_FALSE(contains(progress.str(), "never written")) << progress.str();
    profile::ProfileOptions po;
    po.runs = 5;
    const profile::ProfileReport prof = profile::profile_plan(plan, params, x, po);
    std::printf("%s", prof.text().c_str());
    EXPECT_EQ(prof.unwritten, 0) << dtype;
    EXPECT_FALSE(prof.steps.empty()) << dtype;
  }
}

TEST(GpuProfile, StepsAddUpAndCeilingsAreMeasured) {
  REQUIRE_GPU();
  const Plan plan = lower(parse_spec("input f32[16, 3, 16, 64, 64]\nconv3d out_channels=16 kernel_size=3\n"
                                     "group_norm num_groups=8\nsilu\ndropout p=0.2\n",
                                     "<silu16>"));
  profile::ProfileOptions o;
  o.runs = 10;
  const profile::ProfileReport rep = profile::profile_plan(plan, init_params(plan.pipeline, 0),
                                                           uniform_tensor(plan.pipeline.input_shape, 0), o);
  std::printf("%s", rep.text().c_str());
  EXPECT_EQ(rep.unwritten, 0);
  ASSERT_EQ(rep.steps.size(), 4u) << "dropout seed, stats, finalize, output (no advance with explicit seeds)";
  EXPECT_GT(rep.ceilings.write_gbs, 100);
  EXPECT_GT(rep.ceilings.copy_gbs, 100);
  double sum = 0;
  for (const profile::StepProfile& s : rep.steps) {
    sum += s.ms;
    EXPECT_GT(s.ms, 0) << s.kernel;
    EXPECT_GT(s.registers, 0) << s.kernel;
    EXPECT_GT(s.blocks_per_sm, 0) << s.kernel;
    EXPECT_FALSE(s.occupancy.limited_by.empty()) << s.kernel;
    EXPECT_GT(s.max_warps, 0) << s.kernel;
    EXPECT_GT(s.io.bytes(), 0) << s.kernel;
  }
  EXPECT_NEAR(sum, rep.total_ms, 0.1 * rep.total_ms + 0.01) << "the steps cover the run";
  EXPECT_EQ(rep.steps[0].kernel, "fb_dropout_seed");
  EXPECT_GT(rep.steps[1].io.flops, 0);
  EXPECT_GT(rep.floor_ms, 0);
}

}  // namespace
}  // namespace fbgpu
