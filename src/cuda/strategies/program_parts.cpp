#include "cuda/strategies/program_parts.hpp"

#include "cuda/codegen/emit_common.hpp"
#include "cuda/codegen/emit_epilogue.hpp"
#include "cuda/codegen/emit_storage.hpp"
#include "cuda/codegen/emit_dropout_state.hpp"

namespace fuseblock::cuda {
namespace {
// Bytes of one element as the pipeline stores it (4 for f32, 2 for bf16/f16).
size_t elem_bytes(const Pipeline& p) { return static_cast<size_t>(dtype_info(p.types.storage).bytes); }
}  // namespace

void begin_program_source(SourceWriter& w, const Plan& plan, bool allow_tf32) {
  const Pipeline& p = plan.pipeline;
  emit_prelude(w, "fuseblock program: " + shape_str(p.input_shape) + " -> " + shape_str(p.output_shape) +
                      (allow_tf32 ? ", tf32 allowed" : ", strict fp32"));
  // The storage type's helpers and the epilogue's store: every output kernel's epilogue uses them.
  emit_storage_helpers(w, p.types.storage);
  emit_store_quad_fn(w, p.types.storage);
}

void add_io_buffers(LaunchProgram& prog, const Pipeline& p) {
  const size_t e = elem_bytes(p);
  prog.buffers.push_back({BufferRole::Input, BufferKind::Input, e * static_cast<size_t>(numel(p.input_shape))});
  prog.buffers.push_back({BufferRole::Output, BufferKind::Output, e * static_cast<size_t>(numel(p.output_shape))});
}

void add_conv_param_buffers(LaunchProgram& prog, const Pipeline& cp, const ConvGeometry& g) {
  const size_t cout = static_cast<size_t>(g.cout), e = elem_bytes(cp);
  prog.buffers.push_back({BufferRole::ConvWeight, BufferKind::Parameter, e * cout * static_cast<size_t>(g.kred)});
  if (cp.conv.bias) prog.buffers.push_back({BufferRole::ConvBias, BufferKind::Parameter, e * cout});
  if (cp.norm && cp.norm->affine) {  // in the norm's own type (float32 where the block keeps it so)
    const size_t ne = static_cast<size_t>(dtype_info(cp.types.norm_param_type()).bytes);
    prog.buffers.push_back({BufferRole::NormWeight, BufferKind::Parameter, ne * cout});
    prog.buffers.push_back({BufferRole::NormBias, BufferKind::Parameter, ne * cout});
  }
}

void add_epilogue_buffers(LaunchProgram& prog, const Pipeline& p) {
  const size_t e = elem_bytes(p);
  for (const Op& op : p.chain)
    if (op.kind == OpKind::PRelu)
      prog.buffers.push_back({BufferRef(BufferRole::PreluWeight, op.pw.param_index), BufferKind::Parameter,
                              e * static_cast<size_t>(op.pw.num_parameters)});
  if (p.channel_add())  // [N, C_out]
    prog.buffers.push_back({BufferRole::ChannelAdd, BufferKind::Input,
                            e * static_cast<size_t>(p.output_shape.at(0) * p.output_shape.at(1))});
}

std::vector<BufferRef> prelu_weight_refs(const Pipeline& p) {
  std::vector<BufferRef> refs;
  for (const Op& op : p.chain)
    if (op.kind == OpKind::PRelu) refs.emplace_back(BufferRole::PreluWeight, op.pw.param_index);
  return refs;
}

double conv_pass_flops(const ConvGeometry& g) {
  return 2.0 * static_cast<double>(g.n * g.cout) * static_cast<double>(g.out[0] * g.out[1] * g.out[2]) *
         static_cast<double>(g.kred);
}

Step kernel_step(std::string name, unsigned threads, size_t dynamic_smem, Grid grid, std::vector<Arg> args) {
  Step s;
  s.name = std::move(name);
  s.threads = threads;
  s.dynamic_smem = dynamic_smem;
  s.grid = grid;
  s.args = std::move(args);
  return s;
}

void add_dropout_state(SourceWriter& w, LaunchProgram& prog, const DropoutAttrs& d) {
  if (d.is_identity()) return;
  emit_dropout_state_kernels(w);
  prog.buffers.push_back({BufferRole::DropoutState, BufferKind::Scratch, 16});
  Step seed = kernel_step(
      "fb_dropout_seed", 32, 0, Grid{},
      {Arg::buffer(BufferRole::DropoutState), Arg::scalar(ArgKind::DropoutSeed), Arg::scalar(ArgKind::DropoutOffset)});
  seed.when = StepWhen::ExplicitDropoutSeeds;
  seed.writes = {BufferRole::DropoutState};
  seed.note = "writes the caller's explicit (seed, offset) into the device state";
  Step advance = kernel_step("fb_dropout_advance", 32, 0, Grid{}, {Arg::buffer(BufferRole::DropoutState)});
  advance.when = StepWhen::AdvanceDropoutState;
  advance.reads = advance.writes = {BufferRole::DropoutState};
  advance.note = "offset + 1 in the caller's device state: the next run or graph replay draws a fresh mask";
  for (Step& s : prog.steps)
    for (Arg& a : s.args)
      if (a.step >= 0) ++a.step;
  prog.steps.insert(prog.steps.begin(), seed);
  prog.steps.push_back(advance);
}

std::vector<BufferRef> conv_reads(const Pipeline& cp) {
  std::vector<BufferRef> r{BufferRole::Input, BufferRole::ConvWeight};
  if (cp.conv.bias) r.push_back(BufferRole::ConvBias);
  return r;
}

}  // namespace fuseblock::cuda
