// Dropout's (seed, offset) in device memory: kernels read them from a 2 x u64 buffer rather than
// taking them by value, so that a CUDA graph captured once draws a fresh mask on every replay
// (the buffer's contents change between replays; PyTorch's own dropout works the same way).
#pragma once
#include "cuda/source_writer.hpp"

namespace fuseblock::cuda {

// fb_dropout_seed(state, seed, offset): stores explicit values; fb_dropout_advance(state): adds one
// to the offset. One block of 32 threads each; thread 0 does the work.
void emit_dropout_state_kernels(SourceWriter& w);

}  // namespace fuseblock::cuda
