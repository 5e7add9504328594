// store_once's igemm conv engine (igemm_engine.cuh): its tile configs, what it refuses, and the
// emitter that writes the configuration as constexprs before the engine's text.
//   fb_ig_pack_w  weights -> [C_out][K padded to 32], k = tap * C_in padded + ci (scratch, per call)
//   fb_ig_to_cl   x NC[D]HW -> channels-last, C_in padded to 8 with zeros (scratch)
//   fb_ig_conv    the conv + rounding + per-(sample, channel, M tile) partials in fb_so_apply's
//                 layout; the conv output stored once, NC[D]HW, without its bias (as cuDNN's)
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "cuda/codegen/source_writer.hpp"
#include "cuda/engines/conv_geometry.hpp"
#include "fuseblock/plan.hpp"

namespace fuseblock::cuda {

constexpr int kIgemmStages = 4;

// The sizes the engine's kernels are built for (the conv of one pipeline and one tile).
struct IgemmShape {
  int64_t n = 0, cin_real = 0, cin = 0, cout = 0;  // cin: padded to a multiple of 8
  int64_t taps = 1, k = 0, kp = 0;                 // taps * cin, and that rounded up to 32
  int64_t pin = 0, p = 0, tiles = 0;               // input and output pixels per sample, M tiles per sample
  int threads = 0;
  size_t smem = 0;          // dynamic shared memory of fb_ig_conv
  int64_t conv_blocks = 0;  // fb_ig_conv's grid
  size_t packed_weight_bytes() const { return static_cast<size_t>(cout * kp) * 2; }
  size_t channels_last_bytes() const { return static_cast<size_t>(n * pin * cin) * 2; }
};

// Why the engine cannot run this pipeline with any tile (nothing when some tile fits).
std::optional<std::string> igemm_unsupported(const Pipeline& p);
// The engine's tiles for this pipeline, the measured winner for its C_out first; empty when the
// engine does not apply (igemm_unsupported) or no tile's N divides C_out.
std::vector<ConvTuning> igemm_configs(const Pipeline& p);
IgemmShape igemm_shape(const Pipeline& p, const ConvTuning& t);
// The constexprs and the engine's three kernels (after emit_storage_helpers and the prelude).
void emit_igemm_kernels(SourceWriter& w, const Pipeline& p, const ConvTuning& t);

}  // namespace fuseblock::cuda
