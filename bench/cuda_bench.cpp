// The CUDA benchmark: problem 83's shape ([128, 3, 16, 64, 64] -> [128, 16, 14, 62, 62], float32)
// through the fill path (guarded, and with assume_finite) and the general path (SiLU, GELU,
// minimum 0.5 / clamp 0..0.5; TF32 and strict fp32), beside the device's own ceilings (a memset
// of the output, plain read and write kernels, a device-to-device copy).
//
// Method (docs/benchmarks.md): CUDA events around the whole run (the time reported) and, in a
// second series, around each step (kernel or memset) for the breakdown; 5 warm-up runs, the median of 50,
// L2 flushed before every run by writing a 256 MB buffer, the output poisoned before every run
// and checked afterwards (every element written; the fill against the Philox mask, the general
// path's first sample against the CPU backend). Prints a short table last.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cpu/cpu_backend.hpp"
#include "cuda/executor/cuda_backend.hpp"
#include "cuda/runtime/device_context.hpp"
#include "cuda/runtime/device_memory.hpp"
#include "cuda/runtime/driver_api.hpp"
#include "cuda/executor/executor.hpp"
#include "cuda/runtime/nvrtc_compile.hpp"
#include "device_common/philox.h"
#include "fuseblock/fuseblock.hpp"
#include "fuseblock/random.hpp"

using namespace fuseblock;

namespace {

constexpr uint32_t kPoison = 0x7fa00001u;  // a signalling NaN no arithmetic produces
int g_reps = 50, g_warmup = 5;
std::string g_only;  // --only TEXT: run only the cases whose name contains TEXT (for a profiler)

struct Row {
  std::string name;
  double ms = 0;
  double bytes = 0;  // the fewest bytes the case must move
  double gflop = 0;
  double floor_ms = 0;
  std::string note;
};
std::vector<Row> g_rows;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct Events {
  std::vector<CUevent> ev;
  explicit Events(size_t n) : ev(n) {
    for (auto& e : ev) FB_CU(cuEventCreate(&e, CU_EVENT_DEFAULT));
  }
  ~Events() {
    for (auto& e : ev) cuda::driver().cuEventDestroy(e);
  }
  float between(size_t a, size_t b) const {
    float ms = 0;
    FB_CU(cuEventElapsedTime(&ms, ev[a], ev[b]));
    return ms;
  }
};

// Times `body` (which records events 0..k via rec(i)) g_reps times after warm-up; before each
// run, `prepare` poisons outputs and the L2 is flushed. Returns per-interval medians.
template <class Prepare, class Body>
std::vector<double> time_runs(size_t intervals, cuda::DeviceBuffer& flush, Prepare prepare, Body body) {
  Events e(intervals + 1);
  std::vector<std::vector<double>> t(intervals + 1);
  for (int r = 0; r < g_warmup + g_reps; ++r) {
    prepare();
    FB_CU(cuMemsetD32Async(flush.ptr(), static_cast<unsigned>(r), flush.bytes() / 4, nullptr));
    body([&](size_t i) { FB_CU(cuEventRecord(e.ev.at(i), nullptr)); });
    FB_CU(cuEventSynchronize(e.ev[intervals]));
    if (r < g_warmup) continue;
    for (size_t i = 0; i < intervals; ++i) t[i].push_back(e.between(i, i + 1));
    t[intervals].push_back(e.between(0, intervals));
  }
  std::vector<double> out;
  for (auto& v : t) out.push_back(median(v));
  return out;  // [interval medians..., total median]
}

// The device's ceilings: plain kernels that read or write float4s, a memset, a copy.
const char* kProbeSource = R"(
extern "C" __global__ void probe_write(float4* y, long long n4) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n4; i += (long long)gridDim.x * blockDim.x)
    __stcs(y + i, make_float4(1.0f, 2.0f, 3.0f, 4.0f));
}
extern "C" __global__ void probe_read(const float4* x, long long n4, float* sink) {
  float s = 0.0f;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n4; i += (long long)gridDim.x * blockDim.x) {
    const float4 v = __ldcs(x + i);
    s += v.x + v.y + v.z + v.w;
  }
  if (s == 123.456f) sink[0] = s;  // keeps the loads; never true for the data used
}
)";

struct Ceilings {
  double write_gbs = 0, read_gbs = 0, memset_ms = 0, memset_gbs = 0, copy_gbs = 0, read_write_ms = 0;
};

