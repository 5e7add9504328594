// Past 2^31 elements: a fill path whose output has 2.2e9 elements (8.9 GB), with a NaN in the
// last sample, whose exact fallback then writes flat indices past 2^31 (64-bit indexing in the
// guard kernel and in the conv output epilogue; the constant fill itself is a memset). Checked
// element by element against the mask.
#include <atomic>
#include <cstring>
#include <thread>

#include "cuda/runtime/device_context.hpp"
#include "cuda/runtime/device_memory.hpp"
#include "cuda/executor/executor.hpp"
#include "device_common/philox.h"
#include "fuseblock/random.hpp"
#include "gpu_support.hpp"

namespace fbgpu {
namespace {

TEST(GpuLarge, FillPathPast2To31Elements) {
  REQUIRE_GPU();
  const std::string spec =
      "input f32[33, 1, 66, 258, 258]\nconv3d out_channels=16 kernel_size=3\ngroup_norm num_groups=8\n"
      "minimum 0.0\nclamp min=0.0 max=1.0\ndropout p=0.2 seed=5 offset=1\n";
  const Plan plan = lower(parse_spec(spec, "large"));
  const Pipeline& p = plan.pipeline;
  const int64_t out_n = numel(p.output_shape), in_n = numel(p.input_shape);
  ASSERT_GT(out_n, int64_t{1} << 31);
  const cuda::DeviceInfo& dev = cuda::use_device();
  const size_t need = static_cast<size_t>(out_n + in_n) * 4 + (size_t{1} << 30);
  if (dev.total_mem < need) GTEST_SKIP() << dev.describe() << " has too little memory for " << need << " bytes";

  const Params params = init_params(plan.fallback, 1);
  Tensor x = uniform_tensor(p.input_shape, 99);
  const int64_t in_per = in_n / 33;
  x.data()[32 * in_per + in_per / 2] = std::numeric_limits<float>::quiet_NaN();  // the last sample

  auto ex = cuda::executor_for(plan, true);
  cuda::DeviceBuffer dx = cuda::to_device(x.vec());
  cuda::DeviceBuffer dy(static_cast<size_t>(out_n) * 4);
  dy.fill_u32(0x7fa00001u);  // a signalling-NaN poison no arithmetic produces
  cuda::DeviceBuffer dw = cuda::to_device(params.conv_weight.vec()), db = cuda::to_device(params.conv_bias.vec());
  cuda::DeviceBuffer dg = cuda::to_device(params.norm_weight.vec()), dbeta = cuda::to_device(params.norm_bias.vec());
  cuda::DeviceBuffer scratch(ex->scratch_bytes());
  cuda::RunArgs args;
  args.seed = p.dropout.seed;
  args.offset = p.dropout.offset;
  ex->launch(block_tensors(dx, dy, dw, db, dg, dbeta, scratch), args, nullptr);
  cuda::synchronize();

  const int64_t out_per = out_n / 33;
  const fb_u32 th = fb_keep_threshold(p.dropout.p);
  const float kept = fb_dropout_apply(0.0f, true, fb_dropout_scale(p.dropout.p));
  const int64_t chunk = int64_t{1} << 26;
  std::vector<float> host(static_cast<size_t>(chunk));
  std::atomic<int64_t> wrong{0};
  int64_t first_wrong = -1;
  const unsigned workers = std::max(1u, std::thread::hardware_concurrency());
  for (int64_t at = 0; at < out_n; at += chunk) {
    const int64_t len = std::min(chunk, out_n - at);
    dy.download(host.data(), static_cast<size_t>(len) * 4, static_cast<size_t>(at) * 4);
    const int64_t before = wrong.load();
    std::vector<std::thread> pool;
    for (unsigned w = 0; w < workers; ++w)
      pool.emplace_back([&, w] {
        int64_t bad = 0;
        for (int64_t i = len * w / workers; i < len * (w + 1) / workers; ++i) {
          const int64_t e = at + i;
          const float v = host[static_cast<size_t>(i)];
          uint32_t bits;
          std::memcpy(&bits, &v, 4);
          bool ok;
          if (e / out_per == 32) {
            ok = std::isnan(v) && bits != 0x7fa00001u;  // NaN, and not the poison
          } else {
            const bool keep = fb_dropout_bits(p.dropout.seed, p.dropout.offset, static_cast<fb_u64>(e / 4)).v[e % 4] < th;
            ok = v == (keep ? kept : 0.0f) && bits != 0x7fa00001u;
          }
          bad += !ok;
        }
        wrong += bad;
      });
    for (auto& t : pool) t.join();
    if (wrong.load() != before && first_wrong < 0) first_wrong = at;
  }
  EXPECT_EQ(wrong.load(), 0) << "first bad chunk at " << first_wrong;
}

}  // namespace
}  // namespace fbgpu
