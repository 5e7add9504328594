// Pieces every strategy's build() shares: the program's prelude, the
// input/output and conv parameter buffers, a conv pass's FLOPs and the reads of
// a conv kernel.
#pragma once
#include <string>
#include <vector>

#include "cuda/engines/conv_geometry.hpp"
#include "cuda/program/launch_program.hpp"
#include "cuda/codegen/source_writer.hpp"
#include "fuseblock/plan.hpp"

namespace fuseblock::cuda {

// The prelude every program starts with (its title names the shapes and the
// precision mode).
void begin_program_source(SourceWriter& w, const Plan& plan, bool allow_tf32);
// x and y, f32.
void add_io_buffers(LaunchProgram& prog, const Pipeline& p);
// conv.weight, conv.bias (with a bias), norm.weight and norm.bias (affine
// GroupNorm).
void add_conv_param_buffers(LaunchProgram& prog, const Pipeline& conv_pipeline, const ConvGeometry& g);
// The epilogue's run-time data: each prelu's slopes (PreluWeight, indexed by the op's param_index)
// and the per-(sample, channel) input [N, C_out] (ChannelAdd), where the pipeline has them.
void add_epilogue_buffers(LaunchProgram& prog, const Pipeline& p);
// The prelu slopes in chain order: the buffers bound to the epilogue's prelu0, prelu1, ...
// (emit_epilogue.hpp's epilogue_params), appended to an output kernel's arguments and reads.
std::vector<BufferRef> prelu_weight_refs(const Pipeline& p);
// 2 * N * C_out * prod(out spatial) * C_in * prod(kernel).
double conv_pass_flops(const ConvGeometry& g);
// A kernel step; the caller adds what it reads and writes, its FLOPs and note.
Step kernel_step(std::string name, unsigned threads, size_t dynamic_smem, Grid grid, std::vector<Arg> args);
// With an active dropout: the DropoutState buffer (scratch, 2 x u64), its two one-thread kernels
// (emitted into w) as the run's first step (explicit seeds written into it) and last step (a
// caller's device state advanced, so the next run or graph replay draws a fresh mask). Call last:
// the first step is inserted before the others (their step references shift with it).
void add_dropout_state(SourceWriter& w, LaunchProgram& prog, const DropoutAttrs& dropout);
// input, conv.weight, conv.bias where present.
std::vector<BufferRef> conv_reads(const Pipeline& conv_pipeline);

}  // namespace fuseblock::cuda
