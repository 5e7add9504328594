#include "profile/profile.hpp"

#include <ctime>

#include <fmt/format.h>

#include "cuda/runtime/device_context.hpp"
#include "cuda/executor/executor.hpp"
#include "measure/device_run.hpp"
#include "measure/step_timer.hpp"
#include "tune/tuning_key.hpp"

namespace fuseblock::profile {
namespace {

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  return buf;
}

std::string mb(double bytes) { return fmt::format("{:.1f}", bytes / 1e6); }

}  // namespace

double KernelIo::read_bytes() const {
  double b = 0;
  for (const TensorBytes& t : reads) b += t.bytes;
  return b;
}

double KernelIo::write_bytes() const {
  double b = 0;
  for (const TensorBytes& t : writes) b += t.bytes;
  return b;
}

KernelIo step_io(const cuda::LaunchProgram& p, const cuda::Step& s) {
  KernelIo io;
  io.kernel = s.name;
  io.note = s.note;
  io.flops = s.gated ? 0.0 : s.flops;
  auto bytes = [&](const cuda::BufferRef& r) {
    return TensorBytes{cuda::buffer_name(r), static_cast<double>(p.bytes_of(r))};
  };
  if (s.gated) {
    io.reads.push_back(bytes(cuda::BufferRole::GuardFlags));
    return io;
  }
  for (const cuda::BufferRef& r : s.reads) io.reads.push_back(bytes(r));
  for (const cuda::BufferRef& r : s.writes) io.writes.push_back(bytes(r));
  return io;
}

ProfileReport profile_plan(const Plan& plan, const Params& params, const Tensor& x, const ProfileOptions& o) {
  const cuda::DeviceInfo& dev = cuda::use_device();
  ProfileReport rep;
  const tune::DeviceIdentity id = tune::current_device_identity();
  rep.device = dev.describe();
  rep.driver = id.driver;
  rep.nvrtc = id.nvrtc;
  rep.date = utc_now();
  rep.warmup = o.warmup;
  rep.runs = o.runs;
  std::shared_ptr<const cuda::Executor> ex = cuda::executor_for(plan, o.allow_tf32);
  const cuda::LaunchProgram& prog = ex->program();
  const bool tuned = ex->program().source != cuda::default_program(plan, o.allow_tf32 && dev.cc_major >= 8,
                                                                   cuda::current_device_limits()).source;
  rep.conv_knobs = fmt::format("strategy {} ({}){}", prog.strategy, prog.config,
                               tuned ? ", from the tuning cache" : ", the selection's default");

  measure::DeviceRun run(plan, params, x);
  measure::StepTimer timer;
  rep.flush_bytes = timer.flush_bytes();
  rep.ceilings = measure::measure_ceilings(run.output(), timer, o.warmup, o.runs);
  const std::vector<cuda::KernelLaunch>& launches = ex->launches();
  // The run as a caller sees it (events around it only), then step by step (an event between
  // steps, which adds a little) for the breakdown.
  const measure::Timing whole = timer.time(1, o.warmup, o.runs, [&] { run.poison_output(); },
                                           [&](const std::function<void(size_t)>& record) {
                                             record(0);
                                             run.launch(*ex);
                                             record(1);
                                           });
  const measure::Timing t = timer.time(
      launches.size(), o.warmup, o.runs, [&] { run.poison_output(); },
      [&](const std::function<void(size_t)>& record) { run.launch(*ex, record); });
  rep.total_ms = whole.total_ms;
  rep.stepwise_total_ms = t.total_ms;
  run.download_output(&rep.unwritten);

  const measure::SmLimits sm = measure::current_sm_limits();
  const measure::Ceilings& c = rep.ceilings;
  for (size_t i = 0; i < launches.size(); ++i) {
    // Profile runs with explicit seeds: a step only a caller's device state launches never ran.
    if (prog.steps[i].when == cuda::StepWhen::AdvanceDropoutState) continue;
    const cuda::KernelLaunch& l = launches[i];
    StepProfile s;
    s.kernel = l.kernel;
    s.ms = t.step_ms[i];
    s.io = step_io(prog, prog.steps[i]);
    s.driver_memset = l.driver_memset;
    if (!l.driver_memset && !l.library) {
      const cuda::KernelResources* r = ex->compiled().find(l.kernel);
      s.registers = r ? r->registers : 0;
      s.spill_bytes = r ? r->spill_store_bytes + r->spill_load_bytes : 0;
      s.stack_bytes = r ? r->stack_bytes : 0;
      s.threads = l.threads;
      s.shared_bytes = l.dynamic_smem + (r ? static_cast<size_t>(r->shared_bytes) : 0);
      s.blocks_per_sm = l.blocks_per_sm;
      s.occupancy = measure::occupancy(s.registers, static_cast<int>(l.threads), s.shared_bytes, sm);
      // Occupancy from the driver's resident blocks (the calculator only names the limit).
      s.active_warps = l.blocks_per_sm * static_cast<int>((l.threads + 31) / 32);
      s.max_warps = sm.max_warps();
    }
    const double gbs = s.io.read_bytes() > 0 ? c.copy_gbs : c.write_gbs;
    s.floor_ms = gbs > 0 ? s.io.bytes() / (gbs * 1e6) : 0;
    rep.steps.push_back(s);
  }
  rep.floor_bytes = cuda::floor_bytes(prog);
  rep.floor_write_only = rep.floor_bytes == static_cast<double>(prog.bytes_of(cuda::BufferRole::Output));
  const double floor_gbs = rep.floor_write_only ? c.write_gbs : c.copy_gbs;
  rep.floor_ms = floor_gbs > 0 ? rep.floor_bytes / (floor_gbs * 1e6) : 0;
  return rep;
}

