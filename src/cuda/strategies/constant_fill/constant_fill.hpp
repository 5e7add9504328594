// Constant fill under a guard: when the chain folds to a constant c (simplify proved it, for input
// within the guard's bound), the output is c, or c * dropout mask. Without a mask a driver memset
// writes it and fb_guard checks the input; with a mask fb_fill writes it and checks the input in
// the same pass. The guard's bound comes from the parameters: fb_guard_bound computes it on the
// device first, so the host never reads them. Samples that fail the guard (a NaN, an Inf, a huge
// value) run the exact block: the two-pass recompute kernels, gated by the guard flags. With
// assume_finite there is no guard.
#pragma once
#include "cuda/strategies/strategy.hpp"

namespace fuseblock::cuda {

class ConstantFill final : public ConvStrategy {
 public:
  const char* name() const override { return "constant_fill"; }
  const char* summary() const override {
    return "output = folded constant (memset, or a fill kernel with the dropout mask), input guarded per sample, "
           "failing samples run the exact two-pass recompute";
  }
  std::optional<std::string> unsupported(const ConvProblem& problem, const DeviceLimits& device) const override;
  std::vector<ConvTuning> configs(const ConvProblem& problem) const override;
  LaunchProgram build(const ConvProblem& problem, const ConvTuning& config) const override;
  double measured_efficiency() const override;
};

}  // namespace fuseblock::cuda
