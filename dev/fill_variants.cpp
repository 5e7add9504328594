// dev: numbered versions of the fill-path kernel (llm.c dev/cuda style), each checked against the
// CPU backend bit for bit and timed like the benchmark (events, warm-up, median of 50, L2 flushed
// by a 256 MB write, output poisoned before every run). The winner's options are the defaults of
// FillOptions (src/cuda/emit_fill.hpp). Problem 83's shape, guarded and with assume_finite.
//   fuseblock_dev_fill [reps]
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "cpu/cpu_backend.hpp"
#include "cuda/cuda_backend.hpp"
#include "cuda/device_context.hpp"
#include "cuda/device_memory.hpp"
#include "cuda/driver_api.hpp"
#include "cuda/emit_common.hpp"
#include "cuda/emit_fill.hpp"
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
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
