#include "cuda/emit_dropout_state.hpp"

namespace fuseblock::cuda {

void emit_dropout_state_kernels(SourceWriter& w) {
  w.line("// ---- dropout state: (seed, offset) in device memory ----");
  w.line("extern \"C\" __global__ void __launch_bounds__(32) fb_dropout_seed(unsigned long long* __restrict__ state,");
  w.line("    unsigned long long seed, unsigned long long offset) {{");
  w.line("  if (threadIdx.x == 0) {{");
  w.line("    state[0] = seed;");
  w.line("    state[1] = offset;");
  w.line("  }}");
  w.line("}}");
  w.line("extern \"C\" __global__ void __launch_bounds__(32) fb_dropout_advance(unsigned long long* __restrict__ state) {{");
  w.line("  if (threadIdx.x == 0) state[1] += 1ull;");
  w.line("}}");
  w.blank();
}

}  // namespace fuseblock::cuda
