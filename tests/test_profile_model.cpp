// What `profile` and `tune` compute without a GPU: the occupancy calculator against an H100's
// limits, the bytes and FLOPs counted per step, and the parser of Nsight Compute's CSV.
#include <gtest/gtest.h>

#include "cuda/select/select.hpp"
#include "fuseblock/fuseblock.hpp"
#include "measure/occupancy.hpp"
#include "profile/ncu_report.hpp"
#include "profile/profile.hpp"

using namespace fuseblock;

TEST(Occupancy, LimitsOfAnH100) {
  struct Case {
    const char* what;
    int regs, threads;
    size_t smem;
    int blocks;
    const char* limited_by;
  };
  const Case cases[] = {
      // 123 registers -> 128 a thread (whole 256-register units per warp): 16 warps = 2 blocks of 8.
      {"MMA conv kernel", 123, 256, 76128, 2, "registers"},
      // 4 warps of 128 registers = 4 blocks by registers, but 75 KB (+1 KB reserved) fits 3 times in 228 KB.
      {"FMA conv kernel", 123, 128, 76096, 3, "shared memory"},
      {"fill kernel", 24, 256, 0, 8, "threads"},
      {"tiny blocks", 16, 32, 0, 32, "block limit"},
      {"64 registers", 64, 256, 0, 4, "registers"},
      {"ties are all named", 32, 1024, 0, 2, "registers and threads"},
  };
  const measure::SmLimits h100;
  for (const Case& c : cases) {
    const measure::Occupancy o = measure::occupancy(c.regs, c.threads, c.smem, h100);
    EXPECT_EQ(o.blocks, c.blocks) << c.what;
    EXPECT_EQ(o.limited_by, c.limited_by) << c.what;
    EXPECT_EQ(o.max_warps, 64) << c.what;
    EXPECT_EQ(o.active_warps, c.blocks * ((c.threads + 31) / 32)) << c.what;
  }
  EXPECT_DOUBLE_EQ(measure::occupancy(123, 256, 76128, h100).fraction(), 0.25);
}

namespace {
Plan plan_of(const std::string& spec, bool assume_finite = false) {
  LowerOptions lo;
  lo.assume_finite = assume_finite;
  return lower(parse_spec(spec, "<test>"), lo);
}
const std::string kSilu =
    "input f32[128, 3, 16, 64, 64]\nconv3d out_channels=16 kernel_size=3\ngroup_norm num_groups=8 eps=1e-5\nsilu\n"
    "dropout p=0.2\n";
}  // namespace

TEST(StepIo, RecomputeCountsEachBufferOnceAndTheConvPasses) {
  const Plan plan = plan_of(kSilu);
  const cuda::LaunchProgram prog = cuda::find_strategy("recompute_two_pass")->build({&plan, true}, {});
  ASSERT_EQ(prog.steps.size(), 5u) << "dropout seed, stats, finalize, output, dropout advance";
  const double in = 4.0 * 128 * 3 * 16 * 64 * 64, out = 4.0 * 128 * 16 * 14 * 62 * 62;
  const double pass = 2.0 * 128 * 16 * 14 * 62 * 62 * 3 * 27;  // 2 N C_out prod(out) C_in prod(k)
  const profile::KernelIo stats = profile::step_io(prog, *prog.find_step("fb_conv_stats"));
  EXPECT_EQ(stats.kernel, "fb_conv_stats");
  EXPECT_DOUBLE_EQ(stats.reads[0].bytes, in);
  EXPECT_DOUBLE_EQ(stats.read_bytes(), in + 4.0 * 16 * 81 + 4.0 * 16);  // input, weight, bias
  EXPECT_DOUBLE_EQ(stats.write_bytes(), static_cast<double>(prog.bytes_of(cuda::BufferRole::StatsPartials)));
  EXPECT_DOUBLE_EQ(stats.flops, pass);
  EXPECT_NEAR(stats.flops / 1e9, 17.86, 0.01) << "the 17.8 GFLOP per pass of design.md";
  EXPECT_EQ(profile::step_io(prog, *prog.find_step("fb_norm_finalize")).flops, 0);
  const profile::KernelIo output = profile::step_io(prog, *prog.find_step("fb_conv_output"));
  EXPECT_EQ(output.kernel, "fb_conv_output");
  EXPECT_EQ(output.reads.size(), 7u) << "input, weight, bias, scale, mean, norm bias, dropout state";
  EXPECT_DOUBLE_EQ(output.write_bytes(), out);
  EXPECT_DOUBLE_EQ(output.flops, pass);
  EXPECT_DOUBLE_EQ(cuda::floor_bytes(prog), in + out);
}

