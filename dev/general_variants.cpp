// dev: versions of the general path's conv kernels (problem 83 shape, conv -> GroupNorm -> SiLU ->
// dropout, TF32), each checked (sample 0 against the CPU backend) and timed per kernel like the
// benchmark (events, warm-up, median of 30, L2 flushed, output poisoned). The knobs are
// ConvTuning's (src/cuda/conv_geometry.hpp); v1 is what runs.
//   fuseblock_dev_general [reps]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "cpu/cpu_backend.hpp"
#include "cuda/cuda_backend.hpp"
#include "cuda/device_context.hpp"
#include "cuda/device_memory.hpp"
#include "cuda/driver_api.hpp"
#include "cuda/executor.hpp"
#include "fuseblock/fuseblock.hpp"
#include "fuseblock/random.hpp"

using namespace fuseblock;

namespace {

struct Version {
  const char* name;
  cuda::ConvTuning t;
};

const Version kVersions[] = {
    {"v1 mpw 4, 2 blocks/SM, epilogue unroll 1", {4, 2, 1}},
    {"v2 mpw 4, 2 blocks/SM, epilogue unroll 2", {4, 2, 2}},
    {"v3 mpw 2, 2 blocks/SM, unroll 1", {2, 2, 1}},
    {"v4 mpw 2, 3 blocks/SM, unroll 1", {2, 3, 1}},
    {"v5 mpw 2, 3 blocks/SM, unroll 2", {2, 3, 2}},
};

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 30;
  std::string why;
  if (!cuda::available(&why)) {
    std::printf("no GPU: %s\n", why.c_str());
    return 2;
  }
  try {
    const cuda::DeviceInfo& dev = cuda::use_device();
    std::printf("general-path variants on %s (SiLU, tf32)\n", dev.describe().c_str());
    const Plan plan = lower(parse_spec("input f32[128, 3, 16, 64, 64]\nconv3d out_channels=16 kernel_size=3\n"
                                       "group_norm num_groups=8 eps=1e-5\nsilu\ndropout p=0.2\n", "silu"));
    const Pipeline& p = plan.pipeline;
    const Params params = init_params(p, 0);
    const Tensor x = uniform_tensor(p.input_shape, 2026);
    // Sample 0 on the CPU: the reference every version is checked against.
    Pipeline one = p;
    one.input_shape[0] = one.output_shape[0] = 1;
    Plan plan1;
    plan1.pipeline = one;
    const int64_t in_per = x.numel() / 128;
    Tensor x1(one.input_shape, std::vector<float>(x.data(), x.data() + in_per));
    Tensor ref(one.output_shape);
    cpu::run(plan1, params, x1, ref);
    double sq = 0;
    for (float v : ref.vec()) sq += double(v) * v;
    const double rms = std::sqrt(sq / ref.numel());

    cuda::DeviceBuffer flush(256u << 20);
    cuda::DeviceBuffer dx = cuda::to_device(x.vec()), dw = cuda::to_device(params.conv_weight.vec());
    cuda::DeviceBuffer db = cuda::to_device(params.conv_bias.vec()), dg = cuda::to_device(params.norm_weight.vec());
    cuda::DeviceBuffer dbeta = cuda::to_device(params.norm_bias.vec());
    cuda::DeviceBuffer dy(static_cast<size_t>(numel(p.output_shape)) * 4);
    for (const Version& v : kVersions) {
      cuda::Executor ex(plan, true, v.t);
      cuda::DeviceBuffer scratch(ex.scratch_bytes());
      const auto& ls = ex.launches();
      std::vector<CUevent> ev(ls.size() + 1);
      for (auto& e : ev) FB_CU(cuEventCreate(&e, 0));
      std::vector<std::vector<float>> t(ls.size() + 1);
      cuda::RunArgs args;
      args.seed = p.dropout.seed;
      args.offset = p.dropout.offset;
      for (int r = 0; r < 3 + reps; ++r) {
        FB_CU(cuMemsetD32Async(dy.ptr(), 0x7fa00001u, dy.bytes() / 4, nullptr));
        FB_CU(cuMemsetD32Async(flush.ptr(), static_cast<unsigned>(r), flush.bytes() / 4, nullptr));
        ex.launch({dx.ptr(), dy.ptr(), dw.ptr(), db.ptr(), dg.ptr(), dbeta.ptr()}, scratch.ptr(), args, nullptr,
                  [&](size_t i) { FB_CU(cuEventRecord(ev[i], nullptr)); });
        FB_CU(cuEventSynchronize(ev.back()));
        if (r < 3) continue;
        for (size_t i = 0; i < ls.size(); ++i) {
          float ms = 0;
          FB_CU(cuEventElapsedTime(&ms, ev[i], ev[i + 1]));
          t[i].push_back(ms);
        }
        float total = 0;
        FB_CU(cuEventElapsedTime(&total, ev[0], ev.back()));
        t.back().push_back(total);
      }
      auto med = [](std::vector<float> v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
      };
      std::vector<float> y0(static_cast<size_t>(ref.numel()));
      dy.download(y0.data(), y0.size() * 4);
      double worst = 0;
      for (size_t i = 0; i < y0.size(); ++i) worst = std::max(worst, std::fabs(double(y0[i]) - ref.data()[i]) / rms);
      std::string regs;
      for (const auto& k : ex.compiled().kernels) regs += " " + k.name + ":" + std::to_string(k.registers);
      std::printf("%-44s total %.3f ms (", v.name, med(t.back()));
      for (size_t i = 0; i < ls.size(); ++i)
        std::printf("%s%s %.3f x%d/SM", i ? ", " : "", ls[i].kernel.c_str(), med(t[i]), ls[i].blocks_per_sm);
      std::printf(")%s  sample 0 |diff|/rms %.2g %s\n", regs.c_str(), worst, worst < 1e-2 ? "ok" : "FAIL");
      for (auto& e : ev) FB_CU(cuEventDestroy(e));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
