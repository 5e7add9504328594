// Emission of the fill path's one kernel (emit_fill.cpp).
#pragma once
#include "cuda/source_writer.hpp"
#include "fuseblock/plan.hpp"

namespace fuseblock::cuda {

// fb_fill(x, y, flags, bound, seed, offset, q_per_block, blocks_per_sample, slice): block b
// writes output 4-element steps [b * q_per_block, (b + 1) * q_per_block) and, with a guard,
// checks slice (b % blocks_per_sample) of sample (b / blocks_per_sample)'s input, each slice
// `slice` elements long; the grid is N * blocks_per_sample blocks of 256 threads. flags has N + 1
// entries, zeroed before the launch: flags[n] for sample n, flags[N] for any.
// Variants of the kernel, for the measurements under dev/ (the defaults are what runs).
// Measured on an H100 (dev/fill_variants.cpp, docs/benchmarks.md): checking the input first,
// plain stores and four independent Philox steps per thread were each a few percent faster.
struct FillOptions {
  int min_blocks = 0;            // __launch_bounds__'s second argument (0: none)
  bool streaming_stores = false; // st.global.cs (evict-first) rather than plain stores
  bool guard_first = true;       // check the input before writing the output
  int unroll = 4;
};
void emit_fill_kernel(SourceWriter& w, const Plan& plan, const FillOptions& options = {});

}  // namespace fuseblock::cuda
