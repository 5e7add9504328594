// The general path's lean kernels (src/cuda/strategies/recompute_sample_runs/lean_kernels.cuh): when they apply, how they are
// emitted, and the sizes the executor launches them with.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cuda/engines/conv_geometry.hpp"
#include "cuda/strategies/recompute_two_pass/emit_general.hpp"
#include "cuda/codegen/source_writer.hpp"
#include "fuseblock/plan.hpp"

namespace fuseblock::cuda {

// Blocks per sample are chosen at launch to fill the device once, up to this many (at least 8,
// and enough for 2048 blocks in all, so that a batch of 1 still spreads over a large GPU); the
// partial statistics' scratch is sized for it.
int64_t lean_max_blocks_per_sample(const ConvGeometry& g);

// The facts lean_kernels.cuh's static_asserts need: the tf32 MMA engine, GroupNorm, a 16-channel
// conv with stride 1 and no padding or dilation, a tile spanning an output row, one warp per
// output row of the tile, rows in 16-byte chunks. Not for the gated fallback.
bool lean_path_applies(const ConvGeometry& g, const Pipeline& p, bool gated);
// The staging channel pitch: >= the tile's (d, h, w) footprint, a multiple of 4, and 2 * pitch
// = 8 (mod 32) so that the staging stores of a warp hit 32 different banks.
int64_t lean_staging_pitch(const ConvGeometry& g);
size_t lean_stats_smem_bytes(const ConvGeometry& g);
size_t lean_output_smem_bytes(const ConvGeometry& g);
// Partial statistics: float4 per (sample, block of the sample, warp, channel).
size_t lean_partials_bytes(const ConvGeometry& g);

void emit_lean_kernels(SourceWriter& w, const Pipeline& p, const ConvGeometry& g, GeneralKernelNames* names);

}  // namespace fuseblock::cuda
