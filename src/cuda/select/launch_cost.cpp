#include "cuda/select/launch_cost.hpp"

#include <algorithm>

namespace fuseblock::cuda {

double launch_floor_ms(const LaunchProgram& p, bool tensor_cores, const DeviceCeilings& c) {
  const double rate = tensor_cores ? c.tf32_flops : c.fp32_fma_flops;
  double s = 0;
  for (const Step& st : p.steps) {
    const double bytes = step_read_bytes(p, st) + step_write_bytes(p, st);
    const double flops = st.gated ? 0.0 : st.flops;
    s += std::max(bytes / c.copy_bytes_per_s, flops / rate);
  }
  return s * 1e3;
}

}  // namespace fuseblock::cuda
