// Emission of the fill path's kernels (emit_fill.cpp): fb_fill (constant * dropout mask, with the
// guard in the same pass), or fb_guard alone when the output is a constant a memset writes.
#pragma once
#include "cuda/source_writer.hpp"
#include "fuseblock/plan.hpp"

namespace fuseblock::cuda {

// fb_fill(x, y, flags, bound, seed, offset, q_per_block, blocks_per_sample, slice): block b
// writes output 4-element steps [b * q_per_block, (b + 1) * q_per_block) and, with a guard,
// checks slice (b % blocks_per_sample) of sample (b / blocks_per_sample)'s input, each slice
// `slice` elements long; the grid is N * blocks_per_sample blocks of 256 threads. flags has N + 1
// entries, zeroed before the launch: flags[n] for sample n, flags[N] for any.
// Measured on an H100 (dev/fill_variants.cpp v1-v8, docs/benchmarks.md): checking the input
// first, plain stores and four independent Philox steps per thread were each a few percent faster
// than the alternatives, and are what it emits.
void emit_fill_kernel(SourceWriter& w, const Plan& plan);

// A fill without a dropout mask is one float32 constant everywhere: the executor writes it with
// cuMemsetD32Async (3.19 TB/s on an H100, faster than any store kernel measured there), and a
// guarded plan then checks the input with this read-only kernel:
// fb_guard(x, flags, bound, blocks_per_sample, slice) sets flags exactly as fb_fill's guard does
// (same grid decomposition: block b checks slice b % blocks_per_sample of sample
// b / blocks_per_sample). Four float4 loads per thread are in flight before the first compare.
// Measured on an H100 (dev/fill_variants.cpp v9-v14): 0.041-0.045 ms for problem 83's 101 MB
// (flags zeroing included); the order against the memset, the unroll and the grid moved it by
// less than the run-to-run spread, except one wave (v11) against fb_fill's 1.1 waves (v10).
void emit_guard_kernel(SourceWriter& w, const Plan& plan);
// True when the fill path's output is the constant fold_fill_chain(chain) everywhere (no mask).
bool fill_is_constant(const Pipeline& p);
// The guard's blocks per sample: as many blocks as are resident at once (rounded down to whole
// samples, so the grid is a single wave), each owning at least 1024 input elements.
int64_t guard_blocks_per_sample(int64_t resident_blocks, int64_t n, int64_t in_sample);

}  // namespace fuseblock::cuda
