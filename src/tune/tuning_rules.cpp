#include "tune/tuning_rules.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "fuseblock/error.hpp"

namespace fuseblock::tune {

std::vector<Config> candidate_configs(const KernelTraits& k) {
  std::vector<Config> out{{4, 2, "baseline (always measured)"}};
  auto add = [&](int warps, int stages, std::string rule) {
    if (!k.pipelines_loads) stages = 2;  // no pipeline: the stages knob does not exist
    Config c{warps, stages, std::move(rule)};
    if (out.size() < static_cast<size_t>(kMaxConfigs) && std::find(out.begin(), out.end(), c) == out.end())
      out.push_back(c);
  };
  const bool spills = k.spill_bytes > 0;
  const bool high = k.registers > 128 || k.occupancy_register_limited || spills;
  const bool low = k.registers < 96 && !spills;
  const bool many_inputs = k.distinct_input_loads >= 3;
  if (high) return out;  // 4 warps and 2 stages: more of either costs registers it lacks
  if (many_inputs) {
    // Each stage buffers every input: keep 2 stages; 8 warps only as a challenger.
    add(8, 2, fmt::format("{} distinct input loads: 2 stages; 8 warps as challenger", k.distinct_input_loads));
    return out;
  }
  if (low) {
    add(8, 2, fmt::format("low register pressure ({} < 96, no spill): 8 warps", k.registers));
    add(8, 3, "low register pressure: 8 warps, 3 stages to hide latency");
    add(4, 3, "low register pressure: 3 stages at 4 warps");
  } else {
    add(8, 2, fmt::format("moderate register pressure ({}): 8 warps, 2 stages", k.registers));
  }
  return out;
}

size_t pick_config(const std::vector<Config>& configs, const std::vector<double>& times_ms, std::string* why) {
  FB_ASSERT(!configs.empty() && configs.size() == times_ms.size() && configs[0].is_baseline(),
            "tuning measures the baseline first");
  size_t best = 0;
  for (size_t i = 1; i < configs.size(); ++i)
    if (times_ms[i] < times_ms[best]) best = i;
  const double gain = 1.0 - times_ms[best] / times_ms[0];
  if (best != 0 && gain >= kMinGain) {
    if (why) *why = fmt::format("{} warps, {} stages is {:.1f}% faster than the baseline: kept", configs[best].warps, configs[best].stages, gain * 100);
    return best;
  }
  if (why)
    *why = best == 0 ? "the baseline is fastest: kept"
                     : fmt::format("best candidate ({} warps, {} stages) gains only {:.1f}% (< 2%): baseline kept",
                                   configs[best].warps, configs[best].stages, gain * 100);
  return 0;
}

}  // namespace fuseblock::tune
