// fuseblock: the command-line tool. One subcommand a file (cmd_*.cpp); this file wires them up
// and turns every error into a message and a non-zero exit code.
#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>

#include "cli/commands.hpp"
#include "fuseblock/fuseblock.hpp"
#include "params/temp_files.hpp"
#include "spec/op_table.hpp"

int main(int argc, char** argv) {
  CLI::App app{
      "fuseblock runs the PyTorch block  conv -> GroupNorm -> pointwise chain -> Dropout  as the fewest,\n"
      "fastest kernels, with PyTorch's results (NaN and Inf included), on the GPU when there is one, else\n"
      "on the CPU. With no SPEC, commands use the embedded default block, KernelBench level-2 problem 83.\n\n"
      "  fuseblock run                      run the default block, print its summary and plan\n"
      "  fuseblock explain my.block         show the IR after every pass and the final plan\n"
      "  fuseblock verify                   check the kernels write only outputs (no GPU needed)\n"
      "  fuseblock tune my.block            measure the tuning rules' configurations, cache the winner (GPU)\n"
      "  fuseblock profile my.block         time, GB/s, % of floor, occupancy per kernel (GPU)\n"
      "  fuseblock --help-spec              the spec format and every op\n",
      "fuseblock"};
  app.require_subcommand(0, 1);
  bool help_spec = false, version = false;
  app.add_flag("--help-spec", help_spec, "Print the block spec format and the list of ops");
  app.add_flag("--version", version, "Print the version");
  fuseblock::cli::add_run_command(app);
  fuseblock::cli::add_explain_command(app);
  fuseblock::cli::add_verify_command(app);
  fuseblock::cli::add_tune_command(app);
  fuseblock::cli::add_profile_command(app);
  fuseblock::detail::remove_temp_files_on_signals();  // no half-written --output left behind
  try {
    app.parse(argc, argv);
    if (help_spec) {
      std::cout << fuseblock::spec::spec_reference();
      return 0;
    }
    if (version) {
      std::cout << "fuseblock 0.1.0\n";
      return 0;
    }
    if (app.get_subcommands().empty()) {
      std::cout << app.help();
      return 0;
    }
    return fuseblock::cli::dispatch(app);
  } catch (const CLI::ParseError& e) {
    // --help is a ParseError of exit code 0; any other is a malformed command line: the user's
    // error, exit code 1 as documented (CLI11's own codes are 100 and up).
    return app.exit(e) == 0 ? 0 : 1;
  } catch (const fuseblock::UserError& e) {
    std::fprintf(stderr, "fuseblock: %s\n", e.formatted().c_str());
    return 1;
  } catch (const fuseblock::InternalError& e) {
    std::fprintf(stderr, "fuseblock: internal error (a bug; please report it with the command line): %s\n", e.what());
    return 3;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "fuseblock: out of host memory; try a smaller input shape\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuseblock: error: %s\n", e.what());
    return 1;
  }
}
