#include "cuda/strategies/store_once/store_once.hpp"

#include <fmt/format.h>

#include "cuda/codegen/emit_epilogue.hpp"
#include "cuda/strategies/program_parts.hpp"
#include "cuda/strategies/store_once/emit_igemm.hpp"
#include "cuda/strategies/store_once/emit_store_once.hpp"
#include "cuda/strategies/store_once/store_once_layout.hpp"
#include "fuseblock/error.hpp"
#include "plan/cpu_only_forms.hpp"

namespace fuseblock::cuda {
namespace {

// fb_so_apply keeps four floats per channel of its group in static shared memory (32 KB here).
constexpr int64_t kMaxChannelsPerGroup = 2048;

// fb_so_apply: the last kernel of both engines' programs.
void add_apply_step(LaunchProgram& prog, const Pipeline& p, const StoreOnceLayout& l) {
  using R = BufferRole;
  const bool norm = p.norm.has_value();
  Grid ag;
  ag.grid_x = l.apply_grid();
  Step apply = kernel_step(
      "fb_so_apply", kStoreOnceThreads, 0, ag,
      {Arg::buffer(R::ConvOutput), Arg::buffer(R::ConvBias), Arg::buffer(R::StatsPartials), Arg::buffer(R::NormWeight),
       Arg::buffer(R::NormBias), Arg::buffer(R::ChannelAdd), Arg::buffer(R::Output), Arg::buffer(R::DropoutState)});
  for (const BufferRef& slopes : prelu_weight_refs(p)) apply.args.push_back(Arg::buffer(slopes));  // prelu0, ...
  apply.reads = {R::ConvOutput};
  if (p.conv.bias) apply.reads.push_back(R::ConvBias);
  if (p.channel_add()) apply.reads.push_back(R::ChannelAdd);
  for (const BufferRef& slopes : prelu_weight_refs(p)) apply.reads.push_back(slopes);
  if (norm) apply.reads.push_back(R::StatsPartials);
  if (norm && p.norm->affine) apply.reads.push_back(R::NormWeight), apply.reads.push_back(R::NormBias);
  if (active_dropout(p)) apply.reads.push_back(R::DropoutState);
  apply.writes = {R::Output};
  apply.note = norm ? "merges each group's partials, normalize, chain, dropout, store" : "bias, chain, dropout, store";
  prog.steps.push_back(apply);
}

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
  // Only on a real device: explain and CI (the stand-in) plan as if cuDNN loaded. The igemm
  // engine, where it applies, needs no library.
  if (device.probe_libraries && igemm_configs(p).empty())
    if (auto why = cudnn_unavailable()) return "cuDNN: " + *why;
  return std::nullopt;
}

std::vector<ConvTuning> StoreOnce::configs(const ConvProblem& problem) const {
  // cuDNN's conv, then the igemm tiles (the measured winner for the shape first), for tune to
  // measure (the tiles apply to bf16/f16 only; tune and profile run half blocks since issue 18,
  // but no tile has been measured by tune yet).
  std::vector<ConvTuning> out{ConvTuning{}};
  for (const ConvTuning& t : igemm_configs(problem.pipeline())) out.push_back(t);
  return out;
}

ConvTuning StoreOnce::default_config_on(const ConvProblem& problem, const DeviceLimits& device) const {
  // cuDNN's conv by default: on the H200 (2026-11-30, bench/realworld.py, training, bf16) the
  // whole igemm program (weight pack, channels-last copy, v1 conv with statistics, apply) took
  // 0.393 ms on the SD ResBlock and 0.218 ms on the VAE block against 0.269 and 0.166 with cuDNN,
  // so the engine runs only where cuDNN cannot load (until tune measures a tile faster).
  if (device.probe_libraries && cudnn_unavailable())
    for (const ConvTuning& t : configs(problem))  // the first igemm tile that fits the device
      if (t.ig_bm > 0 && igemm_shape(problem.pipeline(), t).smem <= device.smem_per_block_optin) return t;
  return ConvTuning{};  // cuDNN's conv
}

namespace {

// The buffers of both programs (cuDNN's conv and the igemm engine): input and output, the conv's
// parameters, the one intermediate (the conv output) and, with a norm, the statistics partials.
// Returns the conv in 3-D form (the parameter buffers' sizes, the FLOPs).
ConvGeometry add_store_once_buffers(LaunchProgram& prog, const Pipeline& p, const StoreOnceLayout& l) {
  add_io_buffers(prog, p);
  const ConvGeometry g = conv_in_3d(p);
  add_conv_param_buffers(prog, p, g);
  add_epilogue_buffers(prog, p);
  using R = BufferRole;
  prog.buffers.push_back({R::ConvOutput, BufferKind::Intermediate, prog.bytes_of(R::Output)});
  if (p.norm)
    prog.buffers.push_back({R::StatsPartials, BufferKind::Scratch, static_cast<size_t>(l.stats_grid()) * 8});
  return g;
}

// The igemm engine's program: pack the weights, the input to channels-last, the conv with its
// statistics in one kernel, then fb_so_apply as after cuDNN.
LaunchProgram build_igemm(const ConvProblem& problem, const ConvTuning& t) {
  const Plan& plan = *problem.plan;
  const Pipeline& p = plan.pipeline;
  const IgemmShape s = igemm_shape(p, t);
  LaunchProgram prog;
  prog.strategy = "store_once";
  prog.config = describe(t);
  StoreOnceLayout l = store_once_layout(p);
  l.chunks = s.tiles;  // the conv's partials: one per (sample, channel, M tile), fb_so_apply merges them
  l.chunk = t.ig_bm;
  prog.geometry = fmt::format(
      "igemm conv {}x{} tiles (warp {}x{}), {} M tile{} per sample, C_in {} padded to {}, K {} padded to {}; apply {} "
      "block{} per (sample, group)",
      t.ig_bm, t.ig_bn, t.ig_wm, t.ig_wn, s.tiles, s.tiles == 1 ? "" : "s", s.cin_real, s.cin, s.k, s.kp,
      l.apply_blocks, l.apply_blocks == 1 ? "" : "s");
  prog.half_tensor_cores = true;  // priced at the bf16/f16 tensor-core rate
  SourceWriter w;
  begin_program_source(w, plan, problem.allow_tf32);
  emit_store_once_kernels(w, p, l, /*stats_kernel=*/false);
  emit_igemm_kernels(w, p, t);
  const ConvGeometry g = add_store_once_buffers(prog, p, l);
  const bool norm = p.norm.has_value();
  using R = BufferRole;
  // The engine's layout copies (its own scratch): the weights as [C_out][K padded to 32], the
  // input channels-last with its channels padded to 8.
  const BufferRef packed = BufferRef::scratch("packed conv.weight");
  const BufferRef channels_last = BufferRef::scratch("channels-last input");
  prog.buffers.push_back(
      {packed, BufferKind::Scratch, s.packed_weight_bytes(), LayoutCopy{R::ConvWeight, s.cout, s.cin_real, 8, 32 * 2}});
  prog.buffers.push_back(
      {channels_last, BufferKind::Scratch, s.channels_last_bytes(), LayoutCopy{R::Input, 1, s.cin_real, 8, 1}});

  Grid pg;
  pg.grid_x = (s.cout * s.kp + 255) / 256;
  Step pack = kernel_step("fb_ig_pack_w", 256, 0, pg, {Arg::buffer(R::ConvWeight), Arg::buffer(packed)});
  pack.reads = {R::ConvWeight};
  pack.writes = {packed};
  pack.note = "the conv weights to [C_out][k... x C_in padded to 8, K padded to 32] (every call)";
  prog.steps.push_back(pack);
  Grid lg;
  lg.grid_x = s.n * ((s.pin + 63) / 64) * ((s.cin + 63) / 64);  // 64 x 64 (pixel, channel) tiles
  Step layout = kernel_step("fb_ig_to_cl", 256, 0, lg, {Arg::buffer(R::Input), Arg::buffer(channels_last)});
  layout.reads = {R::Input};
  layout.writes = {channels_last};
  layout.note = "the input to channels-last, channels padded to 8 with zeros (64 x 64 tiles, 16-byte loads and stores)";
  prog.steps.push_back(layout);
  Grid cg;
  cg.grid_x = s.conv_blocks;
  Step conv = kernel_step("fb_ig_conv", static_cast<unsigned>(s.threads), s.smem, cg,
                          {Arg::buffer(channels_last), Arg::buffer(packed), Arg::buffer(R::ConvBias),
                           Arg::buffer(R::ChannelAdd), Arg::buffer(R::ConvOutput), Arg::buffer(R::StatsPartials)});
  conv.reads = {channels_last, packed};
  if (p.conv.bias) conv.reads.push_back(R::ConvBias);
  if (p.channel_add()) conv.reads.push_back(R::ChannelAdd);
  conv.writes = {R::ConvOutput};
  if (norm) conv.writes.push_back(R::StatsPartials);
  conv.flops = conv_pass_flops(g);
  conv.note = norm ? "implicit-GEMM conv (mma.sync), stored once without its bias; conv + bias as eager rounds it -> "
                     "per-(sample, channel, M tile) mean and M2"
                   : "implicit-GEMM conv (mma.sync), stored once without its bias";
  prog.steps.push_back(conv);
  add_apply_step(prog, p, l);
  add_dropout_state(w, prog, drawn_dropout(p));
  prog.source = w.str();
  return prog;
}

}  // namespace

LaunchProgram StoreOnce::build(const ConvProblem& problem, const ConvTuning& config) const {
  const Plan& plan = *problem.plan;
  const Pipeline& p = plan.pipeline;
  FB_ASSERT(!p.fill_path() && !plan.guard, "store_once built for a fill-path or guarded plan");
  if (config.ig_bm > 0) return build_igemm(problem, config);
  LaunchProgram prog;
  prog.strategy = name();
  prog.config = "cuDNN's conv (cuDNN picks its engine)";
  const StoreOnceLayout l = store_once_layout(p);
  prog.geometry =
      fmt::format("cudnn conv; statistics {} chunk{} of {} per plane; apply {} block{} per (sample, group)", l.chunks,
                  l.chunks == 1 ? "" : "s", l.chunk, l.apply_blocks, l.apply_blocks == 1 ? "" : "s");
  // Our kernels use no tensor cores (they move bytes); the library conv step is priced at its
  // own dtype's rate (launch_cost.hpp).
  prog.tensor_cores = false;
  SourceWriter w;
  begin_program_source(w, plan, problem.allow_tf32);
  emit_store_once_kernels(w, p, l, /*stats_kernel=*/true);
  const ConvGeometry g = add_store_once_buffers(prog, p, l);  // the library tiles the conv
  const bool norm = p.norm.has_value();
  using R = BufferRole;

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
                             {Arg::buffer(R::ConvOutput), Arg::buffer(R::ConvBias), Arg::buffer(R::ChannelAdd),
                              Arg::buffer(R::StatsPartials)});
    stats.reads = {R::ConvOutput};
    if (p.conv.bias) stats.reads.push_back(R::ConvBias);
    if (p.channel_add()) stats.reads.push_back(R::ChannelAdd);
    stats.writes = {R::StatsPartials};
    stats.note = p.channel_add() ? "conv + bias + the per-(sample, channel) input as eager rounds them -> per-(sample, "
                                   "channel, chunk) mean and M2 (reads the conv in L2)"
                                 : "conv + bias as eager rounds it -> per-(sample, channel, chunk) mean and M2 (reads the "
                                   "conv in L2)";
    prog.steps.push_back(stats);
  }
  add_apply_step(prog, p, l);
  add_dropout_state(w, prog, drawn_dropout(p));
  prog.source = w.str();
  return prog;
}

// NOT FITTED (efficiency_fitted() says so, and explain prints it): a placeholder until `fuseblock
// tune` measures store_once's programs against the cost model's floor and docs/benchmarks.md records
// it. store_once ran on the H200 (docs/benchmarks.md) but was not measured against its floor; the
// recompute strategies measured 0.19 and more; cuDNN's convs run near the matmul ceiling.
double StoreOnce::measured_efficiency() const { return 0.6; }
bool StoreOnce::efficiency_fitted() const { return false; }

}  // namespace fuseblock::cuda
