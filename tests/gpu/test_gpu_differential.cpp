// The CUDA backend against the float64 oracle and the CPU backend on random blocks (small
// shapes: conv1d/2d/3d, stride, padding, dilation, bias on/off, G = 1 / G = C, affine on/off,
// every pointwise op, dropout train/eval, p = 0 and 1), in strict fp32 (rtol 1e-5 against the
// oracle) and TF32 (rtol 2e-3). Masks are compared bit for bit: every element the Philox mask
// drops is 0 or NaN on the GPU, and NaN/Inf positions equal the CPU backend's. Outputs are
// poisoned first: an element never written fails.
#include <atomic>
#include <thread>
#include <vector>

#include "gpu_support.hpp"
#include "cuda/executor/executor.hpp"
#include "oracle/compare.hpp"
#include "oracle/oracle.hpp"
#include "random_blocks.hpp"

namespace fbgpu {
namespace {

constexpr int kBlocks = 60;  // each needs its own NVRTC compile per precision mode

void check_block(const fbtest::RandomBlock& b, bool tf32, const std::string& repro) {
  const Plan plan = plan_of(b.pipeline);
  int64_t unwritten = -1;
  const Tensor gpu = run_gpu(plan, b.params, b.input, tf32, &unwritten);
  EXPECT_EQ(unwritten, 0) << "elements never written\n" << repro;
  OracleStats stats;
  const std::vector<double> ref = oracle_forward(b.pipeline, b.params, b.input, &stats);
  const Comparison c = compare_with_oracle(gpu, ref, stats, tf32 ? 2e-3 : 1e-5);
  EXPECT_TRUE(c.ok) << (tf32 ? "tf32" : "fp32") << " vs oracle: " << c.message << repro;
  const Tensor cpu = run_cpu(plan, b.params, b.input);
  const Agreement a = agree(b.pipeline, gpu, cpu, tf32 ? 4e-3 : 3e-5);
  EXPECT_TRUE(a.ok) << (tf32 ? "tf32" : "fp32") << " vs cpu:\n" << a.message << repro;
}

TEST(GpuDifferential, RandomBlocksStrictAndTf32) {
  REQUIRE_GPU();
  const std::vector<uint64_t> seeds = fbtest::test_seeds(5000, kBlocks);
  std::vector<fbtest::RandomBlock> blocks;
  for (uint64_t s : seeds) blocks.push_back(fbtest::random_block(s));
  // Compile every program first, in parallel (NVRTC is the slow part of a small case).
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (unsigned w = 0; w < std::max(2u, std::thread::hardware_concurrency()); ++w)
    pool.emplace_back([&] {
      for (size_t i; (i = next++) < 2 * blocks.size();) {
        try {
          cuda::executor_for(plan_of(blocks[i / 2].pipeline), i % 2 == 0);
        } catch (...) {  // reported by the case itself, which builds again
        }
      }
    });
  for (auto& t : pool) t.join();
  for (size_t i = 0; i < blocks.size(); ++i) {
    for (bool tf32 : {false, true}) {
      check_block(blocks[i], tf32, "\n" + fbtest::repro("GpuDifferential.RandomBlocksStrictAndTf32", seeds[i], blocks[i].pipeline));
      if (HasFailure()) return;  // one repro is enough
    }
  }
}

// NaN and Inf injected into one sample of a general block: that sample is NaN everywhere (its
// statistics are NaN), the others are untouched, on both backends.
TEST(GpuDifferential, NonFiniteInOneSample) {
  REQUIRE_GPU();
  std::mt19937_64 rng(11);
  fbtest::ConvSpec c;
  c.batch = 3;
  c.c_in = 3;
  c.c_out = 16;
  c.in_spatial = {6, 9, 70};  // a row longer than one 64-wide tile
  const Pipeline p = fbtest::make_pipeline(c, fbtest::group_norm(8), {fbtest::pointwise(OpKind::Silu)},
                                           fbtest::dropout(0.2, true, 3, 1));
  const Params params = fbtest::random_params(p, rng);
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    Tensor x = fbtest::uniform_input(p.input_shape, rng);
    const int64_t per = x.numel() / c.batch;
    x.data()[1 * per + per / 2] = bad;
    for (bool tf32 : {false, true}) {
      const Tensor gpu = run_gpu(plan_of(p), params, x, tf32);
      const Tensor cpu = run_cpu(plan_of(p), params, x);
      const Agreement a = agree(p, gpu, cpu, tf32 ? 4e-3 : 3e-5);
      EXPECT_TRUE(a.ok) << "injected " << bad << (tf32 ? " tf32\n" : " fp32\n") << a.message;
      const int64_t out_per = gpu.numel() / c.batch;
      int64_t nan_in_1 = 0, nan_elsewhere = 0;
      for (int64_t i = 0; i < gpu.numel(); ++i)
        (i / out_per == 1 ? nan_in_1 : nan_elsewhere) += std::isnan(gpu.data()[i]);
      EXPECT_EQ(nan_in_1, out_per) << "the injected sample is NaN everywhere";
      EXPECT_EQ(nan_elsewhere, 0);
    }
  }
}

// The same plan twice gives the same bits: statistics are merged in a fixed order.
TEST(GpuDifferential, Deterministic) {
  REQUIRE_GPU();
  const fbtest::RandomBlock b = fbtest::random_block(77);
  const Tensor a = run_gpu(plan_of(b.pipeline), b.params, b.input, true);
  const Tensor c = run_gpu(plan_of(b.pipeline), b.params, b.input, true);
  EXPECT_EQ(0, std::memcmp(a.data(), c.data(), static_cast<size_t>(a.numel()) * 4));
}

// Large DC offsets (1e4 + noise): Chan-merged statistics keep the variance; strict fp32 only
// (TF32 rounds the offset itself to 1e4 * 2^-11, as PyTorch's TF32 convolution does).
TEST(GpuDifferential, LargeOffsetStatistics) {
  REQUIRE_GPU();
  std::mt19937_64 rng(5);
  fbtest::ConvSpec c;
  c.batch = 2;
  c.c_in = 2;
  c.c_out = 4;
  c.in_spatial = {5, 17, 23};
  const Pipeline p = fbtest::make_pipeline(c, fbtest::group_norm(2), {}, fbtest::dropout(0.0, false));
  const Params params = fbtest::random_params(p, rng);
  Tensor x = fbtest::uniform_input(p.input_shape, rng, -1.0f, 1.0f);
  for (float& v : x.vec()) v += 1e4f;
  const Tensor gpu = run_gpu(plan_of(p), params, x, false);
  OracleStats stats;
  const std::vector<double> ref = oracle_forward(p, params, x, &stats);
  const Comparison cmp = compare_with_oracle(gpu, ref, stats, 1e-5);
  EXPECT_TRUE(cmp.ok) << cmp.message;
}

// Channel counts past what the random blocks draw: 24 input channels (a reduction of 24 * 27 = 648,
// too long for the TF32 engine, so the FMA engine loads input channels in chunks) and 40 output
// channels (split across several block columns), in 3-D and 2-D, strict and TF32.
TEST(GpuDifferential, WideChannelsChunkedAndSplit) {
  REQUIRE_GPU();
  std::mt19937_64 rng(11);
  for (int dims : {3, 2}) {
    fbtest::ConvSpec c;
    c.dims = dims;
    c.batch = 2;
    c.c_in = 24;
    c.c_out = 40;
    c.in_spatial = dims == 3 ? std::vector<int64_t>{5, 9, 11} : std::vector<int64_t>{13, 17};
    c.kernel = dims == 3 ? std::vector<int64_t>{3, 3, 3} : std::vector<int64_t>{3, 3};
    c.stride = std::vector<int64_t>(static_cast<size_t>(dims), 1);
    c.padding = std::vector<int64_t>(static_cast<size_t>(dims), 1);
    c.dilation = std::vector<int64_t>(static_cast<size_t>(dims), 1);
    const Pipeline p = fbtest::make_pipeline(c, fbtest::group_norm(8), {fbtest::pointwise(OpKind::Silu)},
                                             fbtest::dropout(0.25, true, 3, 1));
    const Params params = fbtest::random_params(p, rng);
    const Tensor x = fbtest::uniform_input(p.input_shape, rng, -1.0f, 1.0f);
    for (bool tf32 : {false, true}) {
      int64_t unwritten = -1;
      const Tensor gpu = run_gpu(plan_of(p), params, x, tf32, &unwritten);
      EXPECT_EQ(unwritten, 0) << dims << "-D " << (tf32 ? "tf32" : "fp32");
      OracleStats stats;
      const std::vector<double> ref = oracle_forward(p, params, x, &stats);
      const Comparison cmp = compare_with_oracle(gpu, ref, stats, tf32 ? 2e-3 : 1e-5);
      EXPECT_TRUE(cmp.ok) << dims << "-D " << (tf32 ? "tf32" : "fp32") << ": " << cmp.message;
      const Agreement a = agree(p, gpu, run_cpu(plan_of(p), params, x), tf32 ? 4e-3 : 3e-5);
      EXPECT_TRUE(a.ok) << dims << "-D " << (tf32 ? "tf32" : "fp32") << " vs cpu:\n" << a.message;
    }
  }
}

}  // namespace
}  // namespace fbgpu
