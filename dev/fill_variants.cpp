// HISTORY: this harness ran against commit cb7f6ab (before the conv strategy interface), where
// its knobs (FillOptions, GuardOptions, ConvTuning::lean, the FBL_* macros) still lived in src/;
// its numbers are in docs/benchmarks.md. It is no longer built: to rerun it, check that commit out
// (`git worktree add /tmp/fb-cb7f6ab cb7f6ab`) and run `scripts/gpu-suite.sh dev,lean` there.
// dev: numbered versions of the fill path (llm.c dev/cuda style), each checked against the CPU
// backend bit for bit and timed like the benchmark (events, warm-up, median of 50, L2 flushed by a
// 256 MB write, output poisoned before every run). Problem 83's shape.
//  v1-v8:  the fill kernel fb_fill (writes the fill, checks the guard in the same pass), guarded
//          and with assume_finite. Its winner's options are FillOptions' defaults
//          (src/cuda/emit_fill.hpp); it still serves fills with a dropout mask.
//  v9-v14: a constant fill (no mask, problem 83's case): cuMemsetD32Async of the output plus the
//          read-only guard kernel fb_guard, in either order, unroll and grid per version. The
//          winner is GuardOptions' default and guard_blocks_per_sample().
//  v15-v21: the whole guarded run, the three gated fallback launches included (they exit at once
//          when no sample failed): as the executor runs it, with and without an event between
//          steps, then on a module of the same program loaded here with the gated launches
//          varied (plain, shared-memory carveout, programmatic dependent launch, an early
//          trigger). v19 (programmatic dependent launch, no trigger) is what the executor does.
//   fuseblock_dev_fill [reps]
#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "cpu/cpu_backend.hpp"
#include "cuda/cuda_backend.hpp"
#include "cuda/device_context.hpp"
#include "cuda/device_memory.hpp"
#include "cuda/driver_api.hpp"
#include "cuda/emit_common.hpp"
#include "cuda/emit_fill.hpp"
#include "cuda/emit_program.hpp"
#include "cuda/executor.hpp"
#include "cuda/nvrtc_compile.hpp"
#include "fuseblock/fuseblock.hpp"
#include "fuseblock/random.hpp"

using namespace fuseblock;