TEST(StepIo, SampleRunsNamesEveryScratchBufferItWrites) {
  // The partials of the sample-runs kernels are float4 per (sample, block, warp, channel), and the
  // finalize writes (a, b) per (n, c): both counted at the sizes the program allocates.
  const Plan plan = plan_of(kSilu);
  const cuda::LaunchProgram prog = cuda::default_program(plan, true);
  ASSERT_EQ(prog.strategy, "recompute_sample_runs");
  EXPECT_EQ(prog.bytes_of(cuda::BufferRole::StatsPartials), size_t(128) * 16 * 8 * 16 * 16);
  EXPECT_EQ(prog.bytes_of(cuda::BufferRef::scratch("norm a, b")), size_t(128) * 16 * 8);
  const profile::KernelIo fin = profile::step_io(prog, *prog.find_step("fbl_finalize"));
  ASSERT_EQ(fin.writes.size(), 1u);
  EXPECT_EQ(fin.writes[0].tensor, "norm a, b");
  EXPECT_NEAR(profile::step_io(prog, *prog.find_step("fbl_conv_stats")).write_bytes() / 1e6, 4.19, 0.01);
}

TEST(StepIo, FillPathMemsetGuardAndGatedFallback) {
  const Plan plan = plan_of(kDefaultSpec);
  const cuda::LaunchProgram prog = cuda::default_program(plan, true);
  ASSERT_EQ(prog.strategy, "constant_fill");
  const double in = 4.0 * 128 * 3 * 16 * 64 * 64, out = 4.0 * 128 * 16 * 14 * 62 * 62;
  double written = 0, read = 0;
  int gated = 0;
  for (const cuda::Step& st : prog.steps) {
    if (st.when == cuda::StepWhen::AdvanceDropoutState) continue;  // a run with explicit seeds
    const profile::KernelIo k = profile::step_io(prog, st);
    written += k.write_bytes(), read += k.read_bytes();
    EXPECT_EQ(k.flops, 0) << k.kernel << ": the gated fallback computes nothing when the guard passes";
    gated += st.gated;
  }
  EXPECT_EQ(gated, 3);
  const double params = 4.0 * (16 * 3 * 27 + 3 * 16);  // conv weight and bias, GroupNorm weight and bias
  EXPECT_DOUBLE_EQ(read, in + 4.0 * 129 * 3 + params + 4)
      << "the guard reads the input once and its bound, which fb_guard_bound computes from the parameters; three "
         "gated kernels read the flags";
  EXPECT_DOUBLE_EQ(written, out + 2 * 4.0 * 129 + 16 + 4)
      << "the output once, the flags zeroed and then set, the fallback's dropout state, the guard's bound";
  EXPECT_DOUBLE_EQ(cuda::floor_bytes(prog), in + out);

  const Plan unguarded = plan_of(kDefaultSpec, true);
  const cuda::LaunchProgram up = cuda::default_program(unguarded, true);
  ASSERT_EQ(up.steps.size(), 1u);
  EXPECT_EQ(up.steps[0].kind, cuda::StepKind::Memset);
  EXPECT_FALSE(up.has_kernels());
  EXPECT_DOUBLE_EQ(profile::step_io(up, up.steps[0]).read_bytes(), 0);
  EXPECT_DOUBLE_EQ(cuda::floor_bytes(up), out) << "an unguarded fill reads no input";
}