Ceilings measure_ceilings(const cuda::DeviceInfo& dev, cuda::DeviceBuffer& x, cuda::DeviceBuffer& y,
                          cuda::DeviceBuffer& flush) {
  cuda::CompileRequest req;
  req.source = kProbeSource;
  req.arch = dev.arch();
  const cuda::CompiledProgram prog = cuda::compile_program(req);
  CUmodule m;
  FB_CU(cuModuleLoadData(&m, prog.cubin.data()));
  CUfunction fw, fr;
  FB_CU(cuModuleGetFunction(&fw, m, "probe_write"));
  FB_CU(cuModuleGetFunction(&fr, m, "probe_read"));
  int bw = 0, br = 0;
  FB_CU(cuOccupancyMaxActiveBlocksPerMultiprocessor(&bw, fw, 256, 0));
  FB_CU(cuOccupancyMaxActiveBlocksPerMultiprocessor(&br, fr, 256, 0));
  cuda::DeviceBuffer sink(4);
  uint64_t yp = y.ptr(), xp = x.ptr(), sp = sink.ptr();
  long long ny4 = static_cast<long long>(y.bytes() / 16), nx4 = static_cast<long long>(x.bytes() / 16);
  void* wargs[] = {&yp, &ny4};
  void* rargs[] = {&xp, &nx4, &sp};
  auto none = [] {};
  Ceilings c;
  auto t = time_runs(2, flush, none, [&](auto rec) {
    rec(0);
    FB_CU(cuLaunchKernel(fr, bw * dev.sm_count, 1, 1, 256, 1, 1, 0, nullptr, rargs, nullptr));
    rec(1);
    FB_CU(cuLaunchKernel(fw, br * dev.sm_count, 1, 1, 256, 1, 1, 0, nullptr, wargs, nullptr));
    rec(2);
  });
  c.read_gbs = x.bytes() / (t[0] * 1e6);
  c.write_gbs = y.bytes() / (t[1] * 1e6);
  c.read_write_ms = t[2];
  t = time_runs(1, flush, none, [&](auto rec) {
    rec(0);
    FB_CU(cuMemsetD32Async(y.ptr(), 0x3f800000u, y.bytes() / 4, nullptr));
    rec(1);
  });
  c.memset_ms = t[0];
  c.memset_gbs = y.bytes() / (t[0] * 1e6);
  const size_t half = y.bytes() / 2;
  t = time_runs(1, flush, none, [&](auto rec) {
    rec(0);
    FB_CU(cuMemcpyDtoDAsync(y.ptr(), y.ptr() + half, half, nullptr));
    rec(1);
  });
  c.copy_gbs = 2.0 * half / (t[0] * 1e6);
  FB_CU(cuModuleUnload(m));
  g_rows.push_back({"memset of the output (ceiling)", c.memset_ms, double(y.bytes()), 0, c.memset_ms, ""});
  g_rows.push_back({"read input + write output, plain kernels", c.read_write_ms, double(x.bytes() + y.bytes()), 0,
                    c.read_write_ms, fmt::format("read {:.0f} GB/s, write {:.0f} GB/s", c.read_gbs, c.write_gbs)});
  g_rows.push_back({"device-to-device copy (read+write counted)", 2.0 * half / (c.copy_gbs * 1e6), 2.0 * half, 0,
                    0, fmt::format("{:.0f} GB/s", c.copy_gbs)});
  return c;
}

struct Case {
  std::string name;
  std::string spec;
  bool assume_finite = false;
  bool tf32 = true;
};