namespace {

struct Version {
  const char* name;
  cuda::FillOptions o;
};

const Version kVersions[] = {
    {"v1 stcs, unroll 2, guard after", {0, true, false, 2}},
    {"v2 plain stores", {0, false, false, 2}},
    {"v3 guard first", {0, true, true, 2}},
    {"v4 unroll 4", {0, true, false, 4}},
    {"v5 8 blocks/SM (32 regs)", {8, true, false, 2}},
    {"v6 8 blocks/SM, guard first", {8, true, true, 2}},
    {"v7 guard first, plain, unroll 4", {0, false, true, 4}},
    {"v8 v7 with stcs", {0, true, true, 4}},
};

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

constexpr uint32_t kPoison = 0x7fa00001u;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Runs `body` 5 + reps times; before each run y is poisoned and the L2 flushed. body(rec) calls
// rec(0..steps) around its steps. Returns the median of each step and, last, of the whole run.
std::vector<double> time_steps(int reps, size_t steps, cuda::DeviceBuffer& flush, cuda::DeviceBuffer& y,
                               const std::function<void(const std::function<void(size_t)>&)>& body) {
  std::vector<CUevent> ev(steps + 1);
  for (auto& e : ev) FB_CU(cuEventCreate(&e, 0));
  std::vector<std::vector<double>> t(steps + 1);
  for (int r = 0; r < 5 + reps; ++r) {
    FB_CU(cuMemsetD32Async(y.ptr(), kPoison, y.bytes() / 4, nullptr));
    FB_CU(cuMemsetD32Async(flush.ptr(), static_cast<unsigned>(r), flush.bytes() / 4, nullptr));
    body([&](size_t i) { FB_CU(cuEventRecord(ev.at(i), nullptr)); });
    FB_CU(cuEventSynchronize(ev[steps]));
    if (r < 5) continue;
    float ms = 0;
    for (size_t i = 0; i < steps; ++i) {
      FB_CU(cuEventElapsedTime(&ms, ev[i], ev[i + 1]));
      t[i].push_back(ms);
    }
    FB_CU(cuEventElapsedTime(&ms, ev[0], ev[steps]));
    t[steps].push_back(ms);
  }
  for (auto& e : ev) FB_CU(cuEventDestroy(e));
  std::vector<double> out;
  for (auto& v : t) out.push_back(median(v));
  return out;
}

CUmodule load_program(const cuda::DeviceInfo& dev, const std::string& source, cuda::CompiledProgram* out = nullptr) {
  cuda::CompileRequest req;
  req.source = source;
  req.arch = dev.arch();
  req.options = cuda::program_compile_options();
  const cuda::CompiledProgram prog = cuda::compile_program(req);
  CUmodule m;
  FB_CU(cuModuleLoadData(&m, prog.cubin.data()));
  if (out) *out = prog;
  return m;
}

// The default block's data, shared by v9-v19: clean input, and input with failing samples
// (NaN in sample 5, +Inf as the last element of sample 77, 3e38 in sample 9: the exact fallback
// then computes real values there).
struct DefaultBlock {
  Plan plan;
  Params params;
  Tensor x, x_bad, ref, ref_bad;
  int64_t n = 0, in_sample = 0;
  float bound = 0;
  std::vector<int64_t> failing{5, 9, 77};
  DefaultBlock() {
    plan = lower(parse_spec(kDefaultSpec, "<default>"));
    const Pipeline& p = plan.pipeline;
    params = init_params(plan.fallback, 0);
    n = p.input_shape[0];
    in_sample = numel(p.input_shape) / n;
    x = uniform_tensor(p.input_shape, 2026);
    x_bad = x;
    x_bad.data()[5 * in_sample + 12345] = std::numeric_limits<float>::quiet_NaN();
    x_bad.data()[78 * in_sample - 1] = std::numeric_limits<float>::infinity();
    x_bad.data()[9 * in_sample + 777] = 3e38f;
    ref = Tensor(p.output_shape);
    cpu::run(plan, params, x, ref);
    ref_bad = Tensor(p.output_shape);
    cpu::run(plan, params, x_bad, ref_bad);
    bound = cuda::guard_bound_as_float(guard_input_bound(params, plan.guard->conv_output_bound));
  }
};

// "ok", or what differs: flags (n + 1 ints) must be set exactly for `failing` (and flags[n] if any).
std::string check_flags(const std::vector<int>& flags, const std::vector<int64_t>& failing) {
  const int64_t n = static_cast<int64_t>(flags.size()) - 1;
  for (int64_t i = 0; i < n; ++i) {
    const bool want = std::find(failing.begin(), failing.end(), i) != failing.end();
    if ((flags[i] != 0) != want) return "FAIL: flag of sample " + std::to_string(i);
  }
  if ((flags[n] != 0) != !failing.empty()) return "FAIL: the 'some sample failed' flag";
  return "ok";
}

// y against the CPU backend: bit for bit on samples that passed the guard; on failing samples
// (the exact fallback, TF32) NaN where the CPU has NaN, else max |diff| / rms <= 1e-2.
std::string check_output(const std::vector<float>& y, const Tensor& ref, int64_t n, const std::vector<int64_t>& failing) {
  const int64_t per = ref.numel() / n;
  for (int64_t s = 0; s < n; ++s) {
    const float* a = y.data() + s * per;
    const float* b = ref.data() + s * per;
    if (std::find(failing.begin(), failing.end(), s) == failing.end()) {
      if (std::memcmp(a, b, static_cast<size_t>(per) * 4) != 0) return "FAIL: sample " + std::to_string(s) + " differs";
      continue;
    }
    double sq = 0, worst = 0;
    int64_t finite = 0;
    for (int64_t i = 0; i < per; ++i) {
      if (std::isnan(b[i]) != std::isnan(a[i])) return "FAIL: NaN positions of sample " + std::to_string(s);
      if (!std::isnan(b[i])) sq += double(b[i]) * b[i], ++finite;
    }
    const double rms = finite ? std::sqrt(sq / finite) : 1.0;
    for (int64_t i = 0; i < per; ++i)
      if (!std::isnan(b[i])) worst = std::max(worst, std::fabs(double(a[i]) - b[i]) / (rms > 0 ? rms : 1.0));
    if (worst > 1e-2) return "FAIL: sample " + std::to_string(s) + " off by " + std::to_string(worst) + " rms";
  }
  return "ok";
}

// v9-v14: memset + fb_guard.
struct ConstantVersion {
  const char* name;
  int unroll;
  int grid;  // 0: fb_fill's grid (ceil(resident / N) blocks per sample), 1: guard_blocks_per_sample, 2: 4x that
  bool memset_first;
};

// H100, 2026-11-24 21:30 UTC: guard ms / memset + guard ms (memset alone 0.1379).
const ConstantVersion kConstantVersions[] = {
    {"v9 guard, then memset", 1, 0, false},            // 0.0451 / 0.1824
    {"v10 memset, then guard", 1, 0, true},            // 0.0448 / 0.1831
    {"v11 v10, one wave (floor grid)", 1, 1, true},    // 0.0413 / 0.1799
    {"v12 v11, 4 loads in flight", 4, 1, true},        // 0.0423 / 0.1808  (the default)
    {"v13 v11, 8 loads in flight", 8, 1, true},        // 0.0415 / 0.1800
    {"v14 v12, 4x blocks", 4, 2, true},                // 0.0410 / 0.1796
};

void constant_fill_versions(const cuda::DeviceInfo& dev, const DefaultBlock& b, cuda::DeviceBuffer& flush, int reps) {
  const cuda::EmittedProgram prog = cuda::emit_program(b.plan, true);
  if (!prog.fill_memset) throw std::runtime_error("the default block is expected to be a constant fill");
  cuda::DeviceBuffer dx = cuda::to_device(b.x.vec()), dxb = cuda::to_device(b.x_bad.vec());
  cuda::DeviceBuffer dy(static_cast<size_t>(b.ref.numel()) * 4), flags((static_cast<size_t>(b.n) + 1) * 4);
  const double in_bytes = 4.0 * b.x.numel(), out_bytes = 4.0 * b.ref.numel();
  // assume_finite: the memset alone.
  auto t = time_steps(reps, 1, flush, dy, [&](const auto& rec) {
    rec(0);
    FB_CU(cuMemsetD32Async(dy.ptr(), prog.fill_bits, dy.bytes() / 4, nullptr));
    rec(1);
  });
  std::vector<float> y(static_cast<size_t>(b.ref.numel()));
  dy.download(y.data(), dy.bytes());
  std::printf("%-16s %-36s %29s memset %.4f ms  %6.0f GB/s  %s\n", "assume_finite", "v9-v14 memset alone", "", t[0],
              out_bytes / (t[0] * 1e6), check_output(y, b.ref, b.n, {}).c_str());
  for (const ConstantVersion& v : kConstantVersions) {
    cuda::SourceWriter w;
    cuda::emit_prelude(w, std::string("dev guard ") + v.name);
    cuda::GuardOptions go;
    go.unroll = v.unroll;
    cuda::emit_guard_kernel(w, b.plan, go);
    cuda::CompiledProgram cp;
    CUmodule m = load_program(dev, w.str(), &cp);
    CUfunction f;
    FB_CU(cuModuleGetFunction(&f, m, "fb_guard"));
    int per_sm = 0;
    FB_CU(cuOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, f, 256, 0));
    const int64_t resident = int64_t{per_sm} * dev.sm_count;
    int64_t bps = cuda::guard_blocks_per_sample(resident, b.n, b.in_sample);
    if (v.grid == 0) bps = std::max<int64_t>(1, std::min(ceil_div(resident, b.n), ceil_div(b.in_sample, 1024)));
    if (v.grid == 2) bps = std::min(4 * bps, ceil_div(b.in_sample, 1024));
    long long slice = ceil_div(ceil_div(b.in_sample, bps), 4) * 4;
    int bpsi = static_cast<int>(bps);
    float bound = b.bound;
    auto guard = [&](uint64_t xp) {
      uint64_t fp = flags.ptr();
      void* args[] = {&xp, &fp, &bound, &bpsi, &slice};
      FB_CU(cuMemsetD32Async(flags.ptr(), 0, flags.bytes() / 4, nullptr));
      FB_CU(cuLaunchKernel(f, static_cast<unsigned>(b.n * bps), 1, 1, 256, 1, 1, 0, nullptr, args, nullptr));
    };
    auto fill = [&] { FB_CU(cuMemsetD32Async(dy.ptr(), prog.fill_bits, dy.bytes() / 4, nullptr)); };
    t = time_steps(reps, 2, flush, dy, [&](const auto& rec) {
      rec(0);
      v.memset_first ? fill() : guard(dx.ptr());
      rec(1);
      v.memset_first ? guard(dx.ptr()) : fill();
      rec(2);
    });
    const double guard_ms = v.memset_first ? t[1] : t[0], memset_ms = v.memset_first ? t[0] : t[1];
    dy.download(y.data(), dy.bytes());
    std::vector<int> fl(static_cast<size_t>(b.n) + 1);
    flags.download(fl.data(), flags.bytes());
    std::string check = check_output(y, b.ref, b.n, {});
    if (check == "ok") check = check_flags(fl, {});
    guard(dxb.ptr());
    cuda::synchronize();
    flags.download(fl.data(), flags.bytes());
    if (check == "ok") check = check_flags(fl, b.failing);
    std::printf("%-16s %-36s %2d regs %d blocks/SM grid %5lld  guard %.4f ms (%4.0f GB/s)  memset %.4f  total %.4f ms  %s\n",
                "guarded", v.name, cp.kernels.empty() ? -1 : cp.kernels[0].registers, per_sm, (long long)(b.n * bps),
                guard_ms, in_bytes / (guard_ms * 1e6), memset_ms, t[2], check.c_str());
    FB_CU(cuModuleUnload(m));
  }
}

