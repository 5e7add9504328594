#include "verify/verify_plan.hpp"

#include <map>

#include <fmt/format.h>

#include "cuda/executor/cuda_backend.hpp"
#include "cuda/runtime/device_context.hpp"
#include "cuda/executor/executor.hpp"
#include "cuda/codegen/emit_program_options.hpp"
#include "cuda/runtime/nvrtc_compile.hpp"
#include "verify/kernel_signature.hpp"

namespace fuseblock::verify {
namespace {

bool is_pow2(unsigned v) { return v && !(v & (v - 1)); }

bool writable_kind(cuda::BufferKind k) {
  return k == cuda::BufferKind::Output || k == cuda::BufferKind::Scratch || k == cuda::BufferKind::Intermediate;
}

// Every buffer a step writes is the output, declared scratch or a declared intermediate; scratch
// stays far below a full-size intermediate (an intermediate is full-size by design, and declared).
void plan_checks(const Plan& plan, const cuda::LaunchProgram& prog, VerifyReport& r) {
  for (const cuda::Step& st : prog.steps)
    for (const cuda::BufferRef& ref : st.writes) {
      const cuda::Buffer* b = prog.find(ref);
      const bool ok = b && writable_kind(b->kind);
      r.checks.push_back({"plan", fmt::format("{} writes {}", st.name, cuda::buffer_name(ref)), ok,
                          ok ? fmt::format("{} ({} B)", cuda::buffer_kind_name(b->kind), b->bytes)
                             : "not the output, declared scratch or a declared intermediate"});
    }
  size_t scratch = 0, intermediates = 0;
  for (const cuda::Buffer& b : prog.buffers) {
    // A library's own workspace (cuDNN's, sized on the device) is the library's, not a buffer of ours;
    // an engine's layout copies of the input and weights are checked against their sources below.
    if (b.kind == cuda::BufferKind::Scratch && b.ref.role != cuda::BufferRole::LibraryWorkspace && !b.copy_of)
      scratch += b.bytes;
    if (b.kind == cuda::BufferKind::Intermediate) ++intermediates;
  }
  // Scratch holds statistics: a few values per (sample, channel) (the norm's scale and mean, a
  // tile's partials) and per-tile partials that grow with the output. So the bound is an eighth
  // of the output plus 32 B per (sample, channel): an output of a few elements per channel (a 4x4
  // map, a 1x1 conv output) has statistics as large as itself, and is not an intermediate.
  const int64_t out_bytes = static_cast<int64_t>(prog.bytes_of(cuda::BufferRole::Output));
  const Shape& out_shape = plan.pipeline.output_shape;
  const int64_t rows = out_shape.size() >= 2 ? out_shape[0] * out_shape[1] : 1;
  const int64_t stats_allowance = 32 * rows;
  const bool small = out_bytes == 0 || static_cast<int64_t>(scratch) * 8 <= out_bytes + 8 * stats_allowance;
  r.checks.push_back({"plan", "scratch is far below a full-size intermediate", small,
                      fmt::format("{} B of scratch for a {} B output ({:.3f}%; at most 1/8 of it + 32 B per (sample, channel))",
                                  scratch, out_bytes,
                                  out_bytes ? 100.0 * static_cast<double>(scratch) / static_cast<double>(out_bytes) : 0.0)});
  // An engine's layout copy (a strategy's own scratch): its source in the layout the copy states
  // (rows, channels padded to a multiple, rows padded), no more.
  for (const cuda::Buffer& b : prog.buffers) {
    if (!b.copy_of) continue;
    const cuda::LayoutCopy& c = *b.copy_of;
    const size_t source = prog.bytes_of(c.source), bound = cuda::layout_copy_bound_bytes(c, source);
    r.checks.push_back({"plan", fmt::format("{} is {} in its layout, padded as declared", cuda::buffer_name(b.ref),
                                            cuda::buffer_name(c.source)),
                        source > 0 && b.bytes <= bound,
                        fmt::format("{} B for a {} B {} (at most {} B: {} rows, {} channels padded to a multiple of {})",
                                    b.bytes, source, cuda::buffer_name(c.source), bound, c.rows, c.channels,
                                    c.channel_multiple)});
  }
  r.checks.push_back({"plan", fmt::format("{} declares {} intermediate{}", prog.strategy, intermediates, intermediates == 1 ? "" : "s"),
                      true, intermediates ? "stored once by design (the strategy's one intermediate)" : "nothing but the output is stored"});
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

VerifyReport verify_source(const Plan& plan, const cuda::LaunchProgram& prog, const std::string& source,
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
    const cuda::Step* step = prog.find_step(k.name);
    if (!step)
      r.checks.push_back({"plan", fmt::format("{} is a step of the program", k.name), false,
                          "a kernel in the source that the LaunchProgram never launches"});
    for (size_t i = 0; i < k.params.size(); ++i) {
      const KernelParam& p = k.params[i];
      if (!p.pointer) continue;
      if (!p.writable) {
        rule.input_params.insert(static_cast<int>(i));
        continue;
      }
      rule.allowed_params.insert(static_cast<int>(i));
      // The role the LaunchProgram binds to this parameter, and that buffer's kind.
      const cuda::Arg* arg = step && i < step->args.size() ? &step->args[i] : nullptr;
      const cuda::Buffer* b = arg && arg->kind == cuda::ArgKind::Buffer ? prog.find(arg->ref) : nullptr;
      const bool ok = b && writable_kind(b->kind);
      std::string detail;
      if (ok)
        detail = fmt::format("bound to {} ({})", cuda::buffer_name(b->ref), cuda::buffer_kind_name(b->kind));
      else if (!arg)
        detail = "no argument of the LaunchProgram binds it";
      else if (arg->kind != cuda::ArgKind::Buffer)
        detail = "bound to a scalar, not a buffer";
      else
        detail = fmt::format("bound to {}, which is {}", cuda::buffer_name(arg->ref),
                             prog.find(arg->ref) ? cuda::buffer_kind_name(prog.find(arg->ref)->kind) : "not a declared buffer");
      r.checks.push_back({"plan", fmt::format("{} may write '{}'", k.name, p.name), ok,
                          ok ? detail : "a writable pointer that is not an output or declared scratch: " + detail});
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
  // On the GPU: the program the runtime runs (tuned where the cache says); else the default.
  const bool on_gpu = gpu && opts.arch.empty();
  std::shared_ptr<const cuda::Executor> ex = on_gpu ? cuda::executor_for(plan, opts.allow_tf32) : nullptr;
  const cuda::LaunchProgram prog = ex ? ex->program() : cuda::default_program(plan, opts.allow_tf32);
  if (!prog.has_kernels()) {
    VerifyReport r;
    r.arch = arch;
    plan_checks(plan, prog, r);
    r.checks.push_back({"ptx", "no kernels: the run is driver memsets alone", true, ""});
    return r;
  }
  VerifyReport r = verify_source(plan, prog, prog.source, arch);
  if (on_gpu) {
    r.on_gpu = true;
    const cuda::DeviceInfo& dev = cuda::use_device();
    for (const cuda::KernelLaunch& l : ex->launches()) {
      if (l.driver_memset) {  // the driver's own fill: no grid of ours to check
        r.checks.push_back({"launch", l.kernel + " by cuMemsetD32Async", true, ""});
        continue;
      }
      if (l.library) {  // cuDNN's own launches: no grid of ours to check
        r.checks.push_back({"launch", l.kernel + " by cuDNN", true, ""});
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