// Checks y: nothing poisoned; fill path: every element against the mask; general path: sample 0
// against the CPU backend (relative to the output's RMS).
std::string check_output(const Plan& plan, const Params& params, const Tensor& x, const std::vector<float>& y,
                         bool tf32) {
  const Pipeline& p = plan.pipeline;
  int64_t poisoned = 0;
  for (float v : y) {
    uint32_t b;
    std::memcpy(&b, &v, 4);
    poisoned += b == kPoison;
  }
  if (poisoned) return fmt::format("FAIL: {} elements never written", poisoned);
  const int64_t n = p.input_shape[0], out_per = static_cast<int64_t>(y.size()) / n;
  if (p.fill_path()) {
    Tensor ref(p.output_shape);
    cpu::run(plan, params, x, ref);
    if (std::memcmp(ref.data(), y.data(), y.size() * 4) != 0) return "FAIL: fill differs from the CPU backend";
    return "output == CPU backend, bit for bit";
  }
  Pipeline one = p;
  one.input_shape[0] = one.output_shape[0] = 1;
  Plan plan1;
  plan1.pipeline = one;
  Tensor x1(one.input_shape, std::vector<float>(x.data(), x.data() + x.numel() / n));
  Tensor ref(one.output_shape);
  cpu::run(plan1, params, x1, ref);
  double sq = 0, worst = 0;
  for (int64_t i = 0; i < out_per; ++i) sq += double(ref.data()[i]) * ref.data()[i];
  const double rms = std::sqrt(sq / out_per);
  for (int64_t i = 0; i < out_per; ++i) worst = std::max(worst, std::fabs(double(y[i]) - ref.data()[i]) / rms);
  const double tol = tf32 ? 1e-2 : 3e-5;  // tf32: 2^-11 rounding amplified by the conv's mean/spread (~3)
  return fmt::format("{}: sample 0 vs CPU max |diff|/rms {:.2g} (tol {:.0e})", worst <= tol ? "ok" : "FAIL", worst, tol);
}

void run_case(const Case& c, const Ceilings& ceil, cuda::DeviceBuffer& flush) {
  LowerOptions lo;
  lo.assume_finite = c.assume_finite;
  const Plan plan = lower(parse_spec(c.spec, c.name), lo);
  const Pipeline& p = plan.pipeline;
  const Params params = init_params(p.fill_path() ? plan.fallback : p, 0);
  const Tensor x = uniform_tensor(p.input_shape, 2026);  // torch.rand's distribution, never zeros
  auto ex = cuda::executor_for(plan, c.tf32);
  const cuda::LaunchProgram& prog = ex->program();
  cuda::DeviceBuffer dx = cuda::to_device(x.vec());
  cuda::DeviceBuffer dy(static_cast<size_t>(numel(p.output_shape)) * 4);
  cuda::DeviceBuffer dw, db, dg, dbeta;
  if (prog.find(cuda::BufferRole::ConvWeight)) {
    dw = cuda::to_device(params.conv_weight.vec());
    db = cuda::to_device(params.conv_bias.vec());
    dg = cuda::to_device(params.norm_weight.vec());
    dbeta = cuda::to_device(params.norm_bias.vec());
  }
  cuda::DeviceBuffer scratch(ex->scratch_bytes());
  cuda::RunArgs args;
  args.seed = p.dropout.seed;
  args.offset = p.dropout.offset;
  using R = cuda::BufferRole;
  cuda::DeviceTensors t;
  t.bind(R::Input, dx.ptr()).bind(R::Output, dy.ptr()).bind(R::ConvWeight, dw.ptr()).bind(R::ConvBias, db.ptr());
  t.bind(R::NormWeight, dg.ptr()).bind(R::NormBias, dbeta.ptr());
  t.scratch = scratch.ptr();
  const auto& launches = ex->launches();
  auto poison = [&] { FB_CU(cuMemsetD32Async(dy.ptr(), kPoison, dy.bytes() / 4, nullptr)); };
  // The run as a caller sees it (events around it only), then step by step (an event between
  // steps, which adds a little to the total) for the breakdown.
  const auto whole = time_runs(1, flush, poison, [&](auto rec) {
    rec(0);
    ex->launch(t, args, nullptr);
    rec(1);
  });
  auto times = time_runs(launches.size(), flush, poison, [&](auto rec) { ex->launch(t, args, nullptr, rec); });
  std::vector<float> y(static_cast<size_t>(numel(p.output_shape)));
  dy.download(y.data(), dy.bytes());
  const std::string check = check_output(plan, params, x, y, c.tf32);

  const double in_bytes = 4.0 * numel(p.input_shape), out_bytes = 4.0 * numel(p.output_shape);
  Row r;
  r.name = c.name;
  r.ms = whole.back();
  if (p.fill_path()) {
    r.bytes = (c.assume_finite ? 0 : in_bytes) + out_bytes;
    r.floor_ms = c.assume_finite ? ceil.memset_ms : ceil.read_write_ms;
  } else {
    const ConvAttrs& cv = p.conv;
    int64_t taps = cv.in_channels;
    for (int d = 0; d < cv.dims; ++d) taps *= cv.kernel[d];
    r.gflop = 2.0 * 2.0 * numel(p.output_shape) * taps / 1e9;  // two passes over the conv
    r.bytes = in_bytes + out_bytes;                                // the fewest: read once, write once
    r.floor_ms = ceil.read_write_ms;
  }
  std::string per_kernel;
  for (size_t i = 0; i < launches.size(); ++i)
    per_kernel += fmt::format("{}{} {:.3f}", i ? ", " : "", launches[i].kernel, times[i]);
  per_kernel += fmt::format(" (sum with events between steps {:.3f})", times.back());
  r.note = per_kernel + "; " + check;
  g_rows.push_back(r);
  std::printf("%-34s %8.3f ms  [%s]\n", c.name.c_str(), r.ms, r.note.c_str());
  std::fflush(stdout);
}

