// The LaunchProgram is the one description of a GPU run: for every strategy and
// every test spec it supports, what the executor binds, what verify checks and
// what profile counts all come from it and agree with the kernels' own
// signatures. Also: selection and `explain` name every strategy with a reason,
// and no two tuner candidates build the same program. No GPU needed.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "cuda/select/select.hpp"
#include "fuseblock/fuseblock.hpp"
#include "profile/profile.hpp"
#include "tune/tuner.hpp"
#include "verify/kernel_signature.hpp"

using namespace fuseblock;

namespace {

struct SpecCase {
  std::string name;
  Plan plan;
};

std::vector<SpecCase> spec_cases() {
  std::vector<SpecCase> out;
  for (const auto& e : std::filesystem::directory_iterator(std::string(FB_SOURCE_DIR) + "/tests/specs")) {
    if (e.path().extension() != ".block") continue;
    std::ifstream f(e.path());
    std::stringstream ss;
    ss << f.rdbuf();
    for (bool assume_finite : {false, true}) {
      LowerOptions lo;
      lo.assume_finite = assume_finite;
      out.push_back({e.path().filename().string() + (assume_finite ? " (assume_finite)" : ""),
                     lower(parse_spec(ss.str(), e.path().string()), lo)});
    }
  }
  std::sort(out.begin(), out.end(), [](const SpecCase& a, const SpecCase& b) { return a.name < b.name; });
  return out;
}

// The C type a kernel parameter must have for an argument of this kind.
std::string expected_type(const cuda::Arg& a) {
  switch (a.kind) {
    case cuda::ArgKind::Buffer:
      return "pointer";
    case cuda::ArgKind::TensorMap:
      return "const __grid_constant__ fb_tensor_map";
    case cuda::ArgKind::DropoutSeed:
    case cuda::ArgKind::DropoutOffset:
      return "unsigned long long";
    case cuda::ArgKind::BlocksPerSample:
      return "int";
    case cuda::ArgKind::SliceElems:
    case cuda::ArgKind::QuadsPerBlock:
      return "long long";
  }
  return "?";
}

std::string type_of(const verify::KernelParam& p) {
  if (p.pointer) return "pointer";
  std::string t = p.type;
  t.erase(0, t.find_first_not_of(' '));
  t.erase(t.find_last_not_of(' ') + 1);
  return t;
}

}  // namespace

