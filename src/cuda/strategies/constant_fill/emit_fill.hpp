// Emission of the fill path's kernels (emit_fill.cpp): fb_fill (constant * dropout mask, with the
// guard in the same pass), or fb_guard alone when the output is a constant a memset writes.
#pragma once
#include "cuda/codegen/source_writer.hpp"
#include "fuseblock/plan.hpp"

namespace fuseblock::cuda {

// fb_fill(x, y, flags, guard_bound, dropout_state, q_per_block, blocks_per_sample, slice): block b
// writes output 4-element steps [b * q_per_block, (b + 1) * q_per_block) and, with a guard,
// checks slice (b % blocks_per_sample) of sample (b / blocks_per_sample)'s input, each slice
// `slice` elements long; the grid is N * blocks_per_sample blocks of 256 threads. flags has N + 1
// entries, zeroed before the launch: flags[n] for sample n, flags[N] for any. *guard_bound is the
// float fb_guard_bound wrote.
// Measured on an H100 (dev/fill_variants.cpp v1-v8, docs/benchmarks.md): checking the input
// first, plain stores and four independent Philox steps per thread were each a few percent faster
// than the alternatives, and are what it emits.
void emit_fill_kernel(SourceWriter& w, const Plan& plan);

// A fill without a dropout mask is one float32 constant everywhere: the executor writes it with
// cuMemsetD32Async (3.19 TB/s on an H100, faster than any store kernel measured there), and a
// guarded plan then checks the input with this read-only kernel:
// fb_guard(x, flags, guard_bound, blocks_per_sample, slice) sets flags exactly as fb_fill's guard does
// (same grid decomposition: block b checks slice b % blocks_per_sample of sample
// b / blocks_per_sample). Four float4 loads per thread are in flight before the first compare.
// Measured on an H100 (dev/fill_variants.cpp v9-v14): 0.041-0.045 ms for problem 83's 101 MB
// (flags zeroing included); the order against the memset, the unroll and the grid moved it by
// less than the run-to-run spread, except one wave (v11) against fb_fill's 1.1 waves (v10).
void emit_guard_kernel(SourceWriter& w, const Plan& plan);
// fb_guard_bound(w, bias, gamma, beta, guard_bound): guard_input_bound(params, conv_output_bound)
// computed on the device from the exact pipeline's parameters, converted as guard_bound_as_float()
// does, written to *guard_bound; one block of 256 threads, the run's first guard step, so the
// parameters never travel to the host. Same semantics: NaN when any parameter is not finite, -inf
// when a conv bias or a GroupNorm weight or bias exceeds the bound, FLT_MAX when no channel
// constrains the input. One difference: the double sums of |w| run in another order (fixed:
// every run gives the same bits) and round up, and the quotient rounds down, so the device's
// double is never above the exact bound (emit_fill.cpp says why either is sound). After the
// rounding to a float the two agree bit for bit except where the exact bound lies within a few
// double ulps of a float: then the device may be one float ulp lower (or, where the host's sum
// erred upward, higher). Reads the weights with one block: about 5 KB for problem 83; a conv with
// megabytes of weights would want a wider grid.
void emit_guard_bound_kernel(SourceWriter& w, const Plan& plan);
// The bound as the guard compares it: the largest float <= bound (so |x| <= it is exactly
// |x| <= bound for a float x), at most FLT_MAX (so an infinite x always fails), NaN kept. The host
// reference of fb_guard_bound's last step.
float guard_bound_as_float(double bound);
// True when the fill path's output is the constant fold_fill_chain(chain) everywhere (no mask).
bool fill_is_constant(const Pipeline& p);

}  // namespace fuseblock::cuda
