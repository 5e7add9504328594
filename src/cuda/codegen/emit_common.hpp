// Pieces every emitted program shares: the prelude (the device-common headers pasted as text,
// plus small device helpers) and the pointwise chain and dropout as calls to the fb_* functions
// of pointwise_math.h and philox.h, so the CPU and CUDA backends evaluate the same formulas.
#pragma once
#include <string>
#include <vector>

#include "cuda/codegen/source_writer.hpp"
#include "fuseblock/ir.hpp"

namespace fuseblock::cuda {

// Header comment, philox.h, pointwise_math.h and the helpers (tf32 rounding, mma, warp sums).
void emit_prelude(SourceWriter& w, const std::string& title);
// One statement per op: `var = fb_silu(var);` ... in chain order. tf32_math: SiLU and sigmoid as
// fbl_silu_tf32 / fbl_sigmoid_tf32 (the lean TF32 path defines them, emit_lean.cpp).
void emit_chain(SourceWriter& w, const std::vector<Op>& chain, const std::string& var, bool tf32_math = false);
// The chain folded on the host (the fill path's constant): the chain applied to any value, with
// the first op a Fill.
float fold_fill_chain(const std::vector<Op>& chain);

// The dropout constants as the CPU backend derives them (philox.h).
struct DropoutConsts {
  bool active = false;     // training and p > 0
  unsigned threshold = 0;  // fb_keep_threshold(p)
  float scale = 1.0f;      // fb_dropout_scale(p)
};
DropoutConsts dropout_consts(const DropoutAttrs& d);

}  // namespace fuseblock::cuda
