// Emission of the fill path's one kernel (emit_fill.cpp).
#pragma once
#include "cuda/source_writer.hpp"
#include "fuseblock/plan.hpp"

namespace fuseblock::cuda {

// fb_fill(x, y, flags, bound, seed, offset, q_per_block, blocks_per_sample, slice): block b
// writes output 4-element steps [b * q_per_block, (b + 1) * q_per_block) and, with a guard,
// checks slice (b % blocks_per_sample) of sample (b / blocks_per_sample)'s input, each slice
// `slice` elements long; the grid is N * blocks_per_sample blocks of 256 threads.
void emit_fill_kernel(SourceWriter& w, const Plan& plan);

}  // namespace fuseblock::cuda