TEST(LaunchProgram, EveryStrategyOnEverySpecAgreesWithItsKernelsAndItsBuffers) {
  int built = 0;
  for (const SpecCase& c : spec_cases())
    for (bool tf32 : {true, false})
      for (const cuda::ConvStrategy* st : cuda::conv_strategies()) {
        const cuda::ConvProblem problem{&c.plan, tf32};
        if (st->unsupported(problem, cuda::DeviceLimits{})) continue;
        const std::vector<cuda::ConvTuning> configs = st->configs(problem);
        ASSERT_FALSE(configs.empty()) << c.name << " " << st->name();
        EXPECT_EQ(st->default_config(problem), configs.front()) << c.name << " " << st->name();
        for (const cuda::ConvTuning& cfg : configs) {
          const cuda::LaunchProgram prog = st->build(problem, cfg);
          const std::string where = c.name + (tf32 ? " tf32 " : " fp32 ") + st->name() + " [" + prog.config + "]";
          ++built;
          // Each kernel of the source is a step, and its signature takes
          // exactly the step's arguments.
          const std::vector<verify::KernelSignature> sigs = verify::parse_kernel_signatures(prog.source);
          size_t kernel_steps = 0;
          for (const cuda::Step& s : prog.steps) {
            if (s.kind == cuda::StepKind::Memset) {
              EXPECT_TRUE(prog.find(s.memset_target)) << where << ": memset of an undeclared buffer";
              continue;
            }
            if (s.kind == cuda::StepKind::LibraryConv) {
              // The library reads x and w and writes the conv output, the one declared intermediate.
              EXPECT_EQ(s.reads, (std::vector<cuda::BufferRef>{cuda::BufferRole::Input, cuda::BufferRole::ConvWeight}))
                  << where;
              ASSERT_EQ(s.writes, std::vector<cuda::BufferRef>{cuda::BufferRole::ConvOutput}) << where;
              ASSERT_TRUE(prog.find(cuda::BufferRole::ConvOutput)) << where;
              EXPECT_EQ(prog.find(cuda::BufferRole::ConvOutput)->kind, cuda::BufferKind::Intermediate) << where;
              EXPECT_EQ(prog.bytes_of(cuda::BufferRole::ConvOutput), prog.bytes_of(cuda::BufferRole::Output)) << where;
              EXPECT_EQ(s.library_conv.dtype, c.plan.pipeline.types.storage) << where;
              EXPECT_EQ(s.library_conv.allow_tf32, tf32) << where;
              EXPECT_GT(s.flops, 0) << where;
              continue;
            }
            ++kernel_steps;
            auto sig = std::find_if(sigs.begin(), sigs.end(), [&](const auto& k) { return k.name == s.name; });
            ASSERT_NE(sig, sigs.end()) << where << ": step " << s.name << " is not in the source";
            ASSERT_EQ(sig->params.size(), s.args.size()) << where << " " << s.name;
            EXPECT_EQ(static_cast<unsigned>(sig->launch_bound_threads), s.threads) << where << " " << s.name;
            for (size_t i = 0; i < s.args.size(); ++i) {
              const cuda::Arg& a = s.args[i];
              EXPECT_EQ(type_of(sig->params[i]), expected_type(a))
                  << where << " " << s.name << " parameter " << sig->params[i].name;
              if (a.step >= 0) EXPECT_LT(static_cast<size_t>(a.step), prog.steps.size()) << where;
              if (a.kind != cuda::ArgKind::Buffer) continue;
              const cuda::Buffer* b = prog.find(a.ref);
              // An optional buffer (a conv without bias, GroupNorm without
              // affine, no guard) is passed as a null pointer: only a read-only
              // parameter may be left so, or the guard flags of an unguarded
              // fill, which its kernel never stores to (verify's PTX level).
              if (!b) {
                EXPECT_TRUE(!sig->params[i].writable || a.ref == cuda::BufferRole::GuardFlags)
                    << where << " " << s.name << ": writes " << cuda::buffer_name(a.ref);
                continue;
              }
              if (sig->params[i].writable)
                EXPECT_TRUE(b->kind == cuda::BufferKind::Output || b->kind == cuda::BufferKind::Scratch ||
                            b->kind == cuda::BufferKind::Intermediate)
                    << where << " " << s.name << " may write " << cuda::buffer_name(a.ref);
            }
            // What the step says it reads and writes is a declared buffer;
            // profile counts exactly those.
            double reads = 0, writes = 0;
            for (const cuda::BufferRef& r : s.reads) {
              ASSERT_TRUE(prog.find(r)) << where << " " << s.name << " reads " << cuda::buffer_name(r);
              reads += static_cast<double>(prog.bytes_of(r));
            }
            for (const cuda::BufferRef& r : s.writes) {
              ASSERT_TRUE(prog.find(r)) << where << " " << s.name << " writes " << cuda::buffer_name(r);
              writes += static_cast<double>(prog.bytes_of(r));
            }
            const profile::KernelIo io = profile::step_io(prog, s);
            if (s.gated) {
              EXPECT_DOUBLE_EQ(io.bytes(), static_cast<double>(prog.bytes_of(cuda::BufferRole::GuardFlags))) << where;
            } else {
              EXPECT_DOUBLE_EQ(io.read_bytes(), reads) << where << " " << s.name;
              EXPECT_DOUBLE_EQ(io.write_bytes(), writes) << where << " " << s.name;
            }
          }
          EXPECT_EQ(kernel_steps, sigs.size()) << where << ": a kernel in the source that no step launches";
          // The scratch layout places every scratch buffer once, aligned,
          // without overlap.
          const cuda::ScratchLayout l = cuda::scratch_layout(prog);
          std::vector<std::pair<size_t, size_t>> spans;
          int intermediates = 0;
          for (const cuda::Buffer& b : prog.buffers) {
            intermediates += b.kind == cuda::BufferKind::Intermediate;
            if (b.kind != cuda::BufferKind::Scratch && b.kind != cuda::BufferKind::Intermediate) continue;
            const auto at = l.offset_of(b.ref);
            ASSERT_TRUE(at.has_value()) << where << " " << cuda::buffer_name(b.ref);
            EXPECT_EQ(*at % 256, 0u) << where;
            spans.emplace_back(*at, *at + b.bytes);
          }
          std::sort(spans.begin(), spans.end());
          for (size_t i = 1; i < spans.size(); ++i) EXPECT_LE(spans[i - 1].second, spans[i].first) << where;
          if (!spans.empty()) EXPECT_LE(spans.back().second, l.bytes) << where;
          // Only store_once stores an intermediate, and exactly one: the conv output.
          EXPECT_EQ(intermediates, prog.strategy == "store_once" ? 1 : 0) << where;
          // The output is written by some step, every time.
          bool writes_output = false;
          for (const cuda::Step& s : prog.steps)
            writes_output |= !s.gated && std::count(s.writes.begin(), s.writes.end(), cuda::BufferRole::Output) > 0;
          EXPECT_TRUE(writes_output) << where;
        }
      }
  EXPECT_GE(built, 30) << "every spec is supported by some strategy";
}

