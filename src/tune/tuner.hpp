// `fuseblock tune`: the seed's optimization stage run on a plan's conv kernels. Compiles the
// baseline, reads its registers, spills and occupancy, asks the rules (tuning_rules.hpp) for at
// most 4 configurations, compiles and measures each (events, warm-up, median, L2 flushed, output
// poisoned and then checked against the baseline's), keeps the winner only if >= 2% faster, and
// stores the decision in the tuning cache, where executor_for() finds it. A second call for the
// same program, device, driver and NVRTC reads the cache and measures nothing. Needs a GPU.
#pragma once
#include <ostream>
#include <string>
#include <vector>

#include "cuda/program/launch_program.hpp"
#include "cuda/select/select.hpp"
#include "fuseblock/fuseblock.hpp"
#include "tune/conv_traits.hpp"
#include "tune/tuning_cache.hpp"
#include "tune/tuning_rules.hpp"

namespace fuseblock::tune {

struct TuneOptions {
  bool allow_tf32 = true;
  bool force = false;  // measure again even when the cache holds a decision
  int warmup = 5, runs = 30;
  std::string cache_path = TuningCache::default_path();
};

struct TuneReport {
  bool tunable = false;
  std::string not_tunable_why;   // when !tunable
  bool cached = false;           // the decision came from the cache: nothing was compiled or measured
  int measured = 0;              // configurations measured by this call
  std::string device;            // for the summary
  TuningKey key;
  std::string traits;            // the baseline's metrics the rules saw, in words
  TuningRecord record;           // candidates (baseline first), times, chosen, why, metrics
  std::string text() const;      // the summary `tune` prints last
};

// The candidates `tune` measures, baseline (the selection's default) first, at most kMaxConfigs,
// each building a program no earlier one builds: each other strategy that supports the problem at
// its default config, then the default strategy's knob configs that the seed's rules ask for (from
// the baseline's compiled traits). programs[i] is candidate i's program; `skipped` says what was
// left out and why. Pure (no GPU).
std::vector<Config> tune_candidates(const cuda::ConvProblem& problem, const cuda::Selection& sel,
                                    const cuda::LaunchProgram& base, const ConvTraits& traits,
                                    std::vector<cuda::LaunchProgram>* programs, std::vector<std::string>* skipped);

// Progress lines go to `progress` as the work happens (NVRTC compiles take seconds).
TuneReport tune_plan(const Plan& plan, const Params& params, const Tensor& x, const TuneOptions& opts,
                     std::ostream& progress);

}  // namespace fuseblock::tune
