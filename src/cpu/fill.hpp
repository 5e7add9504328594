// The fill path on the CPU: the chain folded to a constant, so the cost is writing the output.
#pragma once
#include <cstdint>

#include "fuseblock/plan.hpp"

namespace fuseblock::cpu {

// The value every element takes before dropout: p.chain (which starts with Fill) evaluated.
float fill_value(const Pipeline& p);

// Writes samples [n_begin, n_end) of y (pointing at sample 0): the constant, through dropout's
// mask (indexed over the whole tensor, as on the exact path).
void fill_samples(const Pipeline& p, float* y, int64_t n_begin, int64_t n_end);

}  // namespace fuseblock::cpu
