// fuseblock verify [SPEC]: the plan, its emitted PTX and its launches checked against the fusion
// rule (src/verify). Exit code 0 only when every check holds.
#include <iostream>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "cli/check_arch.hpp"
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/registry.hpp"
#include "plan/cpu_only_forms.hpp"
#include "verify/verify_plan.hpp"

namespace fuseblock::cli {

void add_verify_command(CLI::App& app) {
  struct Opts {
    SpecSource spec;
    bool assume_finite = false, strict_fp32 = false;
    std::string arch;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("verify",
                                     "Check the plan and its compiled kernels: only outputs and small scratch are written, "
                                     "no local memory, valid launches (exit 0 only if all hold; no GPU needed)");
  add_spec_options(cmd, o->spec);
  cmd->add_option("--arch", o->arch, "Compile for this architecture (e.g. sm_89); default: the GPU's, or sm_90 without one");
  cmd->add_flag("--assume-finite", o->assume_finite, "Verify the plan without the guard");
  cmd->add_flag("--strict-fp32", o->strict_fp32, "Verify the strict-fp32 kernels (no TF32 matrix units)");
  registry()["verify"] = [o] {
    if (!o->arch.empty()) check_arch(o->arch);
    LoadedSpec spec = load_spec(o->spec);
    LowerOptions lo;
    lo.assume_finite = o->assume_finite;
    Plan plan = lower(spec.block, lo);
    if (const std::optional<std::string> why = cpu_only_forms(plan))
      throw UserError("verify checks CUDA kernels, and no CUDA strategy runs this block: " + *why,
                      "run it with `fuseblock run --device cpu`");
    // bf16/f16 blocks too: store_once's kernels run them, and verify checks its program.
    verify::VerifyOptions vo;
    vo.allow_tf32 = !o->strict_fp32;
    vo.arch = o->arch;
    std::cout << fmt::format("fuseblock verify: {}\n", spec.description);
    verify::VerifyReport r = verify::verify_plan(plan, vo);
    std::cout << r.text();
    if (!r.on_gpu) std::cout << "(no GPU used: grid limits are checked where one is present)\n";
    return r.ok() ? 0 : 2;
  };
}

}  // namespace fuseblock::cli
