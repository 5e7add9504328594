#include "verify/verify_plan.hpp"

#include <map>

#include <fmt/format.h>

#include "cuda/cuda_backend.hpp"
#include "cuda/device_context.hpp"
#include "cuda/executor.hpp"
#include "cuda/nvrtc_compile.hpp"
#include "verify/kernel_signature.hpp"

namespace fuseblock::verify {
namespace {

// Writable kernel parameters and the plan tensor each one is.
const std::map<std::string, std::string>& writable_roles() {
  static const std::map<std::string, std::string> roles = {
      {"y", "output"}, {"flags", "guard_flags"}, {"partials", "stats"}, {"nscale", "stats"}, {"nmean", "stats"},
      {"ab", "stats"}};
  return roles;
}

bool is_pow2(unsigned v) { return v && !(v & (v - 1)); }

void plan_checks(const Plan& plan, const cuda::EmittedProgram& prog, VerifyReport& r) {
  for (const KernelDesc& k : plan.kernels)
    for (const std::string& w : k.writes)
      r.checks.push_back({"plan", fmt::format("{} writes {}", k.name, w), w == "output" || w == "stats" || w == "guard_flags",
                          w == "output" || w == "stats" || w == "guard_flags" ? "" : "not an output or declared scratch"});
  // The executor's own scratch layout; full-size would be the output's size.
  const int64_t scratch = static_cast<int64_t>(cuda::scratch_layout(prog, plan.pipeline.output_shape.at(0)).bytes);
  const int64_t out_bytes = numel(plan.pipeline.output_shape) * 4;
  const bool small = out_bytes == 0 || scratch * 8 <= out_bytes;
  r.checks.push_back({"plan", "scratch is far below a full-size intermediate", small,
                      fmt::format("{} B of scratch for a {} B output ({:.3f}%)", scratch, out_bytes,
                                  out_bytes ? 100.0 * scratch / out_bytes : 0.0)});
}

}  // namespace

bool VerifyReport::ok() const {
  for (const Check& c : checks)
    if (!c.ok) return false;
  return true;
}

std::string VerifyReport::text() const {
  std::string s;
  std::string level;
  int failed = 0;
  std::vector<Check> ordered;
  for (const char* l : {"plan", "ptx", "launch"})
    for (const Check& c : checks)
      if (c.level == l) ordered.push_back(c);
  for (const Check& c : ordered) {
    if (c.level != level) s += fmt::format("{} level\n", level = c.level);
    s += fmt::format("  {}  {}{}\n", c.ok ? "ok  " : "FAIL", c.what, c.detail.empty() ? "" : ": " + c.detail);
    failed += !c.ok;
  }
  s += "PTX store sites (" + arch + "):\n";
  for (const PtxKernelReport& k : kernels) s += "  " + k.describe();
  s += failed ? fmt::format("verify: {} of {} checks FAILED\n", failed, checks.size())
              : fmt::format("verify: all {} checks passed\n", checks.size());
  return s;
}

VerifyReport verify_source(const Plan& plan, const cuda::EmittedProgram& prog, const std::string& source,
                           const std::string& arch) {
  VerifyReport r;
  r.arch = arch;
  plan_checks(plan, prog, r);

  cuda::CompileRequest req;
  req.source = source;
  req.arch = arch;
  req.options = cuda::program_compile_options();
  const cuda::CompiledProgram compiled = cuda::compile_program(req);
  const std::vector<KernelSignature> sigs = parse_kernel_signatures(source);
  std::vector<KernelRule> rules;
  for (const KernelSignature& k : sigs) {
    KernelRule rule{k.name, {}, {}};
    for (size_t i = 0; i < k.params.size(); ++i) {
      const KernelParam& p = k.params[i];
      if (!p.pointer) continue;
      if (!p.writable) {
        rule.input_params.insert(static_cast<int>(i));
        continue;
      }
      rule.allowed_params.insert(static_cast<int>(i));
      auto role = writable_roles().find(p.name);
      r.checks.push_back({"plan", fmt::format("{} may write '{}'", k.name, p.name), role != writable_roles().end(),
                          role != writable_roles().end() ? "the " + role->second
                                                         : "a writable pointer that is not an output or declared scratch"});
    }
    rules.push_back(rule);
    const bool bs_ok = k.launch_bound_threads == 0 || (is_pow2(static_cast<unsigned>(k.launch_bound_threads)) &&
                                                       k.launch_bound_threads >= 32 && k.launch_bound_threads <= 1024);
    r.checks.push_back({"launch", fmt::format("{} block size {}", k.name, k.launch_bound_threads), bs_ok && k.launch_bound_threads > 0,
                        k.launch_bound_threads == 0 ? "no __launch_bounds__" : bs_ok ? "" : "not a power of two in [32, 1024]"});
  }
  r.kernels = check_ptx_stores(compiled.ptx, rules);
  for (const PtxKernelReport& k : r.kernels) {
    int bad = 0;
    for (const StoreSite& s : k.stores) bad += !s.allowed;
    r.checks.push_back({"ptx", fmt::format("{}: {} global store sites, every address from an output or scratch pointer", k.name, k.stores.size()),
                        bad == 0, bad ? fmt::format("{} store(s) through other addresses", bad) : ""});
    r.checks.push_back({"ptx", fmt::format("{}: no local memory", k.name), k.local_uses.empty(),
                        k.local_uses.empty() ? "" : fmt::format("{} local-memory instructions", k.local_uses.size())});
    if (const cuda::KernelResources* res = compiled.find(k.name)) {
      const int spill = res->spill_store_bytes + res->spill_load_bytes;
      r.checks.push_back({"ptx", fmt::format("{}: {} registers, no spills", k.name, res->registers), spill == 0 && res->stack_bytes == 0,
                          spill || res->stack_bytes ? fmt::format("{} B spilled, {} B stack", spill, res->stack_bytes) : ""});
    }
  }
  return r;
}

VerifyReport verify_plan(const Plan& plan, const VerifyOptions& opts) {
  std::string why;
  const bool gpu = cuda::available(&why);
  std::string arch = opts.arch;
  if (arch.empty()) arch = gpu ? cuda::use_device().arch() : "sm_90";
  const cuda::EmittedProgram prog = cuda::emit_program(plan, opts.allow_tf32);
  VerifyReport r = verify_source(plan, prog, prog.source, arch);
  if (gpu && opts.arch.empty()) {
    r.on_gpu = true;
    const cuda::DeviceInfo& dev = cuda::use_device();
    for (const cuda::KernelLaunch& l : cuda::executor_for(plan, opts.allow_tf32)->launches()) {
      if (l.driver_memset) {  // the driver's own fill of the output: no grid of ours to check
        r.checks.push_back({"launch", "output written by cuMemsetD32Async (a constant fill, no dropout mask)", true, ""});
        continue;
      }
      const bool ok = l.grid_x > 0 && l.grid_x <= 0x7fffffffu && l.grid_y > 0 && l.grid_y <= 65535 &&
                      l.dynamic_smem <= static_cast<size_t>(dev.smem_per_block_optin) && l.blocks_per_sm > 0;
      r.checks.push_back({"launch", fmt::format("{} grid ({}, {}) x {} threads, {} B shared, {} blocks/SM", l.kernel, l.grid_x, l.grid_y,
                                                l.threads, l.dynamic_smem, l.blocks_per_sm),
                          ok, ok ? "" : "outside the device's limits"});
    }
  }
  return r;
}

}  // namespace fuseblock::verify
