// fuseblock profile [SPEC]: where the block's time goes on this GPU, per kernel and in total,
// against the device's memory ceilings measured in the same process (src/profile/profile.hpp);
// --ncu runs the same command again under Nsight Compute and adds its key metrics.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include <fmt/format.h>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/registry.hpp"
#include "cuda/executor/cuda_backend.hpp"
#include "cuda/runtime/device_memory.hpp"
#include "cuda/executor/executor.hpp"
#include "fuseblock/random.hpp"
#include "measure/device_run.hpp"
#include "profile/ncu_report.hpp"
#include "profile/profile.hpp"

namespace fuseblock::cli {
namespace {

struct ProfileOpts {
  SpecSource spec;
  int runs = 30;
  bool strict_fp32 = false, assume_finite = false, ncu = false, ncu_child = false;
  std::string ncu_log;
};

// The arguments that make the ncu child profile the same plan (and not recurse).
std::vector<std::string> child_args(const ProfileOpts& o) {
  std::vector<std::string> a = {"profile"};
  if (o.spec.text_given) a.insert(a.end(), {"--spec-text", o.spec.text});
  else if (!o.spec.path.empty()) a.push_back(o.spec.path);
  if (o.strict_fp32) a.push_back("--strict-fp32");
  if (o.assume_finite) a.push_back("--assume-finite");
  a.push_back("--ncu-child");
  return a;
}

int profile_command(const ProfileOpts& o) {
  std::string ncu;
  if (o.ncu && !o.ncu_child) {
    ncu = profile::find_on_path("ncu");
    if (ncu.empty())
      throw UserError("--ncu needs Nsight Compute, and `ncu` is not on PATH",
                      "install Nsight Compute (the CUDA toolkit ships it as bin/ncu) and add it to PATH, or run without --ncu");
  }
  // The user's own mistakes first (options, spec, parameters): they are found without a GPU.
  if (o.runs < 1) throw UserError("--runs must be at least 1", "use e.g. --runs 30");
  LoadedSpec spec = load_spec(o.spec);
  LowerOptions lo;
  lo.assume_finite = o.assume_finite;
  const Plan plan = lower(spec.block, lo);
  std::string params_what;
  const Params params = load_block_params(spec, plan, "", &params_what);
  if (numel(plan.pipeline.output_shape) == 0) throw UserError("nothing to profile: the block's output is empty");
  std::string why;
  if (!cuda::available(&why))
    throw UserError("profile needs a GPU: " + why,
                    "run it on a machine with an NVIDIA GPU; `fuseblock verify` checks the kernels without one");
  const Tensor x = uniform_tensor(plan.pipeline.input_shape, 0);

  if (o.ncu_child) {  // one plain run for Nsight Compute to profile: no probes, no timing
    auto ex = cuda::executor_for(plan, !o.strict_fp32);
    measure::DeviceRun run(plan, params, x);
    run.launch(*ex);
    cuda::synchronize();
    return 0;
  }
  std::cout << fmt::format("fuseblock profile: {} ({}, {})\n", spec.description,
                           plan.pipeline.fill_path() ? (plan.guard && !plan.assume_finite ? "fill path, guarded" : "fill path")
                                                     : "general path",
                           o.strict_fp32 ? "strict fp32" : "tf32 allowed");
  std::cout << fmt::format("input {} uniform [0, 1) seed 0; output {}; params {}\n", shape_str(plan.pipeline.input_shape),
                           shape_str(plan.pipeline.output_shape), params_what);
  std::cout << "compiling and measuring ...\n" << std::flush;
  profile::ProfileOptions po;
  po.allow_tf32 = !o.strict_fp32;
  po.runs = o.runs;
  const profile::ProfileReport rep = profile::profile_plan(plan, params, x, po);
  std::cout << rep.text() << std::flush;
  if (rep.unwritten) return 2;
  if (ncu.empty()) return 0;

  const std::string log = o.ncu_log.empty() ? fmt::format("/tmp/fuseblock-ncu-{}.csv", ::getpid()) : o.ncu_log;
  std::cout << fmt::format("\nNsight Compute ({}): one run, fb_ kernels only, clocks unlocked ...\n", ncu) << std::flush;
  const int rc = profile::run_under_ncu(ncu, child_args(o), log);
  std::ifstream f(log);
  std::stringstream report;
  report << f.rdbuf();
  const std::vector<profile::NcuKernel> kernels = profile::parse_ncu_raw_csv(report.str());
  if (rc != 0 || kernels.empty()) {
    const std::string text = report.str();
    std::cout << text.substr(text.size() > 3000 ? text.size() - 3000 : 0);
    throw UserError(fmt::format("ncu {} (exit code {}); its report is {}", kernels.empty() ? "reported no kernels" : "failed", rc, log),
                    "check that this user may read the GPU's performance counters (NVreg_RestrictProfilingToAdminUsers)");
  }
  std::cout << profile::ncu_summary(kernels);
  std::cout << fmt::format("ncu's full report: {}\n", log);
  return 0;
}

}  // namespace

void add_profile_command(CLI::App& app) {
  auto o = std::make_shared<ProfileOpts>();
  CLI::App* cmd = app.add_subcommand(
      "profile", "On the GPU: time per kernel and in total, GB/s, GFLOP/s, % of the floor against the device's measured "
                 "ceilings, registers, spills, occupancy and what limits it");
  add_spec_options(cmd, o->spec);
  cmd->add_option("--runs", o->runs, "Timed runs (the median is reported), after 5 warm-up runs")->capture_default_str();
  cmd->add_flag("--strict-fp32", o->strict_fp32, "No TF32 matrix units (PyTorch's allow_tf32=False)");
  cmd->add_flag("--assume-finite", o->assume_finite, "Profile the plan without the guard");
  cmd->add_flag("--ncu", o->ncu, "Also run once under Nsight Compute (ncu on PATH) and print DRAM throughput, "
                                 "achieved occupancy and the top stall reasons");
  cmd->add_option("--ncu-log", o->ncu_log, "Keep ncu's full CSV report here (default: a file under /tmp)");
  cmd->add_flag("--ncu-child", o->ncu_child, "")->group("");  // the run ncu profiles: one plain run, no recursion
  cmd->footer(
      "Bytes counted per kernel: each tensor it reads or writes once (the input once per kernel that reads it, the output "
      "once, weights and bias, scratch: statistics partials, per-(n, c) scale and mean, guard flags). GFLOP/s: "
      "2*N*C_out*prod(out spatial)*C_in*prod(kernel) per conv pass. Floor: those bytes at the ceiling measured now (a memset "
      "of the output for write-only steps, a device-to-device copy for the rest). Occupancy: the driver's resident blocks "
      "per SM x warps per block over the SM's maximum warps; the limiting resource from the kernel's registers, shared "
      "memory and threads against the SM's limits.");
  registry()["profile"] = [o] { return profile_command(*o); };
}

}  // namespace fuseblock::cli
