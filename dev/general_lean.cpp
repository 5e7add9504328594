// HISTORY: this harness ran against commit cb7f6ab (before the conv strategy interface), where
// its knobs (FillOptions, GuardOptions, ConvTuning::lean, the FBL_* macros) still lived in src/;
// its numbers are in docs/benchmarks.md. It is no longer built: to rerun it, check that commit out
// (`git worktree add /tmp/fb-cb7f6ab cb7f6ab`) and run `scripts/gpu-suite.sh dev,lean` there.
// dev: the general path (problem 83 shape, conv -> GroupNorm -> SiLU -> dropout, TF32), three
// designs side by side in one process:
//   v1  the earlier src/ kernels (cuda::Executor with ConvTuning::lean = false): statistics pass,
//       finalize, output pass;
//   v7  lean recompute (src/cuda/lean_kernels.cuh, as the emitter pastes it, with the variants'
//       macros set before it): the same two passes, overheads cut; v7g is what src/ runs now;
//   v8  sample-resident persistent kernel: conv computed once, waves of S samples held in shared
//       memory, a grid barrier per wave (cooperative launch).
// Each is timed like the benchmark (L2 flushed, output poisoned, 3 warm-up runs, median; events
// around the whole run, and a second series with events between kernels) and checked: sample 0
// against the CPU backend, the whole output against v1 (same dropout mask, TF32 tolerance, every
// element written).
//   fuseblock_dev_general_lean [reps]          run on the GPU
//   fuseblock_dev_general_lean --compile [sm]  NVRTC only (no GPU): registers and spills
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>
#include <unistd.h>
#include <vector>

#include "cpu/cpu_backend.hpp"
#include "cuda/cuda_backend.hpp"
#include "cuda/device_context.hpp"
#include "cuda/device_memory.hpp"
#include "cuda/driver_api.hpp"
#include "cuda/emit_common.hpp"
#include "cuda/emit_lean.hpp"
#include "cuda/emit_program.hpp"
#include "cuda/executor.hpp"
#include "cuda/nvrtc_compile.hpp"
#include "device_common/philox.h"
#include "fuseblock/fuseblock.hpp"
#include "fuseblock/random.hpp"

using namespace fuseblock;

namespace {

constexpr int kWaveSamples = 4;  // v8's S
constexpr int kSlots = 2;        // v8's R: staging slots per block

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot read " + path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// The emitted (lean) program with a variant's macros set before lean_kernels.cuh, then v8.
std::string lean_source(const Plan& plan, const std::string& extra_defines, bool exact_silu) {
  std::string src = cuda::emit_program(plan, true).source;
  for (size_t at; exact_silu && (at = src.find("r = fbl_silu_tf32(")) != std::string::npos;)
    src.replace(at, 18, "r = fb_silu(");
  const std::string marker = "// ---- lean_kernels.cuh ----";
  const size_t at = src.find(marker);
  if (at == std::string::npos) throw std::runtime_error("the program is not on the lean path");
  src.insert(at, extra_defines);
  char defs[128];
  std::snprintf(defs, sizeof defs, "\n#define F8_S %d\n#define F8_R %d\n", kWaveSamples, kSlots);
  return src + defs + read_text(std::string(FB_DEV_DIR) + "/general_lean_kernels.cuh");
}

// v7's variants: where the B fragments live, and __launch_bounds__' blocks per SM.
struct LeanVariant {
  const char* name;
  const char* defines;
  bool b_smem;
  bool exact_silu = false;  // fb_silu (expf, IEEE division) instead of src/'s TF32 fbl_silu_tf32
  int out_windows = 1;      // FBL_OUT_WINDOWS
};
const LeanVariant kLean[] = {
    {"v7 lean recompute", "#define FBL_BSMEM 0\n#define FBL_OUT_WINDOWS 2\n", false, true, 2},
    {"v7b v7, B in smem", "#define FBL_OUT_WINDOWS 2\n", true, true, 2},
    {"v7c v7b, stats 3/SM", "#define FBL_OUT_WINDOWS 2\n#define FBL_MINB_STATS 3\n", true, true, 2},
    {"v7d v7b, epilogue unroll 2", "#define FBL_OUT_WINDOWS 2\n#define FBL_UNROLL 2\n", true, true, 2},
    {"v7e v7b, TF32 SiLU", "#define FBL_OUT_WINDOWS 2\n", true, false, 2},
    {"v7f v7e, output: one window, 3 blocks/SM", "#define FBL_MINB_OUT 3\n", true, false, 1},
    {"v7g v7f, output 2 blocks/SM (src/ now)", "", true, false, 1},
};

cuda::CompiledProgram compile(const Plan& plan, const std::string& arch, const LeanVariant& v) {
  cuda::CompileRequest req;
  req.source = lean_source(plan, v.defines, v.exact_silu);
  req.arch = arch;
  req.options = cuda::program_compile_options();
  return cuda::compile_program(req);
}

// A dev kernel that hangs must not eat the device session: every step first runs once under a
// watchdog that ends the process (and with it the context) after 20 s, saying which step it was.
std::atomic<const char*> g_step{nullptr};
std::atomic<long long> g_deadline{0};
long long now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
void start_watchdog() {
  std::thread([] {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      const long long d = g_deadline.load();
      if (d && now_s() > d) {
        std::printf("watchdog: step %s did not finish in 20 s\n", g_step.load());
        std::fflush(stdout);
        _exit(3);
      }
    }
  }).detach();
}

