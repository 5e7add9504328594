// fuseblock explain [SPEC]: the IR after every pass, the plan with its guard and kernels, then the
// CUDA strategies considered (why each rejected one was rejected, which one runs) and the
// LaunchProgram the chosen one builds. Needs no GPU: without one it plans for an sm_90 device.
#include <iostream>
#include <memory>

#include <fmt/format.h>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/registry.hpp"
#include "cuda/executor/cuda_backend.hpp"
#include "cuda/executor/executor.hpp"
#include "cuda/select/select.hpp"
#include "plan/cpu_only_forms.hpp"
#include "tune/tuning_key.hpp"

namespace fuseblock::cli {

void add_explain_command(CLI::App& app) {
  struct Opts {
    SpecSource spec;
    bool assume_finite = false;
    bool strict_fp32 = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("explain", "Show the IR after every pass and the final plan (guard, fallback, kernels)");
  add_spec_options(cmd, o->spec);
  cmd->add_flag("--assume-finite", o->assume_finite, "Plan as if the input is promised finite and bounded (no guard)");
  cmd->add_flag("--strict-fp32", o->strict_fp32, "Plan the CUDA program for strict fp32 (no TF32 tensor cores)");
  registry()["explain"] = [o] {
    LoadedSpec spec = load_spec(o->spec);
    std::cout << fmt::format("block: {}\n", spec.description);
    LowerOptions lo;
    lo.assume_finite = o->assume_finite;
    Plan plan = lower(spec.block, lo, [](const std::string& step, const Block& ir) {
      std::cout << fmt::format("-- after {}:\n{}", step, dump(ir));
    });
    std::cout << "\n" << dump(plan);
    if (const std::optional<std::string> cpu_only = cpu_only_forms(plan)) {
      std::cout << fmt::format("\nCUDA: not used: {}\n", *cpu_only);
      return 0;
    }
    // The CUDA side: this GPU's limits and tuning cache where there is one, else an sm_90 device.
    std::string why;
    const bool gpu = cuda::available(&why);
    const cuda::DeviceLimits device = gpu ? cuda::current_device_limits() : cuda::DeviceLimits{};
    const cuda::ConvProblem problem{&plan, !o->strict_fp32 && device.cc_major >= 8};
    std::cout << fmt::format("\nCUDA ({}, {}):\n", gpu ? "this GPU, " + device.arch() : "no GPU here: planned for " + device.arch(),
                             problem.allow_tf32 ? "TF32 allowed" : "strict fp32");
    // A bf16/f16 block that store_once cannot run (a fill path, no cuDNN) has no CUDA strategy:
    // explain says so, with each strategy's reason, as it does for CPU-only forms.
    cuda::Selection sel;
    try {
      std::optional<cuda::TunedChoice> tuned;
      if (gpu) tuned = tune::cached_choice(plan, cuda::default_program(plan, problem.allow_tf32, device).source);
      sel = cuda::select_strategy(problem, device, tuned);
    } catch (const UserError& e) {
      std::cout << fmt::format("not used: {}\n", e.what());
      return 0;
    }
    std::cout << sel.text() << cuda::describe(cuda::build_selected(problem, sel));
    return 0;
  };
}

}  // namespace fuseblock::cli
