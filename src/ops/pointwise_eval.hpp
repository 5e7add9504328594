// Evaluates one pointwise op on one float32 value with the formulas of
// device_common/pointwise_math.h: the CPU backend's chain and infer_ranges both use it.
#pragma once
#include "fuseblock/ir.hpp"

namespace fuseblock {

float eval_pointwise(const Op& op, float x);

// nn.PReLU with slope `a` (F.prelu's kernel: `x > 0 ? x : a * x`): NaN stays NaN, -0.0 gives
// a * -0.0 (+0 for a negative slope).
inline float eval_prelu(float x, float a) { return x > 0.0f ? x : a * x; }

// Points inside (lo, hi) where the op is not monotone (its local extrema), so that a range is the
// hull of the op at the ends and at these points. Empty for monotone ops.
std::vector<double> pointwise_turning_points(const Op& op);

}  // namespace fuseblock