// A guarded constant fill computes its guard's bound on the device (fb_guard_bound, from the
// parameters, into the scratch "guard bound") before any step reads it, and the guard kernels take
// it by pointer: nothing the host derives from the parameters' values enters the run.
TEST(LaunchProgram, GuardedFillComputesItsBoundOnTheDeviceFirst) {
  using R = cuda::BufferRole;
  int guarded = 0;
  for (const SpecCase& c : spec_cases())
    for (const cuda::ConvStrategy* st : cuda::conv_strategies()) {
      const cuda::ConvProblem problem{&c.plan, true};
      if (std::string(st->name()) != "constant_fill" || st->unsupported(problem, cuda::DeviceLimits{})) continue;
      const cuda::LaunchProgram prog = st->build(problem, st->default_config(problem));
      const bool guard = c.plan.guard.has_value() && !c.plan.assume_finite;
      const cuda::Step* bound = prog.find_step("fb_guard_bound");
      if (!guard) {
        EXPECT_EQ(bound, nullptr) << c.name;
        EXPECT_EQ(prog.find(R::GuardBound), nullptr) << c.name;
        continue;
      }
      ++guarded;
      ASSERT_NE(bound, nullptr) << c.name;
      const cuda::Buffer* b = prog.find(R::GuardBound);
      ASSERT_NE(b, nullptr) << c.name;
      EXPECT_EQ(b->kind, cuda::BufferKind::Scratch);
      EXPECT_EQ(b->bytes, 4u);
      EXPECT_EQ(bound->writes, std::vector<cuda::BufferRef>{R::GuardBound}) << c.name;
      EXPECT_EQ(bound->reads.front(), R::ConvWeight) << c.name;
      EXPECT_EQ(bound->grid.rule, cuda::GridRule::Fixed);
      EXPECT_EQ(bound->grid.grid_x, 1);
      const size_t at = static_cast<size_t>(bound - prog.steps.data());
      int readers = 0;
      for (size_t i = 0; i < prog.steps.size(); ++i) {
        const cuda::Step& s = prog.steps[i];
        const bool reads = std::count(s.reads.begin(), s.reads.end(), R::GuardBound) > 0;
        const bool binds = std::any_of(s.args.begin(), s.args.end(), [](const cuda::Arg& a) {
          return a.kind == cuda::ArgKind::Buffer && a.ref == R::GuardBound;
        });
        if (i == at) continue;
        EXPECT_EQ(reads, binds) << c.name << " " << s.name;
        if (!reads) continue;
        ++readers;
        EXPECT_GT(i, at) << c.name << ": " << s.name << " reads the bound before fb_guard_bound writes it";
      }
      EXPECT_EQ(readers, 1) << c.name << ": fb_guard or fb_fill";
    }
  EXPECT_GE(guarded, 1) << "no spec under tests/specs has a guarded fill";
}