TEST(NcuReport, ParsesRawCsvAndRanksStalls) {
  const std::string csv =
      "==PROF== Connected to process 1234\n"
      "fuseblock profile output line\n"
      "\"ID\",\"Process ID\",\"Kernel Name\",\"dram__throughput.avg.pct_of_peak_sustained_elapsed\",\"gpu__time_duration.sum\","
      "\"sm__warps_active.avg.pct_of_peak_sustained_active\",\"sm__maximum_warps_per_active_cycle_pct\","
      "\"smsp__average_warps_issue_stalled_wait_per_issue_active.ratio\","
      "\"smsp__average_warps_issue_stalled_long_scoreboard_per_issue_active.ratio\","
      "\"smsp__average_warps_issue_stalled_barrier_per_issue_active.ratio\","
      "\"smsp__average_warps_issue_stalled_selected_per_issue_active.ratio\","
      "\"smsp__average_warps_issue_stalled_mio_throttle_per_issue_active.ratio\"\n"
      "\"\",\"\",\"\",\"%\",\"usecond\",\"%\",\"%\",\"ratio\",\"ratio\",\"ratio\",\"ratio\",\"ratio\"\n"
      "\"0\",\"1234\",\"fb_conv_stats\",\"11.2\",\"281.47\",\"24.6\",\"25\",\"1.52\",\"0.31\",\"0.80\",\"1\",\"n/a\"\n"
      "\"1\",\"1234\",\"fb_conv_output\",\"24.0\",\"1,665.5\",\"24.9\",\"25\",\"2.10\",\"0.05\",\"0.40\",\"1\",\"0.9\"\n";
  const auto k = profile::parse_ncu_raw_csv(csv);
  ASSERT_EQ(k.size(), 2u);
  EXPECT_EQ(k[0].kernel, "fb_conv_stats");
  EXPECT_DOUBLE_EQ(k[0].dram_pct, 11.2);
  EXPECT_NEAR(k[0].duration_ms, 0.28147, 1e-12);
  EXPECT_DOUBLE_EQ(k[0].achieved_occupancy_pct, 24.6);
  EXPECT_DOUBLE_EQ(k[0].theoretical_occupancy_pct, 25);
  ASSERT_EQ(k[0].stalls.size(), 3u) << "'selected' is not a stall; n/a is skipped";
  EXPECT_EQ(k[0].stalls[0].first, "wait");
  EXPECT_EQ(k[0].stalls[1].first, "barrier");
  EXPECT_NEAR(k[1].duration_ms, 1.6655, 1e-12) << "thousands separators";
  EXPECT_EQ(k[1].stalls[1].first, "mio_throttle");
  const std::string table = profile::ncu_summary(k, 2);
  EXPECT_NE(table.find("wait 1.52, barrier 0.80"), std::string::npos) << table;
  EXPECT_EQ(table.find("long_scoreboard 0.31"), std::string::npos) << "only the top 2";
  EXPECT_TRUE(profile::parse_ncu_raw_csv("no csv here\n").empty());
}

TEST(NcuReport, FindsExecutablesOnPath) {
  EXPECT_FALSE(profile::find_on_path("sh").empty());
  EXPECT_TRUE(profile::find_on_path("surely-not-a-program-fuseblock").empty());
}

TEST(ProfileReportText, NamesEveryColumnAndWhatWasCounted) {
  // A report as profile_plan fills it on an H100 (numbers of docs/benchmarks.md's SiLU run).
  const Plan plan = plan_of(kSilu);
  const cuda::LaunchProgram prog = cuda::default_program(plan, true);
  profile::ProfileReport r;
  r.device = "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)";
  r.driver = "13000", r.nvrtc = "13.0", r.date = "2026-11-25 10:00 UTC";
  r.conv_knobs = "mma-tf32 engine; mpw 4, 2 blocks/SM target, epilogue unroll 1 (the baseline: no tuning cache entry)";
  r.warmup = 5, r.runs = 30, r.flush_bytes = 100u << 20;
  r.ceilings = {440u << 20, 0.138, 3190, 440u << 20, 0.150, 2940};
  const double ms[] = {0.281, 0.006, 0.665};
  for (size_t i = 0; i < prog.steps.size(); ++i) {
    profile::StepProfile s;
    s.io = profile::step_io(prog, prog.steps[i]);
    s.kernel = s.io.kernel, s.ms = ms[i];
    s.registers = 123, s.threads = 256, s.shared_bytes = 76128, s.blocks_per_sm = 2;
    s.active_warps = 16, s.max_warps = 64;
    s.occupancy = measure::occupancy(123, 256, 76128, measure::SmLimits{});
    s.floor_ms = s.io.bytes() / (2940 * 1e6);
    r.steps.push_back(s);
  }
  r.total_ms = 0.953, r.floor_bytes = cuda::floor_bytes(prog), r.floor_ms = r.floor_bytes / 2940e6;
  const std::string t = r.text();
  for (const char* part : {"fbl_conv_stats", "fbl_conv_output", "total", "16/64 25%", "registers", "floor%", "GFLOP/s",
                           "541.5 MB (output written once, input read once)", "every element written", "17.85 GFLOP",
                           "read+write 2940 GB/s"})
    EXPECT_NE(t.find(part), std::string::npos) << part << "\n" << t;
  r.unwritten = 7;
  EXPECT_NE(r.text().find("FAIL: 7 elements never written"), std::string::npos);
}
