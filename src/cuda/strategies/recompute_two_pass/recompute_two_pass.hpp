// Two-pass recompute: pass 1 computes the conv tile by tile and writes partial statistics per
// (sample, channel, tile) (the conv output is never stored); a finalize kernel merges them into
// per-(n, c) scale and mean; pass 2 recomputes the conv with the same instructions, normalizes,
// applies the chain and dropout, and stores the output. Any conv (either engine: TF32 MMA where
// the reduction fits, else FMA), any chain; the only strategy that can run gated, as the exact
// fallback of a guarded constant fill (its kernels skip samples whose guard flag is clear).
#pragma once
#include "cuda/codegen/source_writer.hpp"
#include "cuda/strategies/strategy.hpp"

namespace fuseblock::cuda {

class RecomputeTwoPass final : public ConvStrategy {
 public:
  const char* name() const override { return "recompute_two_pass"; }
  const char* summary() const override {
    return "conv twice (statistics pass, then normalize + chain + dropout), per-tile partials; any conv, gatable";
  }
  std::optional<std::string> unsupported(const ConvProblem& problem, const DeviceLimits& device) const override;
  std::vector<ConvTuning> configs(const ConvProblem& problem) const override;
  // The knobs' defaults; configs() builds every candidate to drop duplicates, this builds none.
  ConvTuning default_config(const ConvProblem&) const override { return ConvTuning{}; }
  LaunchProgram build(const ConvProblem& problem, const ConvTuning& config) const override;
  double measured_efficiency() const override;
};

// Emits the kernels of conv_pipeline (gated: as the fallback of a guarded fill, reading the
// guard flags) into w and adds their buffers and steps to prog.
void append_recompute_two_pass(SourceWriter& w, LaunchProgram& prog, const Pipeline& conv_pipeline,
                               const ConvGeometry& g, bool gated);

}  // namespace fuseblock::cuda
