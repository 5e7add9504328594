#include "cuda/select/select.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "cuda/select/launch_cost.hpp"
#include "fuseblock/error.hpp"

namespace fuseblock::cuda {

Selection select_strategy(const ConvProblem& problem, const DeviceLimits& device,
                          const std::optional<TunedChoice>& tuned) {
  Selection s;
  std::vector<Candidate> supported, rejected;
  for (const ConvStrategy* st : conv_strategies()) {
    Candidate c;
    c.strategy = st;
    c.rejected = st->unsupported(problem, device);
    if (c.rejected) {
      c.why = "rejected: " + *c.rejected;
      rejected.push_back(c);
      continue;
    }
    c.config = st->default_config_on(problem, device);
    const LaunchProgram prog = st->build(problem, c.config);
    c.config_text = prog.config;
    const double floor = launch_floor_ms(prog, prog.tensor_cores);
    c.cost_ms = floor / st->measured_efficiency();
    c.why = fmt::format(
        "cost model: floor {:.4f} ms (bytes and FLOPs of its "
        "steps at the H200's ceilings) / {} "
        "efficiency {:.2f} = {:.4f} ms",
        floor, st->efficiency_fitted() ? "measured" : "unfitted (a placeholder until tune measures it)",
        st->measured_efficiency(), c.cost_ms);
    supported.push_back(c);
  }
  if (supported.empty()) {
    std::string why;
    for (const Candidate& c : rejected) why += fmt::format("\n  {}: {}", c.strategy->name(), *c.rejected);
    throw UserError("no CUDA strategy can run this block:" + why, "use --device cpu");
  }
  // Stable: equal estimates keep the registry's order.
  std::stable_sort(supported.begin(), supported.end(),
                   [](const Candidate& a, const Candidate& b) { return a.cost_ms < b.cost_ms; });
  s.candidates = supported;
  s.candidates.insert(s.candidates.end(), rejected.begin(), rejected.end());
  s.chosen = 0;
  s.chosen_by = supported.size() == 1 ? "the only strategy that applies" : "cost model";
  if (tuned) {
    for (size_t i = 0; i < supported.size(); ++i) {
      if (tuned->strategy != supported[i].strategy->name()) continue;
      const std::vector<ConvTuning> cfgs = supported[i].strategy->configs(problem);
      if (std::find(cfgs.begin(), cfgs.end(), tuned->config) == cfgs.end()) break;  // stale: not a config it has
      s.candidates[i].config = tuned->config;
      s.candidates[i].config_text = describe(tuned->config);
      s.chosen = i;
      s.chosen_by = "tuning cache (fuseblock tune measured it on this device)";
      break;
    }
  }
  return s;
}

LaunchProgram build_selected(const ConvProblem& problem, const Selection& s) {
  const Candidate& c = s.winner();
  return c.strategy->build(problem, c.config);
}

LaunchProgram default_program(const Plan& plan, bool allow_tf32, const DeviceLimits& device) {
  const ConvProblem problem{&plan, allow_tf32};
  return build_selected(problem, select_strategy(problem, device));
}

std::string Selection::text() const {
  std::string s = "strategies considered:\n";
  for (size_t i = 0; i < candidates.size(); ++i) {
    const Candidate& c = candidates[i];
    s += fmt::format("  {} {:<22} {}\n",
                     i == chosen  ? "*"
                     : c.rejected ? "x"
                                  : " ",
                     c.strategy->name(), c.rejected ? c.why : fmt::format("[{}] {}", c.config_text, c.why));
  }
  s += fmt::format("chosen: {} (by {})\n", winner().strategy->name(), chosen_by);
  return s;
}

}  // namespace fuseblock::cuda