// v15-v19: the whole guarded run.
using LaunchKernelEx = CUresult (*)(const CUlaunchConfig*, CUfunction, void**, void**);

// Inserts `stmt` as the first statement of kernel `name`.
std::string first_statement(std::string src, const std::string& name, const std::string& stmt) {
  const size_t k = src.find(" " + name + "(");
  if (k == std::string::npos) throw std::runtime_error("no kernel " + name);
  return src.insert(src.find("{\n", k) + 2, "  " + stmt + "\n");
}

void whole_run_versions(const cuda::DeviceInfo& dev, const DefaultBlock& b, cuda::DeviceBuffer& flush, int reps) {
  auto ex = cuda::executor_for(b.plan, true);
  const cuda::EmittedProgram& prog = ex->program();
  const cuda::ConvGeometry& g = prog.geometry;
  cuda::DeviceBuffer dx = cuda::to_device(b.x.vec()), dxb = cuda::to_device(b.x_bad.vec());
  cuda::DeviceBuffer dy(static_cast<size_t>(b.ref.numel()) * 4), scratch(ex->scratch_bytes());
  cuda::DeviceBuffer dw = cuda::to_device(b.params.conv_weight.vec()), db = cuda::to_device(b.params.conv_bias.vec());
  cuda::DeviceBuffer dg = cuda::to_device(b.params.norm_weight.vec()), dbeta = cuda::to_device(b.params.norm_bias.vec());
  cuda::RunArgs args;
  args.seed = b.plan.pipeline.dropout.seed;
  args.offset = b.plan.pipeline.dropout.offset;
  args.guard_bound = guard_input_bound(b.params, b.plan.guard->conv_output_bound);
  std::vector<float> y(static_cast<size_t>(b.ref.numel()));
  auto result = [&](const std::vector<int64_t>& failing, const Tensor& ref) {
    dy.download(y.data(), dy.bytes());
    return check_output(y, ref, b.n, failing);
  };
  const size_t steps = ex->launches().size();
  for (bool per_step_events : {false, true}) {
    auto t = time_steps(reps, per_step_events ? steps : 1, flush, dy, [&](const auto& rec) {
      cuda::DeviceTensors dt{dx.ptr(), dy.ptr(), dw.ptr(), db.ptr(), dg.ptr(), dbeta.ptr()};
      if (per_step_events) {
        ex->launch(dt, scratch.ptr(), args, nullptr, rec);
      } else {
        rec(0);
        ex->launch(dt, scratch.ptr(), args, nullptr);
        rec(1);
      }
    });
    std::string check = result({}, b.ref);
    std::string per;
    if (per_step_events)
      for (size_t i = 0; i < steps; ++i) per += fmt::format(" {} {:.4f}", ex->launches()[i].kernel, t[i]);
    std::printf("%-16s %-36s total %.4f ms %s  %s\n", "guarded",
                per_step_events ? "v16 executor, event between steps" : "v15 executor, events around the run",
                t.back(), per.c_str(), check.c_str());
  }
  {
    cuda::DeviceTensors dt{dxb.ptr(), dy.ptr(), dw.ptr(), db.ptr(), dg.ptr(), dbeta.ptr()};
    ex->launch(dt, scratch.ptr(), args, nullptr);
    cuda::synchronize();
    std::printf("%-16s %-36s %s\n", "guarded", "v15 executor, failing samples", result(b.failing, b.ref_bad).c_str());
  }

  // The same program on a module loaded here, launched step by step like the executor.
  void* libcuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  auto launch_ex = libcuda ? reinterpret_cast<LaunchKernelEx>(dlsym(libcuda, "cuLaunchKernelEx")) : nullptr;
  struct Gate {
    const char* name;
    bool carveout;  // every kernel prefers the largest shared-memory carveout (no reconfiguration between them)
    bool pdl;       // gated kernels launched with programmatic stream serialization, griddepcontrol.wait first
    bool trigger;   // and the guard and gated kernels let their dependents launch at once (launch_dependents)
  };
  // H100, 2026-11-24 21:30 UTC: gated x3 ms / whole run ms (events around it). The executor
  // itself: v15 0.1832 (v16, an event between steps: 0.1925).
  const Gate gates[] = {{"v17 plain launches (as before)", false, false, false},          // 0.0097 / 0.1875
                        {"v18 v17, one shared-memory carveout", true, false, false},     // 0.0097 / 0.1875
                        {"v19 programmatic dependent launch", false, true, false},       // 0.0064 / 0.1834 (the executor)
                        {"v20 v19, dependents launched at entry", false, true, true},    // 0.0068 / 0.1834
                        {"v21 v18 + v20", true, true, true}};                            // 0.0068 / 0.1831
  auto grid_of = [&](const std::string& k) {
    for (const auto& l : ex->launches())
      if (l.kernel == k) return l;
    throw std::runtime_error("no launch " + k);
  };
  const size_t align = 256;
  auto up = [&](size_t v) { return (v + align - 1) / align * align; };
  const size_t partials_at = up((static_cast<size_t>(b.n) + 1) * 4);
  const size_t nscale_at = partials_at + up(static_cast<size_t>(g.n * g.cout * g.tiles) * 8);
  const size_t nmean_at = nscale_at + up(static_cast<size_t>(g.n * g.cout) * 4);
  if (nmean_at + up(static_cast<size_t>(g.n * g.cout) * 4) != ex->scratch_bytes())
    throw std::runtime_error("scratch layout differs from the executor's");
  for (const Gate& gate : gates) {
    if (gate.pdl && (!launch_ex || dev.cc_major < 9)) {
      std::printf("%-16s %-36s skipped: needs cuLaunchKernelEx and sm_90\n", "guarded", gate.name);
      continue;
    }
    // The gated kernels start with griddepcontrol.wait (a no-op without the launch attribute).
    std::string src = prog.source;
    if (gate.trigger)  // before the wait: scheduling only; the dependent still waits for this grid's completion
      for (const char* k : {"fb_guard", "fb_conv_stats", "fb_norm_finalize"})
        src = first_statement(src, k, "asm volatile(\"griddepcontrol.launch_dependents;\");");
    CUmodule m = load_program(dev, src);
    CUfunction fg, fs, ff, fo;
    FB_CU(cuModuleGetFunction(&fg, m, "fb_guard"));
    FB_CU(cuModuleGetFunction(&fs, m, "fb_conv_stats"));
    FB_CU(cuModuleGetFunction(&ff, m, "fb_norm_finalize"));
    FB_CU(cuModuleGetFunction(&fo, m, "fb_conv_output"));
    const auto lg = grid_of("fb_guard"), ls = grid_of("fb_conv_stats"), lf = grid_of("fb_norm_finalize"),
               lo = grid_of("fb_conv_output");
    for (CUfunction f : {fs, fo})
      FB_CU(cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, static_cast<int>(ls.dynamic_smem)));
    if (gate.carveout)
      for (CUfunction f : {fg, fs, ff, fo}) FB_CU(cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT, 100));
    const int64_t in_sample = b.in_sample;
    long long slice = ceil_div(ceil_div(in_sample, lg.grid_x / b.n), 4) * 4;
    int bps = static_cast<int>(lg.grid_x / b.n);
    float bound = b.bound;
    uint64_t yp = dy.ptr(), w = dw.ptr(), bias = db.ptr(), gamma = dg.ptr(), beta = dbeta.ptr();
    uint64_t flags = scratch.ptr(), partials = scratch.ptr() + partials_at, nscale = scratch.ptr() + nscale_at,
             nmean = scratch.ptr() + nmean_at, seed = args.seed, offset = args.offset;
    auto kernel = [&](CUfunction f, const cuda::KernelLaunch& l, void** params, bool pdl) {
      if (!pdl) {
        FB_CU(cuLaunchKernel(f, l.grid_x, l.grid_y, 1, l.threads, 1, 1, static_cast<unsigned>(l.dynamic_smem), nullptr,
                             params, nullptr));
        return;
      }
      CUlaunchAttribute attr{};
      attr.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
      attr.value.programmaticStreamSerializationAllowed = 1;
      CUlaunchConfig cfg{};
      cfg.gridDimX = l.grid_x;
      cfg.gridDimY = l.grid_y;
      cfg.gridDimZ = 1;
      cfg.blockDimX = l.threads;
      cfg.blockDimY = cfg.blockDimZ = 1;
      cfg.sharedMemBytes = static_cast<unsigned>(l.dynamic_smem);
      cfg.hStream = nullptr;
      cfg.attrs = &attr;
      cfg.numAttrs = 1;
      cuda::check_cu(launch_ex(&cfg, f, params, nullptr), "cuLaunchKernelEx");
    };
    auto run = [&](uint64_t xp, const auto& rec) {
      rec(0);
      FB_CU(cuMemsetD32Async(yp, prog.fill_bits, dy.bytes() / 4, nullptr));
      FB_CU(cuMemsetD32Async(flags, 0, static_cast<size_t>(b.n) + 1, nullptr));
      void* gp[] = {&xp, &flags, &bound, &bps, &slice};
      kernel(fg, lg, gp, false);
      rec(1);
      void* sp[] = {&xp, &w, &bias, &partials, &flags};
      kernel(fs, ls, sp, gate.pdl);
      void* fp[] = {&partials, &gamma, &nscale, &nmean, &flags};
      kernel(ff, lf, fp, gate.pdl);
      void* op[] = {&xp, &w, &bias, &nscale, &nmean, &beta, &yp, &flags, &seed, &offset};
      kernel(fo, lo, op, gate.pdl);
      rec(2);
    };
    auto t = time_steps(reps, 2, flush, dy, [&](const auto& rec) { run(dx.ptr(), rec); });
    auto t_outer = time_steps(reps, 1, flush, dy, [&](const auto& rec) {
      run(dx.ptr(), [&](size_t i) {
        if (i != 1) rec(i / 2);
      });
    });
    std::string check = result({}, b.ref);
    run(dxb.ptr(), [](size_t) {});
    cuda::synchronize();
    if (check == "ok") check = result(b.failing, b.ref_bad);
    std::printf("%-16s %-36s memset+guard %.4f  gated x3 %.4f  total %.4f ms (events around the run: %.4f)  %s\n",
                "guarded", gate.name, t[0], t[1], t[2], t_outer.back(), check.c_str());
    FB_CU(cuModuleUnload(m));
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 50;
  std::string why;
  if (!cuda::available(&why)) {
    std::printf("no GPU: %s\n", why.c_str());
    return 2;
  }
  try {
    const cuda::DeviceInfo& dev = cuda::use_device();
    std::printf("fill variants on %s\n", dev.describe().c_str());
    cuda::DeviceBuffer flush(256u << 20);
    for (bool assume_finite : {false, true}) {
      LowerOptions lo;
      lo.assume_finite = assume_finite;
      const Plan plan = lower(parse_spec(kDefaultSpec, "<default>"), lo);
      const Pipeline& p = plan.pipeline;
      const Params params = init_params(plan.fallback, 0);
      const Tensor x = uniform_tensor(p.input_shape, 2026);
      Tensor ref(p.output_shape);
      cpu::run(plan, params, x, ref);
      cuda::DeviceBuffer dx = cuda::to_device(x.vec());
      cuda::DeviceBuffer dy(static_cast<size_t>(ref.numel()) * 4);
      cuda::DeviceBuffer flags((static_cast<size_t>(p.input_shape[0]) + 1) * 4);
      const float bound =
          plan.guard ? cuda::guard_bound_as_float(guard_input_bound(params, plan.guard->conv_output_bound)) : 0.0f;
      for (const Version& v : kVersions) {
        cuda::SourceWriter w;
        cuda::emit_prelude(w, std::string("dev fill ") + v.name);
        cuda::emit_fill_kernel(w, plan, v.o);
        cuda::CompileRequest req;
        req.source = w.str();
        req.arch = dev.arch();
        req.options = {"--fmad=false"};
        const cuda::CompiledProgram prog = cuda::compile_program(req);
        CUmodule m;
        CUfunction f;
        FB_CU(cuModuleLoadData(&m, prog.cubin.data()));
        FB_CU(cuModuleGetFunction(&f, m, "fb_fill"));
        int per_sm = 0;
        FB_CU(cuOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, f, 256, 0));
        const int64_t n = p.input_shape[0], in_sample = numel(p.input_shape) / n;
        const int64_t bps = std::max<int64_t>(1, std::min(ceil_div(int64_t{per_sm} * dev.sm_count, n), ceil_div(in_sample, 1024)));
        long long slice = ceil_div(ceil_div(in_sample, bps), 4) * 4;
        long long qpb = ceil_div(ceil_div(ref.numel(), 4), n * bps);
        int bpsi = static_cast<int>(bps);
        uint64_t xp = dx.ptr(), yp = dy.ptr(), fp = flags.ptr(), seed = p.dropout.seed, offset = p.dropout.offset;
        float b = bound;
        void* args[] = {&xp, &yp, &fp, &b, &seed, &offset, &qpb, &bpsi, &slice};
        CUevent e0, e1;
        FB_CU(cuEventCreate(&e0, 0));
        FB_CU(cuEventCreate(&e1, 0));
        std::vector<float> ms;
        for (int r = 0; r < 5 + reps; ++r) {
          FB_CU(cuMemsetD32Async(dy.ptr(), 0x7fa00001u, dy.bytes() / 4, nullptr));
          FB_CU(cuMemsetD32Async(flags.ptr(), 0, flags.bytes() / 4, nullptr));
          FB_CU(cuMemsetD32Async(flush.ptr(), static_cast<unsigned>(r), flush.bytes() / 4, nullptr));
          FB_CU(cuEventRecord(e0, nullptr));
          FB_CU(cuLaunchKernel(f, static_cast<unsigned>(n * bps), 1, 1, 256, 1, 1, 0, nullptr, args, nullptr));
          FB_CU(cuEventRecord(e1, nullptr));
          FB_CU(cuEventSynchronize(e1));
          float t = 0;
          FB_CU(cuEventElapsedTime(&t, e0, e1));
          if (r >= 5) ms.push_back(t);
        }
        std::sort(ms.begin(), ms.end());
        std::vector<float> y(static_cast<size_t>(ref.numel()));
        dy.download(y.data(), dy.bytes());
        const bool same = std::memcmp(y.data(), ref.data(), dy.bytes()) == 0;
        const double bytes = 4.0 * (ref.numel() + (assume_finite ? 0 : x.numel()));
        std::printf("%-16s %-32s %3d regs %d blocks/SM  %.4f ms  %6.0f GB/s  %s\n",
                    assume_finite ? "assume_finite" : "guarded", v.name, prog.kernels.empty() ? -1 : prog.kernels[0].registers,
                    per_sm, ms[ms.size() / 2], bytes / (ms[ms.size() / 2] * 1e6), same ? "ok" : "FAIL: differs from CPU");
        FB_CU(cuEventDestroy(e0));
        FB_CU(cuEventDestroy(e1));
        FB_CU(cuModuleUnload(m));
      }
    }
    const DefaultBlock block;
    constant_fill_versions(cuda::use_device(), block, flush, reps);
    whole_run_versions(cuda::use_device(), block, flush, reps);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
