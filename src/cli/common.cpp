#include "cli/common.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <limits>
#include <sstream>
#include <vector>

#include <fmt/format.h>

#include "fuseblock/io.hpp"
#include "spec/limits.hpp"

namespace fuseblock::cli {

// At most one byte past the spec's size limit: parse_spec reports a longer spec, and a spec path
// like /dev/zero (or an endless stdin) cannot make the CLI read forever.
static std::string read_spec_text(std::istream& in) {
  std::string text(spec::kMaxSpecBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  return text;
}

void add_spec_options(CLI::App* cmd, SpecSource& spec) {
  cmd->add_option("SPEC", spec.path, "Block spec file ('-' for stdin); default: KernelBench level-2 problem 83");
  cmd->add_option("--spec-text", spec.text, "The spec itself, as text; ';' separates lines")
      ->each([&spec](const std::string&) { spec.text_given = true; });
}

LoadedSpec load_spec(const SpecSource& src) {
  LoadedSpec s;
  std::string text, name;
  if (src.text_given && !src.path.empty())
    throw UserError(fmt::format("both a spec file ('{}') and --spec-text are given", src.path),
                    "give one of them; without either the default block runs");
  if (src.text_given) {
    // On a command line, ';' separates lines: --spec-text 'input f32[1, 3, 8]; conv1d 4 3'.
    text = src.text, name = "<spec-text>";
    for (char& c : text)
      if (c == ';') c = '\n';
    s.description = "--spec-text";
  } else if (src.path.empty()) {
    text = kDefaultSpec, name = "<default>";
    s.description = "<default> (KernelBench level-2 problem 83)";
  } else if (src.path == "-") {
    text = read_spec_text(std::cin);
    name = "<stdin>", s.description = "<stdin>";
  } else {
    std::ifstream f(src.path, std::ios::binary);
    if (!f) throw UserError(fmt::format("cannot read the spec file '{}'", src.path), "check the path; run without SPEC for the default block");
    text = read_spec_text(f);
    name = src.path, s.description = src.path;
    s.folder = std::filesystem::path(src.path).parent_path().string();
  }
  s.block = parse_spec(text, name);
  return s;
}

std::string params_file(const LoadedSpec& spec, const std::string& params_flag) {
  if (!params_flag.empty() || spec.block.params.safetensors.empty()) return params_flag;
  std::filesystem::path f(spec.block.params.safetensors);
  return (f.is_relative() && !spec.folder.empty()) ? (std::filesystem::path(spec.folder) / f).string() : f.string();
}

Params load_block_params(const LoadedSpec& spec, const Plan& plan, const std::string& params_flag, std::string* what) {
  const Pipeline& p = plan.guard ? plan.fallback : plan.pipeline;
  const std::string file = params_file(spec, params_flag);
  if (!file.empty()) {
    *what = "loaded from " + file;
    return load_params(p, file);
  }
  *what = fmt::format("PyTorch default init, seed={}", spec.block.params.init_seed);
  return init_params(p, spec.block.params.init_seed);
}

Summary summarize(const Tensor& t) {
  Summary s;
  const float* d = t.data();
  const int64_t n = t.numel();
  double lo = std::numeric_limits<double>::infinity(), hi = -lo, sum = 0, sum2 = 0;
  int64_t nan = 0, inf = 0, zeros = 0, finite = 0;
#pragma omp parallel for reduction(min : lo) reduction(max : hi) reduction(+ : sum, sum2, nan, inf, zeros, finite)
  for (int64_t i = 0; i < n; ++i) {
    const double v = d[i];
    if (std::isnan(v)) { ++nan; continue; }
    if (std::isinf(v)) { ++inf; continue; }
    lo = std::min(lo, v), hi = std::max(hi, v), sum += v, sum2 += v * v, ++finite, zeros += (v == 0);
  }
  // FNV-1a over 1 Mi-element chunks in parallel, then over the chunks' hashes in order.
  const int64_t chunk = 1 << 20, chunks = (n + chunk - 1) / chunk;
  std::vector<uint64_t> part(static_cast<size_t>(chunks));
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    uint64_t h = 1469598103934665603ull;
    const auto* bytes = reinterpret_cast<const unsigned char*>(d + c * chunk);
    const int64_t len = std::min(chunk, n - c * chunk) * 4;
    for (int64_t i = 0; i < len; ++i) h = (h ^ bytes[i]) * 1099511628211ull;
    part[static_cast<size_t>(c)] = h;
  }
  uint64_t h = 1469598103934665603ull;
  for (uint64_t v : part) h = (h ^ v) * 1099511628211ull;
  s.checksum = h;
  s.nan = nan, s.inf = inf, s.zeros = zeros;
  if (finite > 0) {
    s.min = lo, s.max = hi, s.mean = sum / finite;
    s.std = std::sqrt(std::max(0.0, sum2 / finite - s.mean * s.mean));
  }
  return s;
}

std::string format_summary(const Summary& s) {
  return fmt::format("  min {:.6g}  max {:.6g}  mean {:.6g}  std {:.6g}\n  nan {}  inf {}  zeros {}\n  checksum {:016x} (FNV-1a 64 over 1 Mi-element chunks)\n",
                     s.min, s.max, s.mean, s.std, s.nan, s.inf, s.zeros, s.checksum);
}


}  // namespace fuseblock::cli
