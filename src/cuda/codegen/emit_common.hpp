// Pieces every emitted program shares: the prelude (the device-common headers pasted as text,
// plus small device helpers) and the fill path's folded chain. The per-element epilogue (the
// chain, prelu, dropout, rounding, the store) is emit_epilogue.hpp's.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cuda/codegen/source_writer.hpp"
#include "fuseblock/ir.hpp"

namespace fuseblock::cuda {

// Header comment, philox.h, pointwise_math.h and the helpers (tf32 rounding, mma, warp sums).
void emit_prelude(SourceWriter& w, const std::string& title);
// The chain folded on the host (the fill path's constant): its first `count` ops (all by
// default) applied to any value, with the first op a Fill. The CPU backend's formulas, so the
// constant is its float result bit for bit.
float fold_fill_chain(const std::vector<Op>& chain, size_t count = SIZE_MAX);

}  // namespace fuseblock::cuda
