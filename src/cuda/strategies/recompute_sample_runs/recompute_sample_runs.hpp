// Sample-runs recompute (src/cuda/lean_kernels.cuh): like the two-pass recompute, but a block owns
// one sample's run of consecutive tiles (the grid fills the device once), keeps its statistics in
// registers across those tiles and writes one partial per (block, warp, channel); the finalize
// folds the conv bias and GroupNorm into y = a * conv + b; the output kernel loads its next
// window under the epilogue. Built for problem 83's geometry: unsupported() says which.
#pragma once
#include "cuda/strategies/strategy.hpp"

namespace fuseblock::cuda {

class RecomputeSampleRuns final : public ConvStrategy {
 public:
  const char* name() const override { return "recompute_sample_runs"; }
  const char* summary() const override {
    return "conv twice, a block per run of one sample's tiles, statistics in registers; problem-83 geometry only";
  }
  std::optional<std::string> unsupported(const ConvProblem& problem, const DeviceLimits& device) const override;
  std::vector<ConvTuning> configs(const ConvProblem& problem) const override;
  LaunchProgram build(const ConvProblem& problem, const ConvTuning& config) const override;
  double measured_efficiency() const override;
};

}  // namespace fuseblock::cuda
