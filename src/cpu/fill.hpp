// The fill path on the CPU: the chain folded to a constant, so the cost is writing the output.
#pragma once
#include <cstdint>

#include "fuseblock/params.hpp"
#include "fuseblock/plan.hpp"

namespace fuseblock::cpu {

// The value every element takes before dropout: p.chain (which starts with Fill) evaluated.
float fill_value(const Pipeline& p);

// Writes samples [n_begin, n_end) of y (pointing at sample 0): the constant, through dropout's
// mask (indexed over the whole tensor, as on the exact path).
// A chain that needs more than the constant after its Fill (a prelu's per-channel slopes) runs
// through the epilogue element by element instead.
void fill_samples(const Pipeline& p, const Params& params, float* y, int64_t n_begin, int64_t n_end);

}  // namespace fuseblock::cpu
