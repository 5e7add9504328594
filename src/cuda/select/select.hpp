// Selection: every strategy x config that supports the problem, ranked. Rules
// first (a strategy's unsupported() rejects it, with the reason), then the cost
// model (launch_cost.hpp) over each strategy's default config; a cached
// `fuseblock tune` decision for this program and device wins over the ranking.
// `explain` prints the whole Selection.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "cuda/program/launch_program.hpp"
#include "cuda/strategies/strategy.hpp"

namespace fuseblock::cuda {

struct Candidate {
  const ConvStrategy* strategy = nullptr;
  ConvTuning config;
  std::string config_text;              // the config as its program describes it
  std::optional<std::string> rejected;  // why it cannot run (unsupported), when it cannot
  double cost_ms = 0;                   // the cost model's estimate (supported ones)
  std::string why;                      // why it ranks where it does, in words
};

// A decision that `fuseblock tune` measured and cached: a strategy and its
// config.
struct TunedChoice {
  std::string strategy;
  ConvTuning config;
};

struct Selection {
  std::vector<Candidate> candidates;  // every strategy, supported ones first in rank order
  size_t chosen = 0;                  // index into candidates
  std::string chosen_by;              // "cost model" | "tuning cache" | "the only strategy
                                      // that applies"
  const Candidate& winner() const { return candidates.at(chosen); }
  std::string text() const;  // what explain prints
};

// Throws a UserError when no strategy supports the problem (each one's reason
// in the message).
Selection select_strategy(const ConvProblem& problem, const DeviceLimits& device,
                          const std::optional<TunedChoice>& tuned = std::nullopt);

// The program the selection's winner builds.
LaunchProgram build_selected(const ConvProblem& problem, const Selection& s);

// The default program of a plan: the ranking's winner, no tuning cache
// consulted. Its source keys the tuning cache and the golden tests.
LaunchProgram default_program(const Plan& plan, bool allow_tf32, const DeviceLimits& device = {});

}  // namespace fuseblock::cuda
