// The subcommands. Each add_*_command registers its options on the app; dispatch() runs the one
// the user named and returns the exit code.
#pragma once
#include <CLI/CLI.hpp>

namespace fuseblock::cli {

void add_run_command(CLI::App& app);
void add_explain_command(CLI::App& app);
void add_verify_command(CLI::App& app);
void add_tune_command(CLI::App& app);
void add_profile_command(CLI::App& app);
int dispatch(CLI::App& app);

}  // namespace fuseblock::cli