float median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Step {
  std::string name;
  std::function<void()> launch;
};

// Times a run made of steps: `whole` with events around it, `per` with an event between steps.
struct Timing {
  float whole = 0;
  std::vector<float> per;
};
Timing time_steps(const std::vector<Step>& steps, int reps, cuda::DeviceBuffer& flush, cuda::DeviceBuffer& y,
                  const std::function<void()>& before = {}) {
  for (const Step& st : steps) {  // once each, watched, timed on the host
    if (before) before();
    FB_CU(cuCtxSynchronize());
    g_step = st.name.c_str();
    const auto t0 = std::chrono::steady_clock::now();
    g_deadline = now_s() + 20;
    st.launch();
    FB_CU(cuCtxSynchronize());
    g_deadline = 0;
    std::printf("  smoke %s: %.3f ms (host clock)\n", st.name.c_str(),
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::vector<CUevent> ev(steps.size() + 1);
  for (auto& e : ev) FB_CU(cuEventCreate(&e, 0));
  std::vector<std::vector<float>> per(steps.size());
  std::vector<float> whole;
  for (int series = 0; series < 2; ++series)
    for (int r = 0; r < 3 + reps; ++r) {
      FB_CU(cuMemsetD32Async(y.ptr(), 0x7fa00001u, y.bytes() / 4, nullptr));
      FB_CU(cuMemsetD32Async(flush.ptr(), static_cast<unsigned>(r), flush.bytes() / 4, nullptr));
      if (before) before();
      FB_CU(cuEventRecord(ev[0], nullptr));
      for (size_t i = 0; i < steps.size(); ++i) {
        if (series == 1 && i > 0) FB_CU(cuEventRecord(ev[i], nullptr));
        steps[i].launch();
      }
      FB_CU(cuEventRecord(ev.back(), nullptr));
      FB_CU(cuEventSynchronize(ev.back()));
      if (r < 3) continue;
      float ms = 0;
      if (series == 0) {
        FB_CU(cuEventElapsedTime(&ms, ev[0], ev.back()));
        whole.push_back(ms);
      } else {
        for (size_t i = 0; i < steps.size(); ++i) {
          FB_CU(cuEventElapsedTime(&ms, ev[i], ev[i + 1]));
          per[i].push_back(ms);
        }
      }
    }
  for (auto& e : ev) FB_CU(cuEventDestroy(e));
  Timing t;
  t.whole = median(whole);
  for (auto& v : per) t.per.push_back(median(v));
  return t;
}

struct Check {
  size_t nonfinite = 0, mask_diff = 0;
  double worst_v1 = 0, worst_cpu = 0;
  bool ok() const { return nonfinite == 0 && mask_diff == 0 && worst_v1 < 1e-2 && worst_cpu < 1e-2; }
};
Check check(const std::vector<float>& out, const std::vector<float>& v1, const Tensor& ref, double rms,
            const Pipeline& p) {
  const cuda::DropoutConsts d = cuda::dropout_consts(p.dropout);
  double sq = 0;
  for (float v : v1) sq += double(v) * v;
  const double v1rms = std::sqrt(sq / double(v1.size()));
  Check c;
  for (size_t i = 0; i < out.size(); i += 4) {
    const fb_u32x4 bits = fb_dropout_bits(p.dropout.seed, p.dropout.offset, i / 4);
    for (size_t k = i; k < std::min(out.size(), i + 4); ++k) {
      if (!std::isfinite(out[k])) ++c.nonfinite;
      const bool dropped = d.active && bits.v[k - i] >= d.threshold;
      if (dropped && out[k] != 0.0f) ++c.mask_diff;
      c.worst_v1 = std::max(c.worst_v1, std::fabs(double(out[k]) - v1[k]) / v1rms);
    }
  }
  for (int64_t i = 0; i < ref.numel(); ++i)
    c.worst_cpu = std::max(c.worst_cpu, std::fabs(double(out[static_cast<size_t>(i)]) - ref.data()[i]) / rms);
  return c;
}

void report(const char* name, const Timing& t, const std::vector<Step>& steps, const Check& c, const std::string& extra) {
  std::printf("%-34s total %.3f ms (", name, t.whole);
  for (size_t i = 0; i < steps.size(); ++i) std::printf("%s%s %.3f", i ? ", " : "", steps[i].name.c_str(), t.per[i]);
  std::printf(")%s\n    check: non-finite %zu, dropped but nonzero %zu, max |diff|/rms vs v1 %.2g, sample 0 vs CPU %.2g  %s\n",
              extra.c_str(), c.nonfinite, c.mask_diff, c.worst_v1, c.worst_cpu, c.ok() ? "ok" : "FAIL");
}

}  // namespace

int main(int argc, char** argv) {
  const Plan plan = lower(parse_spec("input f32[128, 3, 16, 64, 64]\nconv3d out_channels=16 kernel_size=3\n"
                                     "group_norm num_groups=8 eps=1e-5\nsilu\ndropout p=0.2\n", "silu"));
  const Pipeline& p = plan.pipeline;
  try {
    if (argc > 1 && std::strcmp(argv[1], "--source") == 0) {  // the v7 program's text
      std::fputs(lean_source(plan, "", false).c_str(), stdout);
      return 0;
    }
    if (argc > 1 && std::strcmp(argv[1], "--compile") == 0) {
      for (const LeanVariant& v : kLean) {
        std::printf("%s:\n", v.name);
        const cuda::CompiledProgram cp = compile(plan, argc > 2 ? argv[2] : "sm_90", v);
        for (const auto& k : cp.kernels)
          if (k.name.rfind("fbl_", 0) == 0 || k.name.rfind("f8_", 0) == 0)
            std::printf("  %-18s %3d registers, spill %d/%d B, %d B stack\n", k.name.c_str(), k.registers,
                        k.spill_store_bytes, k.spill_load_bytes, k.stack_bytes);
      }
      return 0;
    }
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    start_watchdog();
    const int reps = argc > 1 ? std::atoi(argv[1]) : 30;
    std::string why;
    if (!cuda::available(&why)) {
      std::printf("no GPU: %s\n", why.c_str());
      return 2;
    }
    const cuda::DeviceInfo& dev = cuda::use_device();
    std::printf("general path, three designs, on %s (SiLU, tf32, problem 83 shape)\n", dev.describe().c_str());
    const Params params = init_params(p, 0);
    const Tensor x = uniform_tensor(p.input_shape, 2026);
    Pipeline one = p;
    one.input_shape[0] = one.output_shape[0] = 1;
    Plan plan1;
    plan1.pipeline = one;
    const int64_t in_per = x.numel() / p.input_shape[0];
    Tensor x1(one.input_shape, std::vector<float>(x.data(), x.data() + in_per));
    Tensor ref(one.output_shape);
    cpu::run(plan1, params, x1, ref);
    double sq = 0;
    for (float v : ref.vec()) sq += double(v) * v;
    const double rms = std::sqrt(sq / ref.numel());

    const int64_t total = numel(p.output_shape), N = p.input_shape[0], C = 16, tiles = 112;
    cuda::DeviceBuffer flush(256u << 20);
    cuda::DeviceBuffer dx = cuda::to_device(x.vec()), dw = cuda::to_device(params.conv_weight.vec());
    cuda::DeviceBuffer db = cuda::to_device(params.conv_bias.vec()), dg = cuda::to_device(params.norm_weight.vec());
    cuda::DeviceBuffer dbeta = cuda::to_device(params.norm_bias.vec());
    cuda::DeviceBuffer dy(static_cast<size_t>(total) * 4);
    std::vector<float> out(static_cast<size_t>(total)), v1(static_cast<size_t>(total));

    // v1: the executor.
    {
      cuda::Executor ex(plan, true, cuda::ConvTuning{4, 2, 1, false});
      cuda::DeviceBuffer scratch(ex.scratch_bytes());
      cuda::RunArgs args;
      args.seed = p.dropout.seed;
      args.offset = p.dropout.offset;
      const cuda::DeviceTensors t{dx.ptr(), dy.ptr(), dw.ptr(), db.ptr(), dg.ptr(), dbeta.ptr()};
      std::printf("running v1\n");
      std::vector<Step> steps = {{"executor (3 kernels)", [&] { ex.launch(t, scratch.ptr(), args, nullptr); }}};
      const Timing tm = time_steps(steps, reps, flush, dy);
      dy.download(v1.data(), v1.size() * 4);
      std::string regs;
      for (const auto& k : ex.compiled().kernels) regs += " " + k.name + ":" + std::to_string(k.registers);
      report("v1 src/ (stats, finalize, output)", tm, steps, check(v1, v1, ref, rms, p), regs);
    }

    for (const LeanVariant& lv : kLean) {
    std::printf("compiling %s\n", lv.name);
    const auto c0 = std::chrono::steady_clock::now();
    const cuda::CompiledProgram cp = compile(plan, dev.arch(), lv);
    std::printf("  compiled in %.1f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - c0).count());
    CUmodule m = nullptr;
    FB_CU(cuModuleLoadData(&m, cp.cubin.data()));
    auto fn = [&](const char* name) {
      CUfunction f = nullptr;
      FB_CU(cuModuleGetFunction(&f, m, name));
      return f;
    };
    auto regs_of = [&](const char* name) {
      for (const auto& k : cp.kernels)
        if (k.name == name) return k.registers;
      return -1;
    };
    auto set_smem = [&](CUfunction f, size_t bytes) {
      FB_CU(cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, static_cast<int>(bytes)));
    };
    uint64_t xp = dx.ptr(), wp = dw.ptr(), bp = db.ptr(), gp = dg.ptr(), betap = dbeta.ptr(), yp = dy.ptr();
    unsigned long long seed = p.dropout.seed, offset = p.dropout.offset;

    // v7.
    {
      CUfunction fs = fn("fbl_conv_stats"), ff = fn("fbl_finalize"), fo = fn("fbl_conv_output");
      const size_t no_bs = lv.b_smem ? 0 : 11 * 2 * 32 * 8;  // the B table's bytes, when in registers
      const cuda::ConvGeometry& geo = cuda::emit_program(plan, true).geometry;
      const size_t one_window = size_t(geo.cin * geo.xcp) * 4;  // what FBL_OUT_WINDOWS 2 adds
      const size_t smem_s = cuda::lean_stats_smem_bytes(geo) - no_bs,
                   smem_o = cuda::lean_output_smem_bytes(geo) - no_bs + (lv.out_windows == 2 ? one_window : 0);
      set_smem(fs, smem_s);
      set_smem(fo, smem_o);
      // Blocks per sample for each conv kernel from its own residency (one wave each); the
      // partials' layout follows the statistics kernel's.
      int per_sm = 0, per_sm_s = 0;
      FB_CU(cuOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fo, 256, smem_o));
      FB_CU(cuOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm_s, fs, 256, smem_s));
      const int bps = static_cast<int>(std::clamp<int64_t>(int64_t(per_sm_s) * dev.sm_count / N, 1, tiles));
      const int bps_o = static_cast<int>(std::clamp<int64_t>(int64_t(per_sm) * dev.sm_count / N, 1, tiles));
      cuda::DeviceBuffer partials(static_cast<size_t>(N * bps * 8 * C) * 16), ab(static_cast<size_t>(N * C) * 8);
      uint64_t pp = partials.ptr(), abp = ab.ptr();
      int bpsv = bps, bpsv_o = bps_o;
      void* ps[] = {&xp, &wp, &pp, &bpsv};
      void* pf[] = {&pp, &bp, &gp, &betap, &abp, &bpsv};
      void* po[] = {&xp, &wp, &abp, &yp, &bpsv_o, &seed, &offset};
      const unsigned grid = static_cast<unsigned>(N * bps), grid_o = static_cast<unsigned>(N * bps_o),
                     gridf = static_cast<unsigned>((N * 8 + 7) / 8);
      std::vector<Step> steps = {
          {"fbl_conv_stats", [&] { FB_CU(cuLaunchKernel(fs, grid, 1, 1, 256, 1, 1, unsigned(smem_s), nullptr, ps, nullptr)); }},
          {"fbl_finalize", [&] { FB_CU(cuLaunchKernel(ff, gridf, 1, 1, 256, 1, 1, 0, nullptr, pf, nullptr)); }},
          {"fbl_conv_output", [&] { FB_CU(cuLaunchKernel(fo, grid_o, 1, 1, 256, 1, 1, unsigned(smem_o), nullptr, po, nullptr)); }}};
      const Timing tm = time_steps(steps, reps, flush, dy);
      dy.download(out.data(), out.size() * 4);
      char extra[200];
      std::snprintf(extra, sizeof extra, " blocks/sample %d/%d, per SM %d/%d, regs %d/%d/%d", bps, bps_o, per_sm_s, per_sm,
                    regs_of("fbl_conv_stats"),
                    regs_of("fbl_finalize"), regs_of("fbl_conv_output"));
      report(lv.name, tm, steps, check(out, v1, ref, rms, p), extra);
    }

    // v8 (once, with v7's engine: B in registers; with v7b's B table in shared memory two blocks
    // no longer fit an SM since the lean kernels' junk area grew to a slot per thread).
    if (&lv == &kLean[0]) {
      CUfunction f8 = fn("f8_resident");
      const size_t smem = (2 * 5472 + kSlots * 8000 + 256 + 88 + 2 * 8 * 16 + 16 + 16 + 2 * 16 * 2) * 4 +
                          (lv.b_smem ? 11 * 2 * 32 * 8 : 0);
      set_smem(f8, smem);
      int per_sm = 0;
      FB_CU(cuOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, f8, 256, smem));
      const unsigned grid = static_cast<unsigned>(per_sm * dev.sm_count);
      const int64_t per_block = (kWaveSamples * tiles + grid - 1) / grid;
      std::printf("v8: %d blocks/SM, grid %u, %d samples per wave, up to %lld tiles per block (slots %d)\n", per_sm, grid,
                  kWaveSamples, static_cast<long long>(per_block), kSlots);
      if (per_block > kSlots) throw std::runtime_error("v8: a wave does not fit the grid's slots");
      cuda::DeviceBuffer partials(static_cast<size_t>(N * C * tiles) * 8), bar(8);
      uint64_t pp = partials.ptr(), barp = bar.ptr();
      void* pr[] = {&xp, &wp, &bp, &gp, &betap, &yp, &pp, &barp, &seed, &offset};
      std::vector<Step> steps = {{"f8_resident", [&] {
                                    CUlaunchAttribute attr{};
                                    attr.id = CU_LAUNCH_ATTRIBUTE_COOPERATIVE;
                                    attr.value.cooperative = 1;
                                    CUlaunchConfig c{};
                                    c.gridDimX = grid;
                                    c.gridDimY = c.gridDimZ = 1;
                                    c.blockDimX = 256;
                                    c.blockDimY = c.blockDimZ = 1;
                                    c.sharedMemBytes = static_cast<unsigned>(smem);
                                    c.attrs = &attr;
                                    c.numAttrs = 1;
                                    FB_CU(cuLaunchKernelEx(&c, f8, pr, nullptr));
                                  }}};
      const Timing tm = time_steps(steps, reps, flush, dy, [&] { FB_CU(cuMemsetD32Async(barp, 0, 2, nullptr)); });
      unsigned bar_state[2] = {0, 0};
      bar.download(bar_state, 8);
      if (bar_state[1]) std::printf("v8: the grid barrier timed out (count %u)\n", bar_state[0]);
      dy.download(out.data(), out.size() * 4);
      char extra[120];
      std::snprintf(extra, sizeof extra, " regs %d", regs_of("f8_resident"));
      report("v8 sample-resident persistent", tm, steps, check(out, v1, ref, rms, p), extra);
    }
    cuda::driver().cuModuleUnload(m);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
