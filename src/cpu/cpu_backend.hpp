// The CPU backend: exact execution of a Plan with C++ loops and OpenMP, in float32, or for a bf16
// or f16 block in float32 with each stored value rounded to that type where PyTorch eager rounds:
// the conv output, the normalized value, each pointwise result and dropout's result.
//
// run_pipeline does, for a range of samples: the convolution into y, the GroupNorm statistics
// (O(N*C) scratch only), then the folded normalization, the pointwise chain and dropout in place
// in y. Every element is computed by one thread in a fixed order, so the result does not depend
// on the number of threads, bit for bit.
#pragma once
#include <cstdint>

#include "fuseblock/params.hpp"
#include "fuseblock/plan.hpp"
#include "fuseblock/tensor.hpp"

namespace fuseblock::cpu {

// Runs `plan` on x (shape plan.pipeline.input_shape) into y, which the caller allocated with
// shape plan.pipeline.output_shape (its contents are ignored; every element is written).
// With a guard (and !plan.assume_finite), each sample is checked: samples that pass run
// plan.pipeline, samples that fail run plan.fallback. `channel_add` ([N, C_out]) is the block's
// per-(sample, channel) input when its pipeline has one (Pipeline::channel_add()), else nullptr.
void run(const Plan& plan, const Params& params, const Tensor& x, Tensor& y, const Tensor* channel_add = nullptr);

// The guard's test on one sample: every element finite and |x| <= bound. A NaN bound (non-finite
// parameters) fails every sample.
bool guard_passes(const float* sample, int64_t count, double bound);

// Runs pipeline `p` for samples [n_begin, n_end) of x into the same samples of y.
void run_pipeline(const Pipeline& p, const Params& params, const Tensor& x, Tensor& y, int64_t n_begin,
                  int64_t n_end, const Tensor* channel_add = nullptr);

}  // namespace fuseblock::cpu
