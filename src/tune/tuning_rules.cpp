#include "tune/tuning_rules.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "fuseblock/error.hpp"

namespace fuseblock::tune {
namespace {

// Pressure classes, the seed's thresholds, shared by both knob sets.
struct Pressure {
  bool spills, high, low, many_inputs;
};
Pressure pressure_of(const KernelTraits& k) {
  const bool spills = k.spill_bytes > 0;
  return {spills, k.registers > 128 || k.occupancy_register_limited || spills, k.registers < 96 && !spills,
          k.distinct_input_loads >= 3};
}

std::string high_pressure_reason(const KernelTraits& k) {
  if (k.spill_bytes > 0) return fmt::format("{} B spilled", k.spill_bytes);
  if (k.registers > 128) return fmt::format("{} registers > 128", k.registers);
  return fmt::format("occupancy limited by registers ({} a thread)", k.registers);
}

// The conv kernels' candidates (the mapping is in tuning_rules.hpp's header comment).
std::vector<Config> conv_candidates(const KernelTraits& k) {
  const Pressure pr = pressure_of(k);
  const std::string base_rule = pr.high ? fmt::format("baseline (always measured); high register pressure ({}): "
                                                      "baseline only",
                                                      high_pressure_reason(k))
                                        : "baseline (always measured)";
  std::vector<Config> out{{4, 2, base_rule, ConvKnobs{}, KnobSet::Conv}};
  auto add = [&](ConvKnobs c, std::string rule) {
    Config cfg{4, 2, std::move(rule), c, KnobSet::Conv};
    if (out.size() < static_cast<size_t>(kMaxConfigs) && std::find(out.begin(), out.end(), cfg) == out.end())
      out.push_back(cfg);
  };
  const ConvKnobs narrow{2, 2, 1}, unroll{4, 2, 2}, both{2, 2, 2};
  if (pr.high) return out;  // more in flight costs registers the kernel lacks
  if (pr.many_inputs) {
    // Each step in flight buffers every input: no deeper pipelining, one challenger at most.
    if (k.has_tile_width)
      add(narrow, fmt::format("{} distinct input loads: no deeper pipelining; the narrower tile (more blocks "
                              "resident) as the one challenger",
                              k.distinct_input_loads));
    return out;
  }
  if (pr.low) {
    add(unroll, fmt::format("low register pressure ({} < 96, no spill): epilogue unroll 2 (more loads in flight)",
                            k.registers));
    if (k.has_tile_width) {
      add(narrow, "low register pressure: the narrower tile (more blocks resident: more warps in flight)");
      add(both, "low register pressure: narrower tile and epilogue unroll 2");
    }
    return out;
  }
  if (k.has_tile_width)
    add(narrow, fmt::format("moderate register pressure ({}): the narrower tile (more warps in flight), no "
                            "deeper pipelining",
                            k.registers));
  return out;
}

}  // namespace

bool ConvKnobs::valid() const {
  const bool ig_ok = ig_bm == 0 ? (ig_bn == 0 && ig_wm == 0 && ig_wn == 0 && ig_blocks == 0)
                                 : (ig_bn > 0 && ig_wm > 0 && ig_wn > 0 && ig_bm % ig_wm == 0 && ig_bn % ig_wn == 0 &&
                                    ig_blocks >= 1 && ig_blocks <= 4);
  return (mma_mpw == 4 || mma_mpw == 2) && (min_blocks >= 1 && min_blocks <= 4) &&
         (epilogue_unroll == 1 || epilogue_unroll == 2) && ig_ok;
}

std::string Config::describe() const {
  if (knobs == KnobSet::Conv && conv.ig_bm > 0)
    return fmt::format("{}{}igemm {}x{}, warp {}x{}, {} block{}/SM", strategy, strategy.empty() ? "" : ": ", conv.ig_bm,
                       conv.ig_bn, conv.ig_wm, conv.ig_wn, conv.ig_blocks, conv.ig_blocks == 1 ? "" : "s");
  if (knobs == KnobSet::Conv)
    return fmt::format("{}{}mpw {}, {} block{}/SM, epilogue unroll {}", strategy, strategy.empty() ? "" : ": ",
                       conv.mma_mpw, conv.min_blocks, conv.min_blocks == 1 ? "" : "s", conv.epilogue_unroll);
  return fmt::format("{} warps, {} stages", warps, stages);
}

std::vector<Config> candidate_configs(const KernelTraits& k) {
  if (k.knobs == KnobSet::Conv) return conv_candidates(k);
  std::vector<Config> out{{4, 2, "baseline (always measured)"}};
  auto add = [&](int warps, int stages, std::string rule) {
    if (!k.pipelines_loads) stages = 2;  // no pipeline: the stages knob does not exist
    Config c{warps, stages, std::move(rule)};
    if (out.size() < static_cast<size_t>(kMaxConfigs) && std::find(out.begin(), out.end(), c) == out.end())
      out.push_back(c);
  };
  const Pressure pr = pressure_of(k);
  if (pr.high) return out;  // 4 warps and 2 stages: more of either costs registers it lacks
  if (pr.many_inputs) {
    // Each stage buffers every input: keep 2 stages; 8 warps only as a challenger.
    add(8, 2, fmt::format("{} distinct input loads: 2 stages; 8 warps as challenger", k.distinct_input_loads));
    return out;
  }
  if (pr.low) {
    add(8, 2, fmt::format("low register pressure ({} < 96, no spill): 8 warps", k.registers));
    add(8, 3, "low register pressure: 8 warps, 3 stages to hide latency");
    add(4, 3, "low register pressure: 3 stages at 4 warps");
  } else {
    add(8, 2, fmt::format("moderate register pressure ({}): 8 warps, 2 stages", k.registers));
  }
  return out;
}

size_t pick_config(const std::vector<Config>& configs, const std::vector<double>& times_ms, std::string* why) {
  FB_ASSERT(!configs.empty() && configs.size() == times_ms.size(), "a time per configuration");
  FB_ASSERT(std::isfinite(times_ms[0]) && times_ms[0] > 0, "the baseline has a time");
  // A candidate without a finite time (rejected: its output differed) never wins.
  size_t best = 0;
  for (size_t i = 1; i < configs.size(); ++i)
    if (std::isfinite(times_ms[i]) && times_ms[i] < times_ms[best]) best = i;
  const double gain = 1.0 - times_ms[best] / times_ms[0];
  if (best != 0 && gain >= kMinGain) {
    if (why) *why = fmt::format("{} is {:.1f}% faster than the baseline: kept", configs[best].describe(), gain * 100);
    return best;
  }
  if (why)
    *why = configs.size() == 1 ? "only the baseline was measured: kept"
           : best == 0         ? "the baseline is fastest: kept"
                     : fmt::format("best candidate ({}) gains only {:.1f}% (< 2%): baseline kept",
                                   configs[best].describe(), gain * 100);
  return 0;
}

}  // namespace fuseblock::tune
