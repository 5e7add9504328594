#include "tune/conv_traits.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "profile/kernel_io.hpp"

namespace fuseblock::tune {

std::string ConvTraits::describe() const {
  std::string s;
  for (const ConvKernelMetrics& k : kernels)
    s += fmt::format("{}{} {} regs, {} B spill, {} blocks/SM (limited by {}), {} inputs", s.empty() ? "" : "; ", k.kernel,
                     k.registers, k.spill_bytes, k.occupancy.blocks, k.occupancy.limited_by, k.inputs);
  return s;
}

ConvTraits conv_traits(const Plan& plan, const cuda::EmittedProgram& prog, const cuda::CompiledProgram& compiled,
                       const measure::SmLimits& sm) {
  ConvTraits t;
  t.traits.knobs = KnobSet::Conv;
  t.traits.has_tile_width = prog.geometry.engine == cuda::ConvEngine::MmaTf32;
  t.traits.distinct_input_loads = 0;
  const std::vector<profile::KernelIo> io = profile::kernel_io(plan, prog);
  std::vector<std::string> names;
  if (prog.norm) names.push_back(prog.names.stats);
  names.push_back(prog.names.output);
  for (const std::string& name : names) {
    ConvKernelMetrics m;
    m.kernel = name;
    const cuda::KernelResources* r = compiled.find(name);
    if (r) m.registers = r->registers, m.spill_bytes = r->spill_store_bytes + r->spill_load_bytes;
    // The launch the executor makes: geometry.threads threads, geometry.smem_bytes() dynamic.
    const size_t smem = prog.geometry.smem_bytes() + (r ? static_cast<size_t>(r->shared_bytes) : 0);
    m.occupancy = measure::occupancy(m.registers, prog.geometry.threads, smem, sm);
    if (const profile::KernelIo* k = profile::find_io(io, name)) m.inputs = static_cast<int>(k->reads.size());
    t.traits.registers = std::max(t.traits.registers, m.registers);
    t.traits.spill_bytes = std::max(t.traits.spill_bytes, m.spill_bytes);
    t.traits.occupancy_register_limited |= m.occupancy.limited_by.find("registers") != std::string::npos;
    t.traits.distinct_input_loads = std::max(t.traits.distinct_input_loads, m.inputs);
    t.kernels.push_back(m);
  }
  return t;
}

}  // namespace fuseblock::tune
