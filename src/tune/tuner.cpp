#include "tune/tuner.hpp"

#include <chrono>
#include <cmath>
#include <algorithm>
#include <memory>

#include <fmt/format.h>

#include "cuda/runtime/device_context.hpp"
#include "cuda/executor/executor.hpp"
#include "cuda/select/select.hpp"
#include "measure/device_run.hpp"
#include "measure/occupancy.hpp"
#include "measure/step_timer.hpp"
#include "tune/conv_traits.hpp"
#include "tune/tuning_key.hpp"

namespace fuseblock::tune {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Outputs of two configurations agree when NaNs sit at the same places and every other element is
// within a tolerance: float32 1e-4 of the baseline's RMS, as the tilings differ only in the
// statistics' summation order. bf16/f16 per element, of the RMS plus the element's own size, as
// the GPU tests compare the engines with the CPU backend (test_gpu_store_once.cpp: 3e-2 and 2e-2):
// a conv engine's summation order moves the conv output, rounded to the storage type as eager
// rounds it, by an ulp, which the norm scales by rstd and the output's rounding moves again, so
// the largest outputs differ by a few of their own ulps (an H100 tune of the SD ResBlock in bf16,
// 2026-12-08: 0.05 of the RMS at the largest elements, every tile rejected by the RMS-only bound).
double agree_tolerance(DType storage) {
  return storage == DType::F32 ? 1e-4 : (storage == DType::BF16 ? 4 : 16) * dtype_info(storage).epsilon;
}

// The rules' view of an executor's program, and the driver's blocks/SM where they differ from
// the calculator's.
ConvTraits traits_of(const cuda::Executor& ex, const measure::SmLimits& sm, std::string* text) {
  ConvTraits t = conv_traits(ex.program(), ex.compiled(), sm);
  *text = t.describe();
  for (const cuda::KernelLaunch& l : ex.launches())
    for (const ConvKernelMetrics& k : t.kernels)
      if (l.kernel == k.kernel && l.blocks_per_sm != k.occupancy.blocks)
        *text += fmt::format(" [driver: {} {} blocks/SM]", l.kernel, l.blocks_per_sm);
  return t;
}

// Empty when y agrees with the baseline's output, else why not.
std::string disagreement(const std::vector<float>& base, const std::vector<float>& y, DType storage) {
  const double tolerance = agree_tolerance(storage);
  if (base.size() != y.size()) return "output size differs";
  const int64_t n = static_cast<int64_t>(y.size());
  double sq = 0, worst = 0;
  int64_t finite = 0, nan_mismatch = 0;
#pragma omp parallel for reduction(+ : sq, finite)
  for (int64_t i = 0; i < n; ++i)
    if (std::isfinite(base[static_cast<size_t>(i)])) sq += double(base[static_cast<size_t>(i)]) * base[static_cast<size_t>(i)], ++finite;
  const double rms = finite ? std::sqrt(sq / static_cast<double>(finite)) : 0.0;
  // worst: |diff| in units of the RMS-sized bound (half precision: rms + |a|, written as rms * (1 + |a| / rms)).
  const double scaled = storage == DType::F32 || rms == 0 ? 0.0 : 1.0 / rms;
#pragma omp parallel for reduction(max : worst) reduction(+ : nan_mismatch)
  for (int64_t i = 0; i < n; ++i) {
    const float a = base[static_cast<size_t>(i)], b = y[static_cast<size_t>(i)];
    if (std::isnan(a) != std::isnan(b)) {
      ++nan_mismatch;
      continue;
    }
    if (std::isfinite(a) && std::isfinite(b)) worst = std::max(worst, std::fabs(double(a) - b) / (1.0 + scaled * std::fabs(a)));
    else if (a != b && !std::isnan(a)) ++nan_mismatch;  // an Inf on one side only
  }
  if (nan_mismatch) return fmt::format("{} elements differ in NaN/Inf from the baseline", nan_mismatch);
  if (rms > 0 && worst > tolerance * rms)
    return fmt::format("max |diff| / {} {:.2g} from the baseline (tolerance {:.1e})",
                       storage == DType::F32 ? "rms" : "(rms + |baseline|)", worst / rms, tolerance);
  return "";
}

std::string per_kernel_times(const cuda::Executor& ex, const measure::Timing& t) {
  std::string s;
  for (size_t i = 0; i < ex.launches().size(); ++i)
    s += fmt::format("{}{} {:.3f}", i ? ", " : "", ex.launches()[i].kernel, t.step_ms[i]);
  return s;
}

}  // namespace

