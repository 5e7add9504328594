// The whole NVRTC program for a plan: every kernel the plan runs, in one source (one compile,
// one module). The source depends only on the plan and the precision mode, never on the
// device, so golden tests pin it and the cubin cache shares it across GPUs of one architecture.
#pragma once
#include <string>
#include <vector>

#include "cuda/conv_geometry.hpp"
#include "cuda/emit_general.hpp"
#include "fuseblock/plan.hpp"

namespace fuseblock::cuda {

struct EmittedProgram {
  std::string source;
  bool fill = false;           // fb_fill: the fill path
  bool guard = false;          // the fill path checks the guard (flags + gated fallback)
  bool general = false;        // conv kernels present: the pipeline itself, or the fallback
  bool gated = false;          // the conv kernels are the fallback (skip samples whose flag is 0)
  bool norm = false;           // stats + finalize kernels present
  Pipeline conv_pipeline;      // the pipeline the conv kernels compute (valid when general)
  ConvGeometry geometry;       // its tiling (valid when general)
  GeneralKernelNames names;
};

EmittedProgram emit_program(const Plan& plan, bool allow_tf32, const ConvTuning& tuning = {});

// NVRTC options every program is compiled with: no FMA contraction (the pointwise formulas
// round as on the CPU; kernels call fmaf where they mean it) and line info for the sanitizers.
std::vector<std::string> program_compile_options();

}  // namespace fuseblock::cuda
