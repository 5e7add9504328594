#include "cuda/select/launch_cost.hpp"

#include <algorithm>

namespace fuseblock::cuda {

double library_conv_flops_rate(const LibraryConvDesc& d, const DeviceCeilings& c) {
  if (d.dtype != DType::F32) return c.half_flops;
  return d.allow_tf32 ? c.tf32_flops : c.fp32_fma_flops;
}

// From cuDNN's own conv times on an H200 (issue 10's table, 2026-11-29, fp32 with TF32) against
// their floors: 0.14 of it at a reduction of 27 (MONAI stem), 0.17 at 192 (audio), 0.21 at 864
// (MONAI body), 0.36 at 1152 (VAE), 0.55 at 2880 (SD ResBlock). A line through the longer ones,
// floored at 0.1: a coarse fit until store_once is measured (tune confirms per shape).
double library_conv_efficiency(const LibraryConvDesc& d) {
  double kred = static_cast<double>(d.c_in);
  for (int i = 0; i < d.dims; ++i) kred *= static_cast<double>(d.kernel[static_cast<size_t>(i)]);
  return std::clamp(kred / 5000.0, 0.1, 0.6);
}

double launch_floor_ms(const LaunchProgram& p, bool tensor_cores, const DeviceCeilings& c) {
  const double rate = p.half_tensor_cores ? c.half_flops : tensor_cores ? c.tf32_flops : c.fp32_fma_flops;
  double s = 0;
  for (const Step& st : p.steps) {
    const double bytes = step_read_bytes(p, st) + step_write_bytes(p, st);
    const double flops = st.gated ? 0.0 : st.flops;
    if (st.kind == StepKind::LibraryConv) {
      const double floor = std::max(bytes / c.copy_bytes_per_s, flops / library_conv_flops_rate(st.library_conv, c));
      s += floor / library_conv_efficiency(st.library_conv);
      continue;
    }
    s += std::max(bytes / c.copy_bytes_per_s, flops / rate);
  }
  return s * 1e3;
}

}  // namespace fuseblock::cuda
