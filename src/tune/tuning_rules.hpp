// The seed's optimization-stage rules as code: which launch configurations of a kernel are worth
// measuring, and which one to keep.
//
//   baseline (4 warps, 2 stages) always
//   register pressure low (< 96 registers, no spill)       -> try 8 warps, and 3 stages
//   register pressure high (> 128, or occupancy limited by registers) -> 4 warps, 2 stages only
//   three or more distinct input loads                      -> 2 stages; 4 warps preferred
//   at most 4 configurations; keep a candidate only if >= 2% faster than the baseline
#pragma once
#include <string>
#include <vector>

namespace fuseblock::tune {

struct KernelTraits {
  int registers = 0;             // ptxas, at the baseline configuration
  int spill_bytes = 0;           // spill stores + loads
  bool occupancy_register_limited = false;  // from the driver, where there is a GPU
  int distinct_input_loads = 1;  // input tensors the kernel reads (x, weight, bias, stats, ...)
  bool pipelines_loads = false;  // has a software pipeline whose depth is the "stages" knob
};

struct Config {
  int warps = 4;
  int stages = 2;
  std::string rule;  // why it is a candidate, as `tune` prints it
  bool is_baseline() const { return warps == 4 && stages == 2; }
  bool operator==(const Config& o) const { return warps == o.warps && stages == o.stages; }
};

inline constexpr int kMaxConfigs = 4;
inline constexpr double kMinGain = 0.02;

// The candidates, baseline first, at most kMaxConfigs, no duplicates.
std::vector<Config> candidate_configs(const KernelTraits& k);

// Index of the configuration to keep: the fastest candidate if it beats the baseline (index 0)
// by at least kMinGain, else the baseline. times_ms[i] belongs to configs[i].
size_t pick_config(const std::vector<Config>& configs, const std::vector<double>& times_ms, std::string* why);

}  // namespace fuseblock::tune
