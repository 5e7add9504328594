#include "cuda/strategies/recompute_two_pass/recompute_two_pass.hpp"

#include <fmt/format.h>

#include "cuda/codegen/emit_epilogue.hpp"
#include "cuda/strategies/program_parts.hpp"
#include "cuda/strategies/recompute_two_pass/emit_general.hpp"
#include "fuseblock/error.hpp"
#include "plan/cpu_only_forms.hpp"

namespace fuseblock::cuda {
namespace {

constexpr unsigned kFinalizeThreads = 256;

ConvGeometry geometry_or_reason(const ConvProblem& problem, const ConvTuning& c, std::string* why) {
  try {
    return choose_conv_geometry(problem.pipeline(), problem.allow_tf32, c);
  } catch (const UserError& e) {
    *why = e.what();
    return {};
  }
}

}  // namespace

void append_recompute_two_pass(SourceWriter& w, LaunchProgram& prog, const Pipeline& cp, const ConvGeometry& g,
                               bool gated) {
  w.line("// ---- {} ----", gated ? "exact fallback for samples that fail the guard" : "general path");
  GeneralKernelNames names;
  emit_general_kernels(w, cp, g, gated, &names);
  prog.geometry = g.describe();
  prog.tensor_cores = g.engine == ConvEngine::MmaTf32;
  add_conv_param_buffers(prog, cp, g);
  const size_t nc = static_cast<size_t>(g.n * g.cout);
  const bool norm = cp.norm.has_value();
  if (norm) {
    prog.buffers.push_back({BufferRole::StatsPartials, BufferKind::Scratch, nc * static_cast<size_t>(g.tiles) * 8});
    prog.buffers.push_back({BufferRole::NormScale, BufferKind::Scratch, nc * 4});
    prog.buffers.push_back({BufferRole::NormMean, BufferKind::Scratch, nc * 4});
  }
  const bool affine = norm && cp.norm->affine;
  const double flops = conv_pass_flops(g);
  using R = BufferRole;
  const Arg flags = Arg::buffer(R::GuardFlags);
  Grid tiles;
  tiles.rule = GridRule::ConvTiles;
  tiles.units = g.n * g.tiles;
  tiles.grid_y = static_cast<unsigned>(g.cchunks);
  const std::string gated_note =
      "gated fallback: reads the flags, exits for "
      "samples that passed the guard";
  if (norm) {
    Step stats = kernel_step(names.stats, static_cast<unsigned>(g.threads), g.smem_bytes(), tiles,
                             {Arg::buffer(R::Input), Arg::buffer(R::ConvWeight), Arg::buffer(R::ConvBias),
                              Arg::buffer(R::StatsPartials), flags});
    stats.reads = conv_reads(cp);
    stats.writes = {R::StatsPartials};
    stats.flops = flops;
    stats.note = "conv pass 1: statistics, no conv output stored";
    Grid fin_grid;
    fin_grid.grid_x = g.n * cp.norm->num_groups;
    Step fin = kernel_step(names.finalize, kFinalizeThreads, 0, fin_grid,
                           {Arg::buffer(R::StatsPartials), Arg::buffer(R::NormWeight), Arg::buffer(R::NormScale),
                            Arg::buffer(R::NormMean), flags});
    fin.reads = {R::StatsPartials};
    if (affine) fin.reads.push_back(R::NormWeight);
    fin.writes = {R::NormScale, R::NormMean};
    fin.note = "merges statistics into per-(n, c) scale and mean";
    prog.steps.push_back(stats);
    prog.steps.push_back(fin);
  }
  Step out = kernel_step(names.output, static_cast<unsigned>(g.threads), g.smem_bytes(), tiles,
                         {Arg::buffer(R::Input), Arg::buffer(R::ConvWeight), Arg::buffer(R::ConvBias),
                          Arg::buffer(R::NormScale), Arg::buffer(R::NormMean), Arg::buffer(R::NormBias),
                          Arg::buffer(R::Output), flags, Arg::buffer(R::DropoutState)});
  out.reads = conv_reads(cp);
  if (norm) {
    out.reads.push_back(R::NormScale), out.reads.push_back(R::NormMean);
    if (affine) out.reads.push_back(R::NormBias);
  }
  if (active_dropout(cp)) out.reads.push_back(R::DropoutState);
  out.writes = {R::Output};
  out.flops = flops;
  out.note = norm ? "conv pass 2: normalize, chain, dropout, store" : "conv, chain, dropout, store";
  prog.steps.push_back(out);
  if (gated) {
    for (size_t i = prog.steps.size() - (norm ? 3 : 1); i < prog.steps.size(); ++i) {
      Step& s = prog.steps[i];
      s.reads.push_back(R::GuardFlags);
      s.gated = true;
      s.programmatic = true;
      s.note = gated_note;
    }
  }
}

std::optional<std::string> RecomputeTwoPass::unsupported(const ConvProblem& problem, const DeviceLimits& device) const {
  if (auto why = recompute_unsupported_forms(*problem.plan)) return why;
  if (problem.pipeline().fill_path())
    return std::string(
        "the chain folds to a constant: there is no conv to run "
        "(constant_fill runs it)");
  std::string why;
  const ConvGeometry g = geometry_or_reason(problem, {}, &why);
  if (!why.empty()) return why;
  if (g.smem_bytes() > device.smem_per_block_optin)
    return fmt::format("its conv tile needs {} B of shared memory; {} allows {}", g.smem_bytes(), device.arch(),
                       device.smem_per_block_optin);
  return std::nullopt;
}

std::vector<ConvTuning> RecomputeTwoPass::configs(const ConvProblem& problem) const {
  // The knobs: the MMA engine's tile width (mpw), epilogue unroll, the register
  // budget
  // (__launch_bounds__ blocks per SM). Only those that change the program are
  // listed.
  std::vector<ConvTuning> all{{4, 2, 1}, {2, 2, 1}, {4, 2, 2}, {2, 2, 2}, {4, 1, 1}};
  std::vector<ConvTuning> out;
  std::vector<std::string> sources;
  for (const ConvTuning& c : all) {
    std::string why;
    geometry_or_reason(problem, c, &why);
    if (!why.empty()) continue;
    std::string src = build(problem, c).source;
    bool dup = false;
    for (const std::string& s : sources) dup |= s == src;
    if (dup) continue;
    sources.push_back(std::move(src));
    out.push_back(c);
  }
  return out;
}

LaunchProgram RecomputeTwoPass::build(const ConvProblem& problem, const ConvTuning& config) const {
  const Plan& plan = *problem.plan;
  FB_ASSERT(!plan.pipeline.fill_path(), "recompute_two_pass built for a fill-path plan");
  LaunchProgram prog;
  prog.strategy = name();
  prog.config = describe(config);
  SourceWriter w;
  begin_program_source(w, plan, problem.allow_tf32);
  add_io_buffers(prog, plan.pipeline);
  const ConvGeometry g = choose_conv_geometry(plan.pipeline, problem.allow_tf32, config);
  append_recompute_two_pass(w, prog, plan.pipeline, g, /*gated=*/false);
  add_dropout_state(w, prog, drawn_dropout(plan.pipeline));
  prog.source = w.str();
  return prog;
}

// Measured by `fuseblock tune` on an H200 (problem83_silu, TF32, 2026-11-30): 0.902 ms against a
// cost-model floor of 0.1755 ms (docs/benchmarks.md; on an H100 0.956 ms).
double RecomputeTwoPass::measured_efficiency() const { return 0.19; }

}  // namespace fuseblock::cuda
