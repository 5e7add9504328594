// Emission of the convolution kernels' parts (one concern per file):
//   emit_conv_tile.cpp   constants of the geometry, the tile decomposition, the window load
//   emit_conv_mma.cpp    the tensor-core engine (implicit GEMM, tf32)
//   emit_conv_fma.cpp    the fp32 FMA engine
//   emit_epilogues.cpp   what a kernel does with a staged tile: statistics, or the output
//   emit_general.cpp     the kernels of the general path built from these parts
#pragma once
#include <string>
#include <vector>

#include "cuda/engines/conv_geometry.hpp"
#include "cuda/codegen/source_writer.hpp"
#include "fuseblock/plan.hpp"

namespace fuseblock::cuda {

// namespace fbc { constexpr ... } with every size of the geometry, fb_tile and fb_tile_at(t),
// fb_tile_count(t), and fb_load_window(...).
void emit_conv_tile_code(SourceWriter& w, const ConvGeometry& g);

// A conv kernel: the persistent loop over (sample, tile) work items of blockIdx.y's channel
// chunk, the engine computing each tile into staging, then `epilogue` (statements that see n, t,
// T, c0, st). `params` is the kernel's parameter list; it must include x, w, bias and, when
// gated, flags (samples whose flag is 0 are skipped: the exact fallback's early exit).
struct ConvKernelSpec {
  std::string name;
  std::string params;
  std::vector<std::string> epilogue;
  bool gated = false;
  // The MMA engine reduces the statistics straight from its accumulators (no staging, no
  // epilogue); needs `partials` and `bias` among the parameters.
  bool stats_from_registers = false;
};
void emit_conv_kernel(SourceWriter& w, const ConvGeometry& g, const ConvKernelSpec& spec);
// The first statement of a gated kernel: the executor launches gated kernels as programmatic
// dependents of the kernel before them on sm_90+ (their launch overlaps its end), so before any
// memory access they wait for that kernel's completion and writes. A no-op otherwise.
void emit_wait_for_previous_grid(SourceWriter& w);

// Engine bodies, called by emit_conv_kernel: prologue (once per block) and tile (window load,
// compute, staging).
void emit_mma_helpers(SourceWriter& w);  // fb_k_offset, fb_mt_delta: once per program
void emit_mma_prologue(SourceWriter& w, const ConvGeometry& g);
void emit_mma_tile(SourceWriter& w, const ConvGeometry& g, bool stage);  // stage = false: stats
void emit_mma_register_stats(SourceWriter& w, const ConvGeometry& g);
void emit_fma_helpers(SourceWriter& w);  // fb_fma_accumulate: once per program
void emit_fma_prologue(SourceWriter& w, const ConvGeometry& g);
void emit_fma_tile(SourceWriter& w, const ConvGeometry& g);

// Device functions: fb_stats_epilogue (per-tile, per-channel mean and M2) and
// fb_output_epilogue (normalise, chain, dropout, store).
void emit_stats_epilogue_fn(SourceWriter& w, const ConvGeometry& g);
void emit_output_epilogue_fn(SourceWriter& w, const ConvGeometry& g, const Pipeline& p);

}  // namespace fuseblock::cuda
