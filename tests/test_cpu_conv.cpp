// The CPU convolution on hand-computed answers, and (disabled by default: a timing is a
// benchmark's job) its speed on KernelBench problem 83's shape.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>

#include "cpu/cpu_backend.hpp"
#include "oracle/compare.hpp"
#include "pipeline_fixtures.hpp"

namespace fbtest {
namespace {

Tensor conv_only(const ConvSpec& c, const std::vector<float>& w, const std::vector<float>& b, const std::vector<float>& x) {
  const Pipeline p = make_pipeline(c, std::nullopt);
  Params params;
  Shape wshape = {c.c_out, c.c_in};
  for (int d = 0; d < c.dims; ++d) wshape.push_back(c.kernel[d]);
  params.conv_weight = Tensor(wshape, w);
  if (c.bias) params.conv_bias = Tensor({c.c_out}, b);
  Tensor y(p.output_shape);
  poison(y);
  cpu::run_pipeline(p, params, Tensor(p.input_shape, x), y, 0, c.batch);
  EXPECT_EQ(count_poisoned(y), 0);
  return y;
}

ConvSpec conv_spec(int dims, std::vector<int64_t> in, std::vector<int64_t> k, std::vector<int64_t> s,
                   std::vector<int64_t> p, std::vector<int64_t> d, bool bias) {
  ConvSpec c;
  c.dims = dims;
  c.batch = 1;
  c.c_in = 1;
  c.c_out = 1;
  c.in_spatial = in;
  c.kernel = k;
  c.stride = s;
  c.padding = p;
  c.dilation = d;
  c.bias = bias;
  return c;
}

TEST(CpuConv, HandComputed1d) {
  const std::vector<float> x = {1, 2, 3, 4, 5}, w = {1, 0, -1};
  // padding 1, stride 2: taps (-1, 0, 1), (1, 2, 3), (3, 4, 5) with zeros outside.
  EXPECT_EQ(conv_only(conv_spec(1, {5}, {3}, {2}, {1}, {1}, true), w, {0.5f}, x).vec(),
            (std::vector<float>{-1.5f, -1.5f, 4.5f}));
  // dilation 2: taps (0, 2, 4).
  EXPECT_EQ(conv_only(conv_spec(1, {5}, {3}, {1}, {0}, {2}, true), w, {0.5f}, x).vec(), (std::vector<float>{-3.5f}));
}

TEST(CpuConv, HandComputed2dAnd3d) {
  const std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w = {1, 2, 3, 4};
  EXPECT_EQ(conv_only(conv_spec(2, {3, 3}, {2, 2}, {1, 1}, {0, 0}, {1, 1}, false), w, {}, x).vec(),
            (std::vector<float>{37, 47, 67, 77}));
  // The same numbers as a [1, 3, 3] volume with a [1, 2, 2] kernel, and again with depth padding 1:
  // the padded depth slices see only zeros and give the bias.
  EXPECT_EQ(conv_only(conv_spec(3, {1, 3, 3}, {1, 2, 2}, {1, 1, 1}, {1, 0, 0}, {1, 1, 1}, true), w, {-1.0f}, x).vec(),
            (std::vector<float>{-1, -1, -1, -1, 36, 46, 66, 76, -1, -1, -1, -1}));
}

// Several channels: out[co] = sum_ci w[co, ci] * x[ci] for a 1x1 conv.
TEST(CpuConv, ChannelsMix) {
  ConvSpec c = conv_spec(1, {2}, {1}, {1}, {0}, {1}, true);
  c.c_in = 2;
  c.c_out = 3;
  const std::vector<float> x = {1, 2, 10, 20};  // ci 0: (1, 2), ci 1: (10, 20)
  const std::vector<float> w = {1, 0, 0, 1, 1, -1};
  EXPECT_EQ(conv_only(c, w, {0, 0, 0.5f}, x).vec(), (std::vector<float>{1, 2, 10, 20, -8.5f, -17.5f}));
}

// Run with --gtest_also_run_disabled_tests --gtest_filter=CpuConv.DISABLED_Problem83Timing.
TEST(CpuConv, DISABLED_Problem83Timing) {
  ConvSpec c;
  c.batch = 128;
  c.c_in = 3;
  c.c_out = 16;
  c.in_spatial = {16, 64, 64};
  std::mt19937_64 rng(83);
  const Pipeline p = make_pipeline(c, std::nullopt);
  const Params params = random_params(p, rng);
  const Tensor x = uniform_input(p.input_shape, rng, 0.0f, 1.0f);
  Tensor y(p.output_shape);
  const double flop = 2.0 * numel(p.output_shape) * c.c_in * 27;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    cpu::run_pipeline(p, params, x, y, 0, c.batch);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("problem 83 conv3d: %.3f s, %.1f GFLOP/s (%.2f GFLOP)\n", s, flop / s * 1e-9, flop * 1e-9);
  }
  // The whole exact block (conv, GroupNorm(8), min 0.5, clamp 0..0.5, dropout 0.2).
  const Pipeline block = make_pipeline(c, group_norm(8), {op_minimum(0.5), op_clamp(0.0, 0.5)}, dropout(0.2, true, 1, 0));
  const Params block_params = random_params(block, rng);
  for (int rep = 0; rep < 2; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    cpu::run_pipeline(block, block_params, x, y, 0, c.batch);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("problem 83 exact block: %.3f s\n", s);
  }
}

}  // namespace
}  // namespace fbtest
