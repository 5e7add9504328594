// Store-once: a library conv (cuDNN) stores the conv output once, without its bias, in the
// storage type (the strategy's one declared intermediate); fb_so_stats reads it back while it is
// still in L2 and writes per-(sample, channel, chunk) partial statistics; one fb_so_apply kernel
// merges them per (sample, group), normalizes, applies the chain and dropout and writes the
// output. Wins where the conv is compute-bound (diffusion, VAE, MONAI 3-D bodies), where
// computing it twice (the recompute strategies) costs more than storing and reading it once.
// The only strategy that runs bf16/f16 storage.
#pragma once
#include "cuda/strategies/strategy.hpp"

namespace fuseblock::cuda {

class StoreOnce final : public ConvStrategy {
 public:
  const char* name() const override { return "store_once"; }
  const char* summary() const override {
    return "cuDNN conv stored once (the one intermediate), statistics kernel, one normalize + chain + dropout kernel";
  }
  std::optional<std::string> unsupported(const ConvProblem& problem, const DeviceLimits& device) const override;
  // cuDNN's conv (the empty ConvTuning, the default) first, then the igemm engine's tiles where
  // it applies (bf16/f16; emit_igemm.hpp), the measured winner for the shape first.
  std::vector<ConvTuning> configs(const ConvProblem& problem) const override;
  // cuDNN's conv; where cuDNN cannot load on a real device, the first igemm tile whose shared
  // memory the device has (the 256x160 and 256x128 tiles need more than sm_86/sm_89's 99 KB).
  ConvTuning default_config_on(const ConvProblem& problem, const DeviceLimits& device) const override;
  LaunchProgram build(const ConvProblem& problem, const ConvTuning& config) const override;
  double measured_efficiency() const override;
  bool efficiency_fitted() const override;
};

// The library conv of a pipeline: its shapes, the storage dtype, TF32 as allowed, NCHW.
LibraryConvDesc library_conv_desc(const Pipeline& p, bool allow_tf32);

}  // namespace fuseblock::cuda
