// fuseblock run [SPEC]: runs a block on the GPU or the CPU and prints the output's summary, the
// plan and the time. --input/--output read and write .npy or safetensors tensors.
#include <chrono>
#include <iostream>
#include <memory>
#include <omp.h>

#include <fmt/format.h>

#include "cli/commands.hpp"
#include "cli/output_path.hpp"
#include "cli/common.hpp"
#include "cli/registry.hpp"
#include "fuseblock/io.hpp"
#include "params/file_io.hpp"
#include "fuseblock/random.hpp"

namespace fuseblock::cli {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

struct RunOpts {
  SpecSource spec;
  std::string device = "auto", input, output, params, channel_add;
  uint64_t input_seed = 0;
  int repeat = 1;
  bool assume_finite = false, no_simplify = false, strict_fp32 = false, quiet = false;
};

int run_command(const RunOpts& o) {
  auto t0 = Clock::now();
  if (o.repeat < 1) throw UserError(fmt::format("--repeat must be at least 1, got {}", o.repeat), "use e.g. --repeat 10");
  LoadedSpec spec = load_spec(o.spec);
  if (!o.output.empty())
    check_output_is_not_an_input(o.output, {{"--input", o.input.empty() ? "" : detail::tensor_file(o.input)},
                                            {"--channel-add", o.channel_add.empty() ? "" : detail::tensor_file(o.channel_add)},
                                            {"the parameters", params_file(spec, o.params)},
                                            {"the spec", o.spec.path == "-" ? "" : o.spec.path}});
  LowerOptions lo;
  lo.assume_finite = o.assume_finite;
  lo.simplify = !o.no_simplify;
  Plan plan = lower(spec.block, lo);
  std::string params_what;
  Params params = load_block_params(spec, plan, o.params, &params_what);
  const double plan_ms = ms_since(t0);

  std::string why_not_cuda;
  const DType dtype = plan.pipeline.types.storage;
  const Device device = resolve_device(parse_device(o.device), plan, &why_not_cuda);
  auto t1 = Clock::now();
  Tensor x;
  std::string input_what;
  if (!o.input.empty()) {
    x = load_tensor(o.input);
    // No silent conversion: a file in another dtype than the block's is most likely the wrong file.
    if (x.dtype() != dtype)
      throw UserError(fmt::format("{} holds {} data, but the block's input is {}", o.input, dtype_name(x.dtype()),
                                  dtype_name(dtype)),
                      fmt::format("write the input as {} (e.g. x.astype(numpy.{}) or tensor.to(torch.{})), or change "
                                  "the spec's input line",
                                  dtype_name(dtype), dtype_info(dtype).long_name, dtype_info(dtype).long_name));
    input_what = "loaded from " + o.input;
  } else {
    x = rounded_to(uniform_tensor(plan.pipeline.input_shape, o.input_seed), dtype);
    input_what = fmt::format("uniform [0, 1) seed={}{}", o.input_seed,
                             dtype == DType::F32 ? "" : fmt::format(", rounded to {}", dtype_name(dtype)));
  }
  // The block's per-(sample, channel) input (add_per_sample_channel): run() checks its shape, and
  // that it is given exactly when the block has the op.
  Tensor add;
  if (!o.channel_add.empty()) {
    if (!plan.pipeline.channel_add())
      throw UserError(fmt::format("--channel-add {} was given, but the block has no add_per_sample_channel", o.channel_add),
                      fmt::format("add the line 'add_per_sample_channel' after the conv (it takes a {} input), or "
                                  "leave --channel-add out",
                                  shape_str(channel_add_shape(plan))));
    add = load_tensor(o.channel_add);
    if (add.dtype() != dtype)
      throw UserError(fmt::format("{} holds {} data, but the block's storage is {}", o.channel_add,
                                  dtype_name(add.dtype()), dtype_name(dtype)),
                      fmt::format("write it as {} of shape {}", dtype_name(dtype), shape_str(channel_add_shape(plan))));
  } else if (plan.pipeline.channel_add()) {
    throw UserError(fmt::format("the block adds a per-(sample, channel) input (add_per_sample_channel) and "
                                "--channel-add was not given"),
                    fmt::format("give --channel-add FILE: .npy or .safetensors[:NAME] of shape {}, in {}",
                                shape_str(channel_add_shape(plan)), dtype_name(dtype)));
  }
  const double input_ms = ms_since(t1);

  RunOptions ro;
  ro.device = device;
  ro.allow_tf32 = !o.strict_fp32;
  Tensor y;
  double run_ms = 0, best_ms = 1e300;
  for (int i = 0; i < std::max(1, o.repeat); ++i) {
    auto t2 = Clock::now();
    y = plan.pipeline.channel_add() ? run(plan, params, x, add, ro) : run(plan, params, x, ro);
    run_ms = ms_since(t2);
    best_ms = std::min(best_ms, run_ms);
  }
  if (!o.output.empty()) save_tensor(o.output, y);

  std::string dev = device == Device::Cuda ? "cuda" : fmt::format("cpu ({} threads)", omp_get_max_threads());
  if (device == Device::Cpu && !why_not_cuda.empty() && o.device == "auto") dev += " — no GPU used: " + why_not_cuda;
  std::cout << fmt::format("fuseblock run: {} on {}\n", spec.description, dev);
  std::cout << fmt::format("input   {}  {}\n", shape_str(x.shape()), input_what);
  std::cout << fmt::format("params  {}\n", params_what);
  std::cout << fmt::format("output  {}{}  {:.1f} MB{}\n", dtype_name(y.dtype()), shape_str(y.shape()),
                           y.numel() * static_cast<double>(dtype_info(y.dtype()).bytes) / 1e6,
                           o.output.empty() ? "" : "  written to " + o.output);
  std::cout << format_summary(summarize(y));
  if (!o.quiet) std::cout << dump(plan);
  std::cout << fmt::format("time    parse+plan+params {:.1f} ms, input {:.1f} ms, run {:.1f} ms{} (host wall clock, "
                           "copies included; `fuseblock profile` times the kernels)\n",
                           plan_ms, input_ms, best_ms, o.repeat > 1 ? fmt::format(" (best of {})", o.repeat) : "");
  return 0;
}

}  // namespace

