// Seeded random tensors for inputs and tests, from the same counter-based Philox stream as the
// dropout mask (a different stream id), so they are identical whatever the thread count.
#pragma once
#include <cstdint>

#include "fuseblock/tensor.hpp"

namespace fuseblock {

// Uniform in [lo, hi) (for lo = 0, hi = 1: torch.rand's distribution), element i from Philox
// counter i / 4 with key `seed`.
Tensor uniform_tensor(const Shape& shape, uint64_t seed, float lo = 0.0f, float hi = 1.0f);

}  // namespace fuseblock
