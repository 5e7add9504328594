// GroupNorm statistics on the CPU, folded (as PyTorch folds them) into a per-(sample, channel)
// scale and shift, so that normalization is `a * x + b`, the head of the pointwise chain.
#pragma once
#include <cstdint>

#include "fuseblock/ir.hpp"

namespace fuseblock::cpu {

// For `samples` samples of [channels, spatial] values at y: scale[n * channels + c] and
// shift[...] such that GroupNorm(y) = scale * y + shift. gamma/beta may be null (no affine).
// Statistics are two-pass in double (a large DC offset keeps its variance); a NaN or Inf in a
// group makes that group's scale and shift NaN, as in PyTorch.
void group_norm_fold(const GroupNormAttrs& attrs, int64_t channels, int64_t spatial, int64_t samples, const float* y,
                     const float* gamma, const float* beta, float* scale, float* shift);

}  // namespace fuseblock::cpu
