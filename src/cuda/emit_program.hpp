// The whole NVRTC program for a plan: every kernel the plan runs, in one source (one compile,
// one module). The source depends only on the plan and the precision mode, never on the
// device, so golden tests pin it and the cubin cache shares it across GPUs of one architecture.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cuda/conv_geometry.hpp"
#include "cuda/emit_general.hpp"
#include "fuseblock/plan.hpp"

namespace fuseblock::cuda {

struct EmittedProgram {
  std::string source;
  bool fill = false;           // the fill path
  bool fill_memset = false;    // its output is one constant (no dropout mask): cuMemsetD32Async of
  uint32_t fill_bits = 0;      // these bits writes it, and fb_guard (if guarded) replaces fb_fill
  bool guard = false;          // the fill path checks the guard (flags + gated fallback)
  bool general = false;        // conv kernels present: the pipeline itself, or the fallback
  bool gated = false;          // the conv kernels are the fallback (skip samples whose flag is 0)
  bool norm = false;           // stats + finalize kernels present
  bool lean = false;           // the general kernels are lean_kernels.cuh's (emit_lean.hpp)
  Pipeline conv_pipeline;      // the pipeline the conv kernels compute (valid when general)
  ConvGeometry geometry;       // its tiling (valid when general)
  GeneralKernelNames names;

  bool fill_kernel() const { return fill && !fill_memset; }   // fb_fill
  bool guard_kernel() const { return fill_memset && guard; }  // fb_guard
  bool has_kernels() const { return fill_kernel() || guard_kernel() || general; }
};

EmittedProgram emit_program(const Plan& plan, bool allow_tf32, const ConvTuning& tuning = {});

// NVRTC options every program is compiled with: no FMA contraction (the pointwise formulas
// round as on the CPU; kernels call fmaf where they mean it) and line info for the sanitizers.
std::vector<std::string> program_compile_options();

}  // namespace fuseblock::cuda
