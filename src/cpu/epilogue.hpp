// Everything after the statistics, in place in the output: the folded GroupNorm `a * x + b`,
// the pointwise chain, dropout.
#pragma once
#include <cstdint>

#include "fuseblock/params.hpp"
#include "fuseblock/plan.hpp"

namespace fuseblock::cpu {

// Applies p's epilogue to samples [n_begin, n_end) of y (y points at sample 0). scale/shift hold
// one value per (sample, channel) of those samples, starting at n_begin; both null when p has no
// norm. Dropout indexes elements over the whole output tensor. prelu ops read their slopes from
// params.prelu_weight (check_params has checked their shapes).
void apply_epilogue(const Pipeline& p, const Params& params, const float* scale, const float* shift, float* y,
                    int64_t n_begin, int64_t n_end);

// The epilogue's blocks: aligned to four elements over the whole tensor so that no Philox block
// is shared by two threads.
constexpr int64_t kEpilogueBlock = 4096;

}  // namespace fuseblock::cpu