std::string ProfileReport::text() const {
  std::string s;
  s += fmt::format("device: {}, driver {}, NVRTC {}, {}\n", device, driver, nvrtc, date);
  s += fmt::format("conv knobs: {}\n", conv_knobs);
  s += fmt::format("method: CUDA events; {} warm-up runs, then the median of {}; before every run the "
                   "output is poisoned and the L2 flushed ({:.0f} MB memset)\n",
                   warmup, runs, flush_bytes / 1e6);
  s += fmt::format("ceilings (measured now, on the output buffer): write {:.0f} GB/s (memset of {} MB, {:.4f} ms); "
                   "read+write {:.0f} GB/s (device-to-device copy, {} MB read + written, {:.4f} ms)\n\n",
                   ceilings.write_gbs, mb(ceilings.write_bytes), ceilings.write_ms, ceilings.copy_gbs,
                   mb(ceilings.copy_bytes), ceilings.copy_ms);
  s += fmt::format("{:<18} {:>8} {:>8} {:>8} {:>7} {:>8} {:>8} {:>6}  {:>4} {:>5} {:>4} {:>6} {:>6} {:>10}  {}\n", "step", "ms",
                   "MB read", "MB wrote", "GB/s", "GFLOP/s", "floor ms", "floor%", "regs", "spill", "thr", "smem KB",
                   "blk/SM", "occupancy", "limited by");
  double bytes = 0, flops = 0;
  for (const StepProfile& st : steps) {
    bytes += st.io.bytes(), flops += st.io.flops;
    const std::string gflops = st.io.flops > 0 ? fmt::format("{:.0f}", st.io.flops / (st.ms * 1e6)) : "-";
    const std::string pct = st.floor_ms > 0 && st.ms > 0 ? fmt::format("{:.0f}%", 100.0 * st.floor_ms / st.ms) : "-";
    s += fmt::format("{:<18} {:>8.4f} {:>8} {:>8} {:>7.0f} {:>8} {:>8.4f} {:>6}", st.kernel, st.ms, mb(st.io.read_bytes()),
                     mb(st.io.write_bytes()), st.ms > 0 ? st.io.bytes() / (st.ms * 1e6) : 0.0, gflops, st.floor_ms, pct);
    if (st.driver_memset) {
      s += "  (driver memset: no kernel of ours)\n";
      continue;
    }
    const measure::Occupancy& oc = st.occupancy;
    const std::string occ = fmt::format("{}/{} {:.0f}%", st.active_warps, st.max_warps,
                                        st.max_warps ? 100.0 * st.active_warps / st.max_warps : 0.0);
    s += fmt::format("  {:>4} {:>5} {:>4} {:>6.1f} {:>6} {:>10}  {}{}\n", st.registers, st.spill_bytes, st.threads,
                     st.shared_bytes / 1024.0, st.blocks_per_sm, occ, oc.limited_by,
                     oc.blocks == st.blocks_per_sm ? "" : fmt::format(" (calculator: {} blocks)", oc.blocks));
  }
  s += fmt::format("{:<18} {:>8.4f} {:>17} {:>7.0f} {:>8} {:>8.4f} {:>6}\n", "total", total_ms, mb(bytes) + " MB",
                   total_ms > 0 ? bytes / (total_ms * 1e6) : 0.0, flops > 0 ? fmt::format("{:.0f}", flops / (total_ms * 1e6)) : "-",
                   floor_ms, total_ms > 0 ? fmt::format("{:.0f}%", 100.0 * floor_ms / total_ms) : "-");
  s += fmt::format("total: events around the whole run only; the steps were timed in a second series with an event "
                   "between each (first to last {:.4f} ms)\n",
                   stepwise_total_ms);
  s += fmt::format("total floor: the block's fewest bytes, {} MB (output written once{}), at the {} ceiling\n",
                   mb(floor_bytes), floor_write_only ? "; an unguarded fill reads no input" : ", input read once",
                   floor_write_only ? "write" : "read+write");
  s += unwritten == 0 ? "output: every element written (poisoned before each run, checked after the last)\n"
                      : fmt::format("output: FAIL: {} elements never written\n", unwritten);
  s += "bytes counted per step (each tensor once: the input once per kernel that reads it, the output once, weights, "
       "scratch; GFLOP/s counts 2*N*C_out*prod(out)*C_in*prod(k) per conv pass):\n";
  for (const StepProfile& st : steps) {
    std::string r, w;
    for (const TensorBytes& t : st.io.reads) r += fmt::format("{}{} {}", r.empty() ? "" : ", ", t.tensor, mb(t.bytes));
    for (const TensorBytes& t : st.io.writes) w += fmt::format("{}{} {}", w.empty() ? "" : ", ", t.tensor, mb(t.bytes));
    s += fmt::format("  {:<18} reads [{}] writes [{}] MB{}{}\n", st.kernel, r.empty() ? "-" : r, w.empty() ? "-" : w,
                     st.io.flops > 0 ? fmt::format(", {:.2f} GFLOP", st.io.flops / 1e9) : "", st.io.note.empty() ? "" : "; " + st.io.note);
  }
  return s;
}

}  // namespace fuseblock::profile