TEST(LaunchProgram, SelectionNamesEveryStrategyWithAReasonAndPicksOneThatApplies) {
  for (const SpecCase& c : spec_cases())
    for (bool tf32 : {true, false}) {
      const cuda::ConvProblem problem{&c.plan, tf32};
      const cuda::Selection s = cuda::select_strategy(problem, cuda::DeviceLimits{});
      ASSERT_EQ(s.candidates.size(), cuda::conv_strategies().size()) << c.name;
      EXPECT_FALSE(s.winner().rejected.has_value()) << c.name;
      for (const cuda::Candidate& k : s.candidates) {
        EXPECT_FALSE(k.why.empty()) << c.name << " " << k.strategy->name();
        if (!k.rejected) EXPECT_GT(k.cost_ms, 0) << c.name << " " << k.strategy->name();
        EXPECT_LE(s.winner().cost_ms, k.rejected ? INFINITY : k.cost_ms) << c.name << ": the cheapest wins";
      }
      // A cached tune decision wins over the ranking, if the strategy supports
      // the problem.
      for (const cuda::Candidate& k : s.candidates) {
        if (k.rejected) continue;
        const cuda::Selection t =
            cuda::select_strategy(problem, cuda::DeviceLimits{}, cuda::TunedChoice{k.strategy->name(), k.config});
        EXPECT_EQ(t.winner().strategy, k.strategy) << c.name;
      }
      const cuda::Selection stale =
          cuda::select_strategy(problem, cuda::DeviceLimits{}, cuda::TunedChoice{"no_such_strategy", {}});
      EXPECT_EQ(stale.winner().strategy, s.winner().strategy) << "an unknown cached strategy is ignored";
    }
}

TEST(LaunchProgram, NoTwoTuneCandidatesBuildTheSameProgram) {
  // The most permissive traits the rules see (low register pressure: every knob
  // proposed).
  tune::ConvTraits low;
  low.traits.knobs = tune::KnobSet::Conv;
  low.traits.registers = 64;
  low.traits.distinct_input_loads = 2;
  int with_challengers = 0;
  for (const SpecCase& c : spec_cases())
    for (bool tf32 : {true, false})
      for (bool tile_width : {true, false}) {
        const cuda::ConvProblem problem{&c.plan, tf32};
        const cuda::Selection sel = cuda::select_strategy(problem, cuda::DeviceLimits{});
        if (std::string(sel.winner().strategy->name()) == "constant_fill") continue;
        const cuda::LaunchProgram base = cuda::build_selected(problem, sel);
        low.traits.has_tile_width = tile_width;
        std::vector<cuda::LaunchProgram> programs;
        std::vector<std::string> skipped;
        const auto configs = tune::tune_candidates(problem, sel, base, low, &programs, &skipped);
        ASSERT_EQ(configs.size(), programs.size()) << c.name;
        ASSERT_FALSE(configs.empty());
        EXPECT_LE(configs.size(), static_cast<size_t>(tune::kMaxConfigs)) << c.name;
        EXPECT_EQ(programs[0].source, base.source) << c.name << ": the baseline is the selection's default";
        std::set<std::string> sources;
        for (const auto& p : programs)
          EXPECT_TRUE(sources.insert(p.source).second) << c.name << ": a duplicate program";
        with_challengers += configs.size() > 1;
      }
  EXPECT_GT(with_challengers, 0);
}

TEST(LaunchProgram, ExplainListsTheStrategiesConsideredWithReasons) {
  const std::string cmd =
      std::string(FB_CLI_PATH) + " explain " + FB_SOURCE_DIR + "/tests/specs/problem83_silu.block 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  for (const char* part : {"strategies considered:", "* recompute_sample_runs", "recompute_two_pass", "cost model",
                           "x constant_fill", "rejected: the chain does not fold", "chosen: recompute_sample_runs",
                           "fbl_conv_stats<<<", "stats partials", "norm a, b"})
    EXPECT_NE(out.find(part), std::string::npos) << part << "\n" << out;
}
