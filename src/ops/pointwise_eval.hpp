// Evaluates one pointwise op on one float32 value with the formulas of
// device_common/pointwise_math.h: the CPU backend's chain and infer_ranges both use it.
#pragma once
#include "fuseblock/ir.hpp"

namespace fuseblock {

float eval_pointwise(const Op& op, float x);

// Points inside (lo, hi) where the op is not monotone (its local extrema), so that a range is the
// hull of the op at the ends and at these points. Empty for monotone ops.
std::vector<double> pointwise_turning_points(const Op& op);

}  // namespace fuseblock