std::vector<Config> tune_candidates(const cuda::ConvProblem& problem, const cuda::Selection& sel,
                                    const cuda::LaunchProgram& base, const ConvTraits& traits,
                                    std::vector<cuda::LaunchProgram>* programs, std::vector<std::string>* skipped) {
  const cuda::ConvStrategy& base_strategy = *sel.winner().strategy;
  std::vector<Config> out;
  auto add = [&](Config c, const cuda::ConvStrategy& st) {
    c.knobs = KnobSet::Conv;
    c.strategy = st.name();
    cuda::LaunchProgram prog = out.empty() ? base : st.build(problem, to_conv_tuning(c.conv));
    for (size_t i = 0; i < programs->size(); ++i)
      if ((*programs)[i].source == prog.source) {
        skipped->push_back(fmt::format("{} builds the same program as candidate {}: not measured", c.describe(), i + 1));
        return;
      }
    if (out.size() >= static_cast<size_t>(kMaxConfigs)) {
      skipped->push_back(fmt::format("{}: over the seed's limit of {} configurations", c.describe(), kMaxConfigs));
      return;
    }
    out.push_back(c);
    programs->push_back(std::move(prog));
  };
  const std::vector<cuda::ConvTuning> own = base_strategy.configs(problem);
  std::vector<Config> ruled = candidate_configs(traits.traits);
  ruled.front().conv = to_knobs(sel.winner().config);
  ruled.front().rule = fmt::format("baseline: the selection's default ({})", sel.chosen_by);
  add(ruled.front(), base_strategy);
  for (size_t i = 0; i < sel.candidates.size(); ++i) {
    const cuda::Candidate& c = sel.candidates[i];
    if (i == sel.chosen || c.rejected) continue;
    add(Config{4, 2, fmt::format("another strategy that supports the block (cost model: {:.4f} ms)", c.cost_ms),
               to_knobs(c.config)},
        *c.strategy);
  }
  // The strategy's own configs past its default (store_once: cuDNN's conv and the igemm tiles).
  for (size_t i = 1; i < own.size(); ++i)
    add(Config{4, 2, "a config of the strategy's own (configs())", to_knobs(own[i])}, base_strategy);
  for (size_t i = 1; i < ruled.size(); ++i) {
    if (std::find(own.begin(), own.end(), to_conv_tuning(ruled[i].conv)) == own.end()) {
      skipped->push_back(fmt::format("{} ({}): {} has no such config", ruled[i].describe(), ruled[i].rule, base_strategy.name()));
      continue;
    }
    add(ruled[i], base_strategy);
  }
  return out;
}

std::string TuneReport::text() const {
  if (!tunable) return "nothing to tune: " + not_tunable_why + "\n";
  std::string s = cached ? fmt::format("cached: the decision below was measured earlier for this program on {}; "
                                       "nothing was compiled or measured now (--force measures again)\n",
                                       device)
                         : fmt::format("measured {} configuration{} on {}\n", measured, measured == 1 ? "" : "s", device);
  const TuningRecord& r = record;
  const double base = r.times_ms.empty() ? 0 : r.times_ms[0];
  s += fmt::format("  {:<2} {:<40} {:>9} {:>12}  {}\n", "#", "configuration", "time ms", "vs baseline", "rule / metrics");
  for (size_t i = 0; i < r.candidates.size(); ++i) {
    const double t = i < r.times_ms.size() ? r.times_ms[i] : NAN;
    const std::string time = std::isfinite(t) ? fmt::format("{:.4f}", t) : "rejected";
    const std::string vs = i == 0 || !std::isfinite(t) || base <= 0 ? "" : fmt::format("{:+.1f}%", 100.0 * (t / base - 1.0));
    const bool chosen = r.candidates[i] == r.chosen;
    s += fmt::format("{} {:<2} {:<40} {:>9} {:>12}  {}\n", chosen ? "*" : " ", i + 1, r.candidates[i].describe(), time, vs,
                     r.candidates[i].rule);
    if (i < r.notes.size() && !r.notes[i].empty()) s += fmt::format("  {:<2} {:<40} {:>9} {:>12}  {}\n", "", "", "", "", r.notes[i]);
  }
  s += fmt::format("chosen: {} ({})\n", r.chosen.describe(), r.why);
  s += fmt::format("key: {}\n", key.str());
  return s;
}

