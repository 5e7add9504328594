// What each step of a plan's CUDA run must move and compute: the bytes `fuseblock profile` counts
// and the FLOPs it divides by, and the distinct inputs the tuner's rules ask for. Pure (from the
// emitted program and the plan's shapes; no GPU).
//
// What is counted, per step: every tensor the step reads, once (the input read once by each
// kernel that reads it, even where a kernel re-reads window halos from cache), every tensor it
// writes, once (the output, scratch: statistics partials, per-(n, c) scale and mean, guard
// flags), and the parameters (conv weight and bias, GroupNorm weight or bias) where it reads them.
// A gated fallback kernel (fill path with a guard) counts only the flags it reads: it exits at
// once for samples that passed the guard. FLOPs: a conv pass is 2 * N * C_out * prod(out spatial)
// * C_in * prod(kernel); the stats and output kernels each compute one pass; nothing else counts.
#pragma once
#include <string>
#include <vector>

#include "cuda/emit_program.hpp"
#include "fuseblock/plan.hpp"

namespace fuseblock::profile {

struct TensorBytes {
  std::string tensor;  // "input", "output", "conv.weight", "stats partials", ...
  double bytes = 0;
};

struct KernelIo {
  std::string kernel;  // as Executor::launches() names it ("cuMemsetD32Async" for the driver memset)
  std::vector<TensorBytes> reads, writes;
  double flops = 0;
  std::string note;
  double read_bytes() const;
  double write_bytes() const;
  double bytes() const { return read_bytes() + write_bytes(); }
};

// One entry per step, in the executor's launch order.
std::vector<KernelIo> kernel_io(const Plan& plan, const cuda::EmittedProgram& prog);
const KernelIo* find_io(const std::vector<KernelIo>& io, const std::string& kernel);

// The fewest bytes the whole block must move: the output written once, plus the input read once
// where anything must read it (everywhere but an unguarded fill).
double block_floor_bytes(const Plan& plan, const cuda::EmittedProgram& prog);

}  // namespace fuseblock::profile
