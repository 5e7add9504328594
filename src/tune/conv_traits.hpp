// The tuning rules' view of a compiled program: for each conv kernel (a step with FLOPs) its
// registers, spills, occupancy at the shared memory it launches with and what limits it, and the
// distinct buffers it reads; then the worst of them as the rules' KernelTraits. Read from the
// LaunchProgram. Pure: the SM's limits are given, so tests use an H100's without a GPU.
#pragma once
#include <string>
#include <vector>

#include "cuda/nvrtc_compile.hpp"
#include "cuda/program/launch_program.hpp"
#include "measure/occupancy.hpp"
#include "tune/tuning_rules.hpp"

namespace fuseblock::tune {

struct ConvKernelMetrics {
  std::string kernel;
  int registers = 0, spill_bytes = 0;
  int inputs = 0;                 // distinct buffers it reads
  size_t shared_bytes = 0;        // static + the step's dynamic shared memory
  measure::Occupancy occupancy;   // the calculator's
};

struct ConvTraits {
  KernelTraits traits;  // KnobSet::Conv
  std::vector<ConvKernelMetrics> kernels;
  std::string describe() const;  // one line per kernel's metrics, joined by "; "
};

// The conv kernels of prog (its steps with FLOPs, gated ones excluded); compiled its NVRTC result.
ConvTraits conv_traits(const cuda::LaunchProgram& prog, const cuda::CompiledProgram& compiled, const measure::SmLimits& sm);

}  // namespace fuseblock::tune
