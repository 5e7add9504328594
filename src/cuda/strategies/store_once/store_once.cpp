#include "cuda/strategies/store_once/store_once.hpp"

#include <fmt/format.h>

#include "cuda/strategies/program_parts.hpp"
#include "cuda/strategies/store_once/emit_store_once.hpp"
#include "cuda/strategies/store_once/store_once_layout.hpp"
#include "fuseblock/error.hpp"
#include "plan/cpu_only_forms.hpp"

namespace fuseblock::cuda {
namespace {

// fb_so_apply keeps three floats per channel of its group in static shared memory.
constexpr int64_t kMaxChannelsPerGroup = 2048;

}  // namespace

LibraryConvDesc library_conv_desc(const Pipeline& p, bool allow_tf32) {
  LibraryConvDesc d;
  d.dims = p.conv.dims;
  d.n = p.input_shape[0];
  d.c_in = p.input_shape[1];
  d.c_out = p.output_shape[1];
  for (int i = 0; i < d.dims; ++i) {
    d.in[static_cast<size_t>(i)] = p.input_shape[static_cast<size_t>(2 + i)];
    d.out[static_cast<size_t>(i)] = p.output_shape[static_cast<size_t>(2 + i)];
  }
  d.kernel = p.conv.kernel;
  d.stride = p.conv.stride;
  d.padding = p.conv.padding;
  d.dilation = p.conv.dilation;
  d.dtype = p.types.storage;
  d.allow_tf32 = allow_tf32;
  d.channels_last = false;
  return d;
}

std::optional<std::string> StoreOnce::unsupported(const ConvProblem& problem, const DeviceLimits& device) const {
  const Plan& plan = *problem.plan;
  const Pipeline& p = plan.pipeline;
  if (auto why = cpu_only_forms(plan)) return why;
  if (p.fill_path())
    return std::string("the chain folds to a constant: there is no conv to run (constant_fill runs it)");
  if (plan.guard) return std::string("the plan is guarded: only recompute_two_pass runs as the gated fallback");
  if (numel(p.input_shape) == 0 || numel(p.output_shape) == 0)
    return std::string("an empty tensor: cuDNN's conv needs non-empty ones");
  // Not yet tried: whether cuDNN's engines index tensors past 32 bits (and the intermediate would
  // double a memory footprint that is already large). The recompute strategies run them.
  if (numel(p.input_shape) >= (int64_t{1} << 31) || numel(p.output_shape) >= (int64_t{1} << 31))
    return std::string("a tensor of 2^31 elements or more (not yet tried with cuDNN)");
  if (store_once_layout(p).cpg > kMaxChannelsPerGroup)  // without a norm the channels are one group
    return fmt::format("more than {} channels per group", kMaxChannelsPerGroup);
  if (device.cc_major < 8) return fmt::format("needs sm_80 or later; {} is older", device.arch());
  // Only on a real device: explain and CI (the stand-in) plan as if cuDNN loaded.
  if (device.probe_libraries)
    if (auto why = cudnn_unavailable()) return "cuDNN: " + *why;
  return std::nullopt;
}

LaunchProgram StoreOnce::build(const ConvProblem& problem, const ConvTuning& config) const {
  const Plan& plan = *problem.plan;
  const Pipeline& p = plan.pipeline;
  FB_ASSERT(!p.fill_path() && !plan.guard, "store_once built for a fill-path or guarded plan");
  LaunchProgram prog;
  prog.strategy = name();
  prog.config = "no knobs of ours: cuDNN picks the conv's engine";
  (void)config;
  const StoreOnceLayout l = store_once_layout(p);
  prog.geometry =
      fmt::format("cudnn conv; statistics {} chunk{} of {} per plane; apply {} block{} per (sample, group)", l.chunks,
                  l.chunks == 1 ? "" : "s", l.chunk, l.apply_blocks, l.apply_blocks == 1 ? "" : "s");
  // Our kernels use no tensor cores (they move bytes); the library conv step is priced at its
  // own dtype's rate (launch_cost.hpp).
  prog.tensor_cores = false;
  SourceWriter w;
  begin_program_source(w, plan, problem.allow_tf32);
  emit_store_once_kernels(w, p, l);
  add_io_buffers(prog, p);
  ConvGeometry g;  // the parameter buffers' sizes only: the library tiles the conv
  g.n = l.n;
  g.cout = l.channels;
  g.kred = p.input_shape[1] * p.conv.kernel[0] * (p.conv.dims > 1 ? p.conv.kernel[1] : 1) *
           (p.conv.dims > 2 ? p.conv.kernel[2] : 1);
  g.out = {1, 1, l.plane};  // conv_pass_flops needs the product alone
  add_conv_param_buffers(prog, p, g);
  const bool norm = p.norm.has_value();
  using R = BufferRole;
  prog.buffers.push_back({R::ConvOutput, BufferKind::Intermediate, prog.bytes_of(R::Output)});
  if (norm) prog.buffers.push_back({R::StatsPartials, BufferKind::Scratch, static_cast<size_t>(l.stats_grid()) * 8});

  Step conv;
  conv.kind = StepKind::LibraryConv;
  conv.name = "cudnn conv";
  conv.library_conv = library_conv_desc(p, problem.allow_tf32);
  conv.reads = {R::Input, R::ConvWeight};
  conv.writes = {R::ConvOutput};
  conv.flops = conv_pass_flops(g);
  conv.note = "the conv without its bias, stored once in the storage type (the one intermediate)";
  prog.steps.push_back(conv);
  if (norm) {
    Grid sg;
    sg.grid_x = l.stats_grid();
    Step stats = kernel_step("fb_so_stats", kStoreOnceThreads, 0, sg,
                             {Arg::buffer(R::ConvOutput), Arg::buffer(R::ConvBias), Arg::buffer(R::StatsPartials)});
    stats.reads = {R::ConvOutput};
    if (p.conv.bias) stats.reads.push_back(R::ConvBias);
    stats.writes = {R::StatsPartials};
    stats.note = "conv + bias as eager rounds it -> per-(sample, channel, chunk) mean and M2 (reads the conv in L2)";
    prog.steps.push_back(stats);
  }
  Grid ag;
  ag.grid_x = l.apply_grid();
  Step apply = kernel_step(
      "fb_so_apply", kStoreOnceThreads, 0, ag,
      {Arg::buffer(R::ConvOutput), Arg::buffer(R::ConvBias), Arg::buffer(R::StatsPartials), Arg::buffer(R::NormWeight),
       Arg::buffer(R::NormBias), Arg::buffer(R::Output), Arg::buffer(R::DropoutState)});
  apply.reads = {R::ConvOutput};
  if (p.conv.bias) apply.reads.push_back(R::ConvBias);
  if (norm) apply.reads.push_back(R::StatsPartials);
  if (norm && p.norm->affine) apply.reads.push_back(R::NormWeight), apply.reads.push_back(R::NormBias);
  if (!p.dropout.is_identity()) apply.reads.push_back(R::DropoutState);
  apply.writes = {R::Output};
  apply.note = norm ? "merges each group's partials, normalize, chain, dropout, store" : "bias, chain, dropout, store";
  prog.steps.push_back(apply);
  add_dropout_state(w, prog, p.dropout);
  prog.source = w.str();
  return prog;
}

// NOT YET MEASURED: a placeholder until the H200 run of store_once (docs/benchmarks.md). The
// recompute strategies measured 0.19 and more; cuDNN's convs run near the matmul ceiling.
double StoreOnce::measured_efficiency() const { return 0.6; }

}  // namespace fuseblock::cuda
