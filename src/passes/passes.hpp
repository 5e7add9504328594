// The passes, one per file, each a free function Block -> Block, in the order lower() runs them.
#pragma once
#include "fuseblock/plan.hpp"

namespace fuseblock {

// Any time after parsing: fills every op's output shape; UserErrors for shape rules
// (input rank vs conv dims, in_channels, C % G, an output size <= 0), naming line:col.
Block infer_shapes(const Block& b);

// After infer_shapes: fills every op's Range. With `assume_bounded_input`, the analysis assumes
// what the guard checks at run time: finite input and parameters, |conv output| <= conv_bound.
Block infer_ranges(const Block& b, bool assume_bounded_input, double conv_bound);
// One step of infer_ranges: the range of `op`'s value when its input lies in `in`.
Range op_range(const Op& op, const Range& in, bool assume_bounded_input, double conv_bound);

// After infer_ranges: rewrites the pointwise chain using the ranges: drops exact identities,
// merges repeated minimum/maximum, replaces any op whose value the ranges prove constant by a
// Fill, folds ops after a Fill, drops identity dropout. Reaches the fixed point in one forward
// walk, linear in the number of ops (ranges under the same assumption as the input block).
Block simplify(const Block& b, double conv_bound);

// After simplify: removes the ops the output no longer depends on (conv, group_norm and the
// pointwise ops before the last Fill). The Fill keeps the output shape.
Block eliminate_unused(const Block& b);

// Last: the Pipeline form of a Block (exact or simplified) and the kernels a plan runs.
Pipeline to_pipeline(const Block& exact, const Block& simplified);
std::vector<KernelDesc> plan_kernels(const Pipeline& p, bool guarded);

}  // namespace fuseblock
