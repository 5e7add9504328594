// fuseblock tune [SPEC]: the seed's optimization stage on the block's conv kernels (src/tune):
// rules -> at most 4 configurations -> measured -> kept only if >= 2% faster -> tuning cache,
// which every later run of the same program on this device uses.
#include <iostream>
#include <memory>

#include <fmt/format.h>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/registry.hpp"
#include "cuda/executor/cuda_backend.hpp"
#include "fuseblock/random.hpp"
#include "tune/tuner.hpp"

namespace fuseblock::cli {
namespace {

struct TuneOpts {
  SpecSource spec;
  bool force = false, strict_fp32 = false;
  int runs = 30;
};

// The mapping, as tuning_rules.hpp states it; printed by `tune --help`.
constexpr const char* kMappingHelp =
    "The seed's rules, mapped to the conv kernels' knobs (their warps per block are fixed: the TF32 MMA engine is\n"
    "8 warps, the FMA engine 4; the window pipeline is always double-buffered):\n"
    "  seed knob                          conv knob                          same lever\n"
    "  8 warps (more warps in flight)     tile width: mpw 4 -> 2 (MMA only)  half the accumulators and window per\n"
    "                                                                        block: more blocks resident\n"
    "  3 stages (more loads in flight)    epilogue unroll 1 -> 2             two output steps in flight per lane\n"
    "  4 warps (more registers per warp)  blocks/SM target 2 -> 1            the register budget per thread\n"
    "Rules (at most 4 configurations, the baseline always first):\n"
    "  baseline: mpw 4, 2 blocks/SM, epilogue unroll 1 (what runs untuned)\n"
    "  high register pressure (> 128 registers, occupancy limited by registers, or spills): baseline only\n"
    "  3+ distinct input loads: no deeper pipelining (unroll stays 1); one challenger at most (the narrower tile)\n"
    "  low pressure (< 96 registers, no spill): more in flight: unroll 2, the narrower tile, both\n"
    "  moderate pressure: one challenger, the narrower tile (the seed's 8 warps, 2 stages)\n"
    "  (the baseline is already the widest tile, so there is no wider one to try; no rule proposes 1 block/SM)\n"
    "Each configuration: CUDA events, 5 warm-up runs, median of --runs, L2 flushed and output poisoned before every\n"
    "run; its output must be complete and agree with the baseline's. The fastest is kept only if >= 2% faster than the\n"
    "baseline. Decisions are cached (tuning.json in $FUSEBLOCK_CACHE_DIR, else $XDG_CACHE_HOME/fuseblock or ~/.cache/fuseblock) by device\n"
    "and architecture, driver, NVRTC version, the baseline program's source hash and the shapes; every run of that\n"
    "program on such a device then uses the kept configuration. Fill-path plans have no knobs: nothing to tune.";

int tune_command(const TuneOpts& o) {
  // The user's own mistakes first (options, spec, parameters): they are found without a GPU.
  if (o.runs < 1) throw UserError("--runs must be at least 1", "use e.g. --runs 30");
  LoadedSpec spec = load_spec(o.spec);
  const Plan plan = lower(spec.block);
  std::string params_what;
  const Params params = load_block_params(spec, plan, "", &params_what);
  std::string why;
  if (!cuda::available(&why))
    throw UserError("tune needs a GPU to measure on: " + why, "run it on a machine with an NVIDIA GPU");
  const Tensor x = uniform_tensor(plan.pipeline.input_shape, 0);
  tune::TuneOptions to;
  to.allow_tf32 = !o.strict_fp32;
  to.force = o.force;
  to.runs = o.runs;
  std::cout << fmt::format("fuseblock tune: {} ({}); input uniform [0, 1) seed 0; params {}\n", spec.description,
                           o.strict_fp32 ? "strict fp32" : "tf32 allowed", params_what);
  std::cout << fmt::format("tuning cache: {}\n", to.cache_path) << std::flush;
  const tune::TuneReport rep = tune::tune_plan(plan, params, x, to, std::cout);
  std::cout << rep.text();
  return 0;
}

}  // namespace

void add_tune_command(CLI::App& app) {
  auto o = std::make_shared<TuneOpts>();
  CLI::App* cmd = app.add_subcommand("tune", "On the GPU: apply the seed's tuning rules to the conv kernels' knobs, measure at "
                                             "most 4 configurations, keep one only if >= 2% faster, cache the decision");
  add_spec_options(cmd, o->spec);
  cmd->add_flag("--force", o->force, "Measure again even when the tuning cache holds a decision");
  cmd->add_flag("--strict-fp32", o->strict_fp32, "Tune the strict-fp32 kernels (no TF32 matrix units)");
  cmd->add_option("--runs", o->runs, "Timed runs per configuration (the median counts)")->capture_default_str();
  cmd->footer(kMappingHelp);
  registry()["tune"] = [o] { return tune_command(*o); };
}

}  // namespace fuseblock::cli
