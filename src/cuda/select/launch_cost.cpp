#include "cuda/select/launch_cost.hpp"

#include <algorithm>

namespace fuseblock::cuda {

double library_conv_flops_rate(const LibraryConvDesc& d, const DeviceCeilings& c) {
  if (d.dtype != DType::F32) return c.half_flops;
  return d.allow_tf32 ? c.tf32_flops : c.fp32_fma_flops;
}

double launch_floor_ms(const LaunchProgram& p, bool tensor_cores, const DeviceCeilings& c) {
  const double rate = tensor_cores ? c.tf32_flops : c.fp32_fma_flops;
  double s = 0;
  for (const Step& st : p.steps) {
    const double bytes = step_read_bytes(p, st) + step_write_bytes(p, st);
    const double flops = st.gated ? 0.0 : st.flops;
    const double r = st.kind == StepKind::LibraryConv ? library_conv_flops_rate(st.library_conv, c) : rate;
    s += std::max(bytes / c.copy_bytes_per_s, flops / r);
  }
  return s * 1e3;
}

}  // namespace fuseblock::cuda
