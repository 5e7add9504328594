// The tuning rules' view of a compiled general-path program: for each conv kernel (the stats and
// output kernels, which share the ConvTuning knobs) its registers, spills, occupancy and what
// limits it, and the distinct inputs it reads; then the worst of them as the rules' KernelTraits.
// Pure: the SM's limits are given, so tests use an H100's without a GPU.
#pragma once
#include <string>
#include <vector>

#include "cuda/emit_program.hpp"
#include "cuda/nvrtc_compile.hpp"
#include "fuseblock/plan.hpp"
#include "measure/occupancy.hpp"
#include "tune/tuning_rules.hpp"

namespace fuseblock::tune {

struct ConvKernelMetrics {
  std::string kernel;
  int registers = 0, spill_bytes = 0;
  int inputs = 0;                 // distinct tensors it reads (profile/kernel_io.hpp)
  measure::Occupancy occupancy;   // the calculator's
};

struct ConvTraits {
  KernelTraits traits;  // KnobSet::Conv
  std::vector<ConvKernelMetrics> kernels;
  std::string describe() const;  // one line per kernel's metrics, joined by "; "
};

// The conv kernels tuned together: stats (with GroupNorm) and output. prog must be a general,
// ungated program; compiled its NVRTC result.
ConvTraits conv_traits(const Plan& plan, const cuda::EmittedProgram& prog, const cuda::CompiledProgram& compiled,
                       const measure::SmLimits& sm);

}  // namespace fuseblock::tune
