#include "tune/conv_traits.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace fuseblock::tune {

std::string ConvTraits::describe() const {
  std::string s;
  for (const ConvKernelMetrics& k : kernels)
    s += fmt::format("{}{} {} regs, {} B spill, {:.1f} KB shared, {} blocks/SM (limited by {}), {} inputs",
                     s.empty() ? "" : "; ", k.kernel, k.registers, k.spill_bytes, k.shared_bytes / 1024.0,
                     k.occupancy.blocks, k.occupancy.limited_by, k.inputs);
  return s;
}

ConvTraits conv_traits(const cuda::LaunchProgram& prog, const cuda::CompiledProgram& compiled, const measure::SmLimits& sm) {
  ConvTraits t;
  t.traits.knobs = KnobSet::Conv;
  t.traits.has_tile_width = prog.tensor_cores;
  t.traits.distinct_input_loads = 0;
  for (const cuda::Step& s : prog.steps) {
    if (s.kind != cuda::StepKind::Kernel || s.gated || s.flops <= 0) continue;
    ConvKernelMetrics m;
    m.kernel = s.name;
    const cuda::KernelResources* r = compiled.find(s.name);
    if (r) m.registers = r->registers, m.spill_bytes = r->spill_store_bytes + r->spill_load_bytes;
    m.shared_bytes = s.dynamic_smem + (r ? static_cast<size_t>(r->shared_bytes) : 0);
    m.occupancy = measure::occupancy(m.registers, static_cast<int>(s.threads), m.shared_bytes, sm);
    m.inputs = static_cast<int>(s.reads.size());
    t.traits.registers = std::max(t.traits.registers, m.registers);
    t.traits.spill_bytes = std::max(t.traits.spill_bytes, m.spill_bytes);
    t.traits.occupancy_register_limited |= m.occupancy.limited_by.find("registers") != std::string::npos;
    t.traits.distinct_input_loads = std::max(t.traits.distinct_input_loads, m.inputs);
    t.kernels.push_back(m);
  }
  return t;
}

}  // namespace fuseblock::tune
