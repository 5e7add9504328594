#include "cuda/strategies/recompute_sample_runs/recompute_sample_runs.hpp"

#include <fmt/format.h>

#include "cuda/codegen/emit_epilogue.hpp"
#include "cuda/strategies/program_parts.hpp"
#include "cuda/strategies/recompute_sample_runs/emit_lean.hpp"
#include "fuseblock/error.hpp"
#include "plan/cpu_only_forms.hpp"

namespace fuseblock::cuda {
namespace {

constexpr unsigned kFinalizeThreads = 256;  // fbl_finalize: a warp per (sample, group), 8 a block

}  // namespace

std::optional<std::string> RecomputeSampleRuns::unsupported(const ConvProblem& problem,
                                                            const DeviceLimits& device) const {
  if (auto why = recompute_unsupported_forms(*problem.plan)) return why;
  const Pipeline& p = problem.pipeline();
  if (p.fill_path()) return std::string("the chain folds to a constant: there is no conv to run");
  if (!problem.allow_tf32) return std::string("needs the TF32 MMA engine: strict fp32 (or a GPU before sm_80)");
  if (!p.norm) return std::string("needs a GroupNorm (its statistics are the point)");
  ConvGeometry g;
  try {
    g = choose_conv_geometry(p, true, {});
  } catch (const UserError& e) {
    return std::string(e.what());
  }
  if (!lean_path_applies(g, p, false))
    return fmt::format(
        "built for problem 83's geometry: the TF32 MMA engine "
        "with a reduction <= 128, 16 output "
        "channels, stride 1, no padding or dilation, a tile "
        "spanning whole output rows with input rows "
        "in 16-byte chunks (here: {})",
        g.describe());
  const size_t smem = std::max(lean_stats_smem_bytes(g), lean_output_smem_bytes(g));
  if (smem > device.smem_per_block_optin)
    return fmt::format("needs {} B of shared memory; {} allows {}", smem, device.arch(), device.smem_per_block_optin);
  return std::nullopt;
}

// Its kernels' knobs are fixed in lean_kernels.cuh (measured in
// dev/general_lean.cpp): one config.
std::vector<ConvTuning> RecomputeSampleRuns::configs(const ConvProblem&) const { return {ConvTuning{}}; }

LaunchProgram RecomputeSampleRuns::build(const ConvProblem& problem, const ConvTuning& config) const {
  const Plan& plan = *problem.plan;
  const Pipeline& p = plan.pipeline;
  LaunchProgram prog;
  prog.strategy = name();
  prog.config = "fixed (lean_kernels.cuh)";
  SourceWriter w;
  begin_program_source(w, plan, problem.allow_tf32);
  const ConvGeometry g = choose_conv_geometry(p, problem.allow_tf32, config);
  w.line("// ---- general path ----");
  GeneralKernelNames names;
  emit_lean_kernels(w, p, g, &names);
  prog.geometry = g.describe();
  prog.tensor_cores = g.engine == ConvEngine::MmaTf32;
  add_io_buffers(prog, p);
  add_conv_param_buffers(prog, p, g);
  prog.buffers.push_back({BufferRole::StatsPartials, BufferKind::Scratch, lean_partials_bytes(g)});
  // Per-(n, c) (a, b) of y = a * conv + b: this strategy's own scratch.
  const BufferRef shift = BufferRef::scratch("norm a, b");
  prog.buffers.push_back({shift, BufferKind::Scratch, static_cast<size_t>(g.n * g.cout) * 8});

  using R = BufferRole;
  const double flops = conv_pass_flops(g);
  Grid runs;
  runs.rule = GridRule::SampleRuns;
  runs.samples = g.n;
  runs.max_per_sample = lean_max_blocks_per_sample(g);
  Step stats = kernel_step(names.stats, static_cast<unsigned>(g.threads), lean_stats_smem_bytes(g), runs,
                           {Arg::buffer(R::Input), Arg::buffer(R::ConvWeight), Arg::buffer(R::StatsPartials),
                            Arg::scalar(ArgKind::BlocksPerSample)});
  stats.reads = {R::Input, R::ConvWeight};
  stats.writes = {R::StatsPartials};
  stats.flops = flops;
  stats.note =
      "conv pass 1: a block per run of one sample's tiles, statistics "
      "in registers, one partial per warp";
  Grid fin_grid;
  fin_grid.grid_x = (g.n * p.norm->num_groups + kFinalizeThreads / 32 - 1) / (kFinalizeThreads / 32);
  Step fin =
      kernel_step(names.finalize, kFinalizeThreads, 0, fin_grid,
                  {Arg::buffer(R::StatsPartials), Arg::buffer(R::ConvBias), Arg::buffer(R::NormWeight),
                   Arg::buffer(R::NormBias), Arg::buffer(shift), Arg::scalar(ArgKind::BlocksPerSample, 0)});
  fin.reads = {R::StatsPartials};
  if (p.conv.bias) fin.reads.push_back(R::ConvBias);
  if (p.norm->affine) fin.reads.push_back(R::NormWeight), fin.reads.push_back(R::NormBias);
  fin.writes = {shift};
  fin.note = "merges the partials in double; per-(n, c) a, b of y = a * conv + b";
  Step out = kernel_step(names.output, static_cast<unsigned>(g.threads), lean_output_smem_bytes(g), runs,
                         {Arg::buffer(R::Input), Arg::buffer(R::ConvWeight), Arg::buffer(shift),
                          Arg::buffer(R::Output), Arg::scalar(ArgKind::BlocksPerSample), Arg::buffer(R::DropoutState)});
  out.reads = {R::Input, R::ConvWeight, shift};
  if (active_dropout(p)) out.reads.push_back(R::DropoutState);
  out.writes = {R::Output};
  out.flops = flops;
  out.note = "conv pass 2: a * conv + b, chain, dropout, store";
  prog.steps = {stats, fin, out};
  add_dropout_state(w, prog, drawn_dropout(p));
  prog.source = w.str();
  return prog;
}

// Measured by `fuseblock tune` on an H200 (problem83_silu, TF32, 2026-11-30): 0.571 ms against a
// cost-model floor of 0.176 ms (docs/benchmarks.md; on an H100 0.562 ms).
double RecomputeSampleRuns::measured_efficiency() const { return 0.31; }

}  // namespace fuseblock::cuda
