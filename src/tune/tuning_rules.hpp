// The seed's optimization-stage rules as code: which launch configurations of a kernel are worth
// measuring, and which one to keep.
//
//   baseline (4 warps, 2 stages) always
//   register pressure low (< 96 registers, no spill)       -> try 8 warps, and 3 stages
//   register pressure high (> 128, or occupancy limited by registers) -> 4 warps, 2 stages only
//   three or more distinct input loads                      -> 2 stages; 4 warps preferred
//   at most 4 configurations; keep a candidate only if >= 2% faster than the baseline
//
// fuseblock's conv kernels have other knobs than Triton's warps and stages (ConvTuning in
// src/cuda/engines/conv_geometry.hpp, mirrored here as ConvKnobs so the rules need no CUDA header): their
// warps per block are fixed by the engine's layout (the TF32 MMA engine is 8 warps, the FMA engine
// 4) and the window pipeline is always double-buffered. The seed's rules map onto them as follows
// (conv_candidates in tuning_rules.cpp; `fuseblock tune --help` prints the same table):
//
//   seed knob                         conv knob                      why it is the same lever
//   8 warps: more warps in flight     tile width mpw 4 -> 2          half the accumulators and window
//                                     (MMA engine only)              per block: more blocks resident
//   3 stages: more loads in flight    epilogue unroll 1 -> 2         two output steps in flight a lane
//   4 warps: more registers per warp  blocks/SM target 2 -> 1        the register budget per thread
//
//   baseline ConvKnobs{} = what runs without tuning: mpw 4, 2 blocks/SM, epilogue unroll 1
//   high pressure (> 128 registers, occupancy limited by registers, or spills) -> baseline only
//   3+ distinct input loads -> no deeper pipelining (unroll stays 1); one challenger at most
//   low pressure (< 96 registers, no spill) -> more in flight: unroll 2, the narrower tile, both
//   moderate pressure -> one challenger: the narrower tile (the seed's "8 warps, 2 stages")
// The baseline is already the widest tile, so "a wider tile" has no candidate; the other width
// is the one that puts more warps in flight. No rule proposes 1 block/SM: the seed's answer to
// high pressure is its baseline, and ours stays at its baseline too.
#pragma once
#include <string>
#include <vector>

namespace fuseblock::tune {

// Which knobs a kernel has: Triton-style warps and stages, or the conv kernels' ConvTuning.
enum class KnobSet { WarpsStages, Conv };

struct KernelTraits {
  int registers = 0;             // ptxas, at the baseline configuration
  int spill_bytes = 0;           // spill stores + loads
  bool occupancy_register_limited = false;  // from the driver, where there is a GPU
  int distinct_input_loads = 1;  // input tensors the kernel reads (x, weight, bias, stats, ...)
  bool pipelines_loads = false;  // has a software pipeline whose depth is the "stages" knob
  KnobSet knobs = KnobSet::WarpsStages;
  bool has_tile_width = false;   // Conv: the MMA engine's m-tiles per warp (the FMA engine has none)
};

// ConvTuning's knobs; the defaults are the baseline (what runs untuned).
struct ConvKnobs {
  int mma_mpw = 4;          // 16-position m-tiles per warp: the tile width (4 or 2)
  int min_blocks = 2;       // __launch_bounds__ blocks per SM: the register budget per thread
  int epilogue_unroll = 1;  // 4-element output steps in flight per lane (1 or 2)
  // store_once's igemm tile (cuda::ConvTuning's ig_*): ig_bm 0 = cuDNN's conv
  int ig_bm = 0, ig_bn = 0, ig_wm = 0, ig_wn = 0, ig_blocks = 0;
  bool operator==(const ConvKnobs&) const = default;
  bool valid() const;       // values the emitter accepts
};

struct Config {
  int warps = 4;
  int stages = 2;
  std::string rule;  // why it is a candidate, as `tune` prints it
  ConvKnobs conv{};  // for KnobSet::Conv (warps and stages then stay 4 and 2)
  KnobSet knobs = KnobSet::WarpsStages;
  std::string strategy;  // for KnobSet::Conv: the conv strategy it runs (src/cuda/strategies)
  bool is_baseline() const { return warps == 4 && stages == 2 && conv == ConvKnobs{}; }
  bool operator==(const Config& o) const {
    return warps == o.warps && stages == o.stages && conv == o.conv && strategy == o.strategy;
  }
  // "8 warps, 2 stages" or "recompute_two_pass: mpw 2, 2 blocks/SM, epilogue unroll 1"
  std::string describe() const;
};

inline constexpr int kMaxConfigs = 4;
inline constexpr double kMinGain = 0.02;

// The candidates, baseline first, at most kMaxConfigs, no duplicates.
std::vector<Config> candidate_configs(const KernelTraits& k);

// Index of the configuration to keep: the fastest candidate if it beats the baseline (index 0,
// the selection's default: for conv kernels, another strategy's candidates compete with it too)
// by at least kMinGain, else the baseline. times_ms[i] belongs to configs[i].
size_t pick_config(const std::vector<Config>& configs, const std::vector<double>& times_ms, std::string* why);

}  // namespace fuseblock::tune