TuneReport tune_plan(const Plan& plan, const Params& params, const Tensor& x, const TuneOptions& o, std::ostream& progress) {
  TuneReport rep;
  const cuda::DeviceInfo& dev = cuda::use_device();
  rep.device = dev.describe();
  const cuda::ConvProblem problem{&plan, o.allow_tf32 && dev.cc_major >= 8};  // as executor_for decides
  const cuda::Selection sel = cuda::select_strategy(problem, cuda::current_device_limits());
  const cuda::LaunchProgram base_prog = cuda::build_selected(problem, sel);
  if (std::string(sel.winner().strategy->name()) == "constant_fill") {
    rep.not_tunable_why =
        plan.guard && !plan.assume_finite
            ? "the fill path (a memset or fill kernel and the guard) has no knobs, and the exact fallback's conv kernels "
              "are gated: they run only for samples that fail the guard, so there is nothing to measure"
            : "the fill path (a memset or fill kernel) has no knobs";
    return rep;
  }
  if (numel(plan.pipeline.output_shape) == 0) {
    rep.not_tunable_why = "the output is empty";
    return rep;
  }
  rep.tunable = true;
  rep.key = tuning_key(current_device_identity(), base_prog.source, plan.pipeline);
  TuningCache cache(o.cache_path);
  if (!o.force) {
    if (std::optional<TuningRecord> hit = cache.lookup(rep.key)) {
      rep.cached = true;
      rep.record = *hit;
      return rep;
    }
  }
  if (!cache.recovered_from().empty()) progress << "warning: " << cache.recovered_from() << "\n";

  const measure::SmLimits sm = measure::current_sm_limits();
  progress << sel.text();
  progress << "[baseline] compiling the program with NVRTC ...\n" << std::flush;
  auto t0 = Clock::now();
  auto baseline = std::make_unique<cuda::Executor>(plan, base_prog);
  std::string base_text;
  const ConvTraits bm = traits_of(*baseline, sm, &base_text);
  progress << fmt::format("[baseline] {:.1f} s{}: {}\n", seconds_since(t0), baseline->cache_hit() ? " (cubin cache hit)" : "",
                          base_text);
  rep.traits = fmt::format("{} registers (most of the conv kernels), {} B spilled, occupancy {}limited by registers, {} "
                           "distinct inputs, strategy {} ({})",
                           bm.traits.registers, bm.traits.spill_bytes, bm.traits.occupancy_register_limited ? "" : "not ",
                           bm.traits.distinct_input_loads, base_prog.strategy,
                           bm.traits.has_tile_width ? "tile width knob: yes" : "no tile width knob");
  std::vector<cuda::LaunchProgram> programs;
  std::vector<std::string> skipped;
  const std::vector<Config> configs = tune_candidates(problem, sel, base_prog, bm, &programs, &skipped);
  progress << "rules saw: " << rep.traits << "\n";
  progress << fmt::format("rules chose {} configuration{}:\n", configs.size(), configs.size() == 1 ? "" : "s");
  for (size_t i = 0; i < configs.size(); ++i)
    progress << fmt::format("  {}. {}: {}\n", i + 1, configs[i].describe(), configs[i].rule);
  for (const std::string& s : skipped) progress << "  not measured: " << s << "\n";
  progress << std::flush;

  measure::DeviceRun run(plan, params, x);
  measure::StepTimer timer;
  std::vector<float> base_out;
  TuningRecord& rec = rep.record;
  for (size_t i = 0; i < configs.size(); ++i) {
    const Config& c = configs[i];
    const std::string tag = fmt::format("[{}/{}] {}", i + 1, configs.size(), c.describe());
    std::unique_ptr<cuda::Executor> ex;
    std::string note;
    if (i == 0) {
      ex = std::move(baseline);
      note = base_text;
    } else {
      progress << tag << ": compiling ...\n" << std::flush;
      t0 = Clock::now();
      try {
        ex = std::make_unique<cuda::Executor>(plan, programs[i]);
      } catch (const std::exception& e) {
        progress << tag << ": REJECTED, does not build: " << e.what() << "\n";
        rec.candidates.push_back(c), rec.times_ms.push_back(INFINITY), rec.notes.push_back(std::string("does not build: ") + e.what());
        continue;
      }
      traits_of(*ex, sm, &note);
      progress << fmt::format("{}: compiled in {:.1f} s{}: {}\n", tag, seconds_since(t0), ex->cache_hit() ? " (cubin cache hit)" : "", note);
    }
    progress << fmt::format("{}: measuring ({} warm-up + {} runs, L2 flushed, output poisoned) ...\n", tag, o.warmup, o.runs)
             << std::flush;
    const measure::Timing t = timer.time(
        ex->launches().size(), o.warmup, o.runs, [&] { run.poison_output(); },
        [&](const std::function<void(size_t)>& record) { run.launch(*ex, record); });
    ++rep.measured;
    int64_t unwritten = 0;
    std::vector<float> y = run.download_output(&unwritten);
    std::string bad;
    if (unwritten) bad = fmt::format("{} output elements never written", unwritten);
    if (bad.empty() && i > 0) bad = disagreement(base_out, y, plan.pipeline.types.storage);
    if (i == 0) {
      FB_ASSERT(bad.empty(), "the baseline left output unwritten: " + bad);
      base_out = std::move(y);
    }
    progress << fmt::format("{}: {:.4f} ms ({}); output {}\n", tag, t.total_ms, per_kernel_times(*ex, t),
                            bad.empty() ? (i == 0 ? "complete" : "agrees with the baseline") : "REJECTED: " + bad)
             << std::flush;
    rec.candidates.push_back(c);
    rec.times_ms.push_back(bad.empty() ? t.total_ms : INFINITY);
    rec.notes.push_back(note + fmt::format("; per kernel ms: {}", per_kernel_times(*ex, t)) + (bad.empty() ? "" : "; REJECTED: " + bad));
  }
  rec.chosen = rec.candidates[pick_config(rec.candidates, rec.times_ms, &rec.why)];
  cache.store(rep.key, rec);
  progress << fmt::format("stored in {}\n", cache.path());
  return rep;
}

}  // namespace fuseblock::tune
