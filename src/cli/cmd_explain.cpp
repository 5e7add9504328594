// fuseblock explain [SPEC]: the IR after every pass, then the plan with its guard and kernels.
#include <iostream>
#include <memory>

#include <fmt/format.h>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/registry.hpp"

namespace fuseblock::cli {

void add_explain_command(CLI::App& app) {
  struct Opts {
    SpecSource spec;
    bool assume_finite = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("explain", "Show the IR after every pass and the final plan (guard, fallback, kernels)");
  add_spec_options(cmd, o->spec);
  cmd->add_flag("--assume-finite", o->assume_finite, "Plan as if the input is promised finite and bounded (no guard)");
  registry()["explain"] = [o] {
    LoadedSpec spec = load_spec(o->spec);
    std::cout << fmt::format("block: {}\n", spec.description);
    LowerOptions lo;
    lo.assume_finite = o->assume_finite;
    Plan plan = lower(spec.block, lo, [](const std::string& step, const Block& ir) {
      std::cout << fmt::format("-- after {}:\n{}", step, dump(ir));
    });
    std::cout << "\n" << dump(plan);
    return 0;
  };
}

}  // namespace fuseblock::cli