std::string today() {
  const std::time_t now = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--reps" && i + 1 < argc) g_reps = std::atoi(argv[++i]);
    if (a == "--warmup" && i + 1 < argc) g_warmup = std::atoi(argv[++i]);
    if (a == "--only" && i + 1 < argc) g_only = argv[++i];
  }
  try {
    std::string why;
    if (!cuda::available(&why)) {
      std::printf("no GPU: %s\n", why.c_str());
      return 2;
    }
    const cuda::DeviceInfo& dev = cuda::use_device();
    std::printf("device: %s, NVRTC %s (%s), %s\n", dev.describe().c_str(), cuda::nvrtc_version_string().c_str(),
                cuda::nvrtc_library_path().c_str(), today().c_str());
    const std::string head = "input f32[128, 3, 16, 64, 64]\nconv3d out_channels=16 kernel_size=3\n"
                             "group_norm num_groups=8 eps=1e-5\n";
    const std::vector<Case> cases = {
        {"default block (fill, guarded)", kDefaultSpec},
        {"default block, assume_finite", kDefaultSpec, true},
        {"conv-GN-SiLU-dropout, tf32", head + "silu\ndropout p=0.2\n"},
        {"conv-GN-GELU-dropout, tf32", head + "gelu\ndropout p=0.2\n"},
        {"conv-GN-min0.5-clamp-dropout, tf32", head + "minimum 0.5\nclamp min=0.0 max=0.5\ndropout p=0.2\n"},
        {"conv-GN-SiLU-dropout, strict fp32", head + "silu\ndropout p=0.2\n", false, false},
    };
    cuda::DeviceBuffer flush(256u << 20);
    const int64_t in_n = 128LL * 3 * 16 * 64 * 64, out_n = 128LL * 16 * 14 * 62 * 62;
    Ceilings ceil;
    if (g_only.empty()) {
      cuda::DeviceBuffer x(static_cast<size_t>(in_n) * 4), y(static_cast<size_t>(out_n) * 4);
      FB_CU(cuMemsetD32Async(x.ptr(), 0x3f000000u, x.bytes() / 4, nullptr));
      ceil = measure_ceilings(dev, x, y, flush);
    }
    for (const Case& c : cases)
      if (g_only.empty() || c.name.find(g_only) != std::string::npos) run_case(c, ceil, flush);

    std::printf("\n== fuseblock CUDA benchmark: %s, %s; median of %d runs after %d warm-up, L2 flushed ==\n",
                dev.describe().c_str(), today().c_str(), g_reps, g_warmup);
    std::printf("%-44s %9s %9s %8s %9s %7s\n", "case (problem 83 shape, float32)", "time ms", "MB moved", "GFLOP",
                "floor ms", "floor%");
    for (const Row& r : g_rows)
      std::printf("%-44s %9.3f %9.1f %8.2f %9.3f %6.0f%%\n", r.name.c_str(), r.ms, r.bytes / 1e6, r.gflop, r.floor_ms,
                  r.floor_ms > 0 ? 100.0 * r.floor_ms / r.ms : 0.0);
    std::printf("floor = the measured plain kernels for the same bytes (read input once + write output once; the\n"
                "memset for assume_finite). The general path also computes %.1f GFLOP of convolution per pass.\n",
                2.0 * out_n * 81 / 1e9);
  } catch (const UserError& e) {
    std::fprintf(stderr, "%s\n", e.formatted().c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
