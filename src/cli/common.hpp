// What every `fuseblock` subcommand shares: reading the spec, parameters and input, and the
// summary of an output tensor.
#pragma once
#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

#include "fuseblock/fuseblock.hpp"

namespace fuseblock::cli {

struct SpecSource {
  std::string path;  // empty: the embedded default block; "-": standard input
  std::string text;  // --spec-text
  bool text_given = false;  // --spec-text was on the command line (an empty text is still a spec)
};
// The SPEC argument and --spec-text, which every subcommand takes.
void add_spec_options(CLI::App* cmd, SpecSource& spec);

struct LoadedSpec {
  Block block;
  std::string description;  // "<default> (KernelBench level-2 problem 83)" or the file name
  std::string folder;       // where relative file names in the spec are looked up
};

LoadedSpec load_spec(const SpecSource& src);
// The block's parameters: --params FILE, else the spec's `params file=`, else init from a seed.
Params load_block_params(const LoadedSpec& spec, const Plan& plan, const std::string& params_flag, std::string* what);
// The safetensors file those parameters come from ("" when they are drawn from a seed).
std::string params_file(const LoadedSpec& spec, const std::string& params_flag);

struct Summary {
  double min = 0, max = 0, mean = 0, std = 0;
  int64_t nan = 0, inf = 0, zeros = 0;
  uint64_t checksum = 0;  // FNV-1a 64 over the float32 bytes
};
Summary summarize(const Tensor& t);
std::string format_summary(const Summary& s);


}  // namespace fuseblock::cli