void add_run_command(CLI::App& app) {
  auto o = std::make_shared<RunOpts>();
  CLI::App* cmd = app.add_subcommand("run", "Run a block and print the output's shape, statistics, NaN count, checksum, plan and time");
  add_spec_options(cmd, o->spec);
  cmd->add_option("--device", o->device, "auto (GPU if there is one, else CPU), cpu or cuda")->capture_default_str();
  cmd->add_option("--input", o->input, "Input tensor in the block's dtype: .npy (float32 or float16, C order), file.safetensors or file.safetensors:NAME (F32, BF16, F16); default: uniform [0, 1) from --seed");
  cmd->add_option("--channel-add", o->channel_add, "The per-(sample, channel) input of a block with add_per_sample_channel: shape [N, C_out], the block's dtype (.npy or .safetensors[:NAME])");
  cmd->add_option("--seed", o->input_seed, "Seed of the random input when --input is not given")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& v) { return v.rfind('-', 0) == 0 ? "a seed is in [0, 2^64), not " + v : std::string(); }, "",
          "seed"));
  cmd->add_option("--output", o->output, "Write the output tensor here, in the block's dtype (.npy, not for bf16, or .safetensors; written atomically)");
  cmd->add_option("--params", o->params, "Parameters from this safetensors file (conv.weight, conv.bias, norm.weight, norm.bias); default: the spec's params line");
  cmd->add_option("--repeat", o->repeat, "Run this many times and report the best time")->capture_default_str();
  cmd->add_flag("--assume-finite", o->assume_finite, "Skip the guard: promise that the input is finite and bounded");
  cmd->add_flag("--no-simplify", o->no_simplify, "Run the exact block as written (no folding), e.g. to compare");
  cmd->add_flag("--strict-fp32", o->strict_fp32, "CUDA: no TF32 matrix units (PyTorch's allow_tf32=False)");
  cmd->add_flag("-q,--quiet", o->quiet, "Do not print the plan");
  registry()["run"] = [o] { return run_command(*o); };
}

}  // namespace fuseblock::cli
