// Assembles a plan's program (emit_program.hpp): prelude, then the fill kernel (or, for a constant
// fill, the guard kernel: the memset is the executor's) and/or the conv kernels of the pipeline
// (or of the exact fallback, gated by the guard flags).
#include "cuda/emit_program.hpp"

#include <cstring>

#include "cuda/emit_common.hpp"
#include "cuda/emit_fill.hpp"
#include "cuda/emit_lean.hpp"
#include "fuseblock/error.hpp"

namespace fuseblock::cuda {

EmittedProgram emit_program(const Plan& plan, bool allow_tf32, const ConvTuning& tuning) {
  EmittedProgram out;
  SourceWriter w;
  const Pipeline& p = plan.pipeline;
  emit_prelude(w, "fuseblock program: " + shape_str(p.input_shape) + " -> " + shape_str(p.output_shape) +
                      (allow_tf32 ? ", tf32 allowed" : ", strict fp32"));
  if (p.fill_path()) {
    out.fill = true;
    out.guard = plan.guard.has_value() && !plan.assume_finite;
    out.fill_memset = fill_is_constant(p);
    if (out.fill_memset) {
      const float c = fold_fill_chain(p.chain);
      std::memcpy(&out.fill_bits, &c, sizeof c);
      w.line("// ---- fill path: output = {} everywhere (no dropout mask), written by cuMemsetD32Async(0x{:08x}) ----",
             float_literal(c), out.fill_bits);
      if (out.guard) emit_guard_kernel(w, plan);
    } else {
      emit_fill_kernel(w, plan);
    }
    if (out.guard) {
      FB_ASSERT(plan.fallback.computes_conv, "a guarded fill path needs an exact fallback with a conv");
      out.general = true;
      out.gated = true;
      out.conv_pipeline = plan.fallback;
    }
  } else {
    out.general = true;
    out.conv_pipeline = p;
  }
  if (out.general) {
    out.geometry = choose_conv_geometry(out.conv_pipeline, allow_tf32, tuning);
    out.norm = out.conv_pipeline.norm.has_value();
    w.line("// ---- {} ----", out.gated ? "exact fallback for samples that fail the guard" : "general path");
    out.lean = tuning.lean && lean_path_applies(out.geometry, out.conv_pipeline, out.gated);
    if (out.lean)
      emit_lean_kernels(w, out.conv_pipeline, out.geometry, &out.names);
    else
      emit_general_kernels(w, out.conv_pipeline, out.geometry, out.gated, &out.names);
  }
  out.source = w.str();
  return out;
}

std::vector<std::string> program_compile_options() { return {"--fmad=false", "-lineinfo"}; }

}  // namespace fuseblock::cuda
