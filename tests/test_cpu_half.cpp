// bf16 and f16 blocks on the CPU backend against the float64 oracle, which rounds to the storage
// type at the points PyTorch eager does: random blocks (fresh seeds every run, a one-line repro
// on failure), NaN and Inf injected, f16 overflow, the rounding points themselves, and lowering
// (guard, fill path) of half blocks.
#include <gtest/gtest.h>

#include "cuda/executor/cuda_backend.hpp"
#include "cuda/runtime/cudnn_conv.hpp"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "cpu/cpu_backend.hpp"
#include "device_common/philox.h"
#include "fuseblock/fuseblock.hpp"
#include "oracle/compare.hpp"
#include "oracle/oracle.hpp"
#include "pipeline_fixtures.hpp"
#include "random_blocks.hpp"

namespace fbtest {
namespace {

constexpr DType kHalfTypes[] = {DType::BF16, DType::F16};

Plan plan_of(const Pipeline& p) {
  Plan plan;
  plan.pipeline = p;
  return plan;
}

Tensor run_cpu(const Pipeline& p, const Params& params, const Tensor& x) {
  Tensor y(p.output_shape);
  poison(y);
  cpu::run(plan_of(p), params, x, y);
  return y;
}

// Every value of y is a value of d (the output holds only what d can store).
int64_t count_not_representable(const Tensor& y, DType d) {
  int64_t bad = 0;
  for (float v : y.vec())
    if (!std::isnan(v) && std::bit_cast<uint32_t>(round_to(d, v)) != std::bit_cast<uint32_t>(v)) ++bad;
  return bad;
}

Comparison check_against_oracle(const Pipeline& p, const Params& params, const Tensor& x, const Tensor& y,
                                const std::string& repro_line) {
  OracleStats stats;
  const std::vector<double> ref = oracle_forward(p, params, x, &stats);
  const Comparison c = compare_with_oracle(y, ref, stats, rtol_for(p.types.storage));
  EXPECT_TRUE(c.ok) << c.message << repro_line;
  EXPECT_EQ(count_poisoned(y), 0) << "elements never written\n" << repro_line;
  EXPECT_EQ(count_not_representable(y, p.types.storage), 0) << repro_line;
  return c;
}

TEST(CpuHalf, RandomBlocksMatchTheOracle) {
  for (DType d : kHalfTypes) {
    int with_norm = 0;
    double worst = 0;
    for (uint64_t seed : fresh_test_seeds(300)) {
      RandomBlock b = random_block(seed);
      store_as(d, b.pipeline, b.params);
      b.input.round_to(d);
      with_norm += b.pipeline.norm.has_value();
      const Tensor y = run_cpu(b.pipeline, b.params, b.input);
      worst = std::max(worst, check_against_oracle(b.pipeline, b.params, b.input, y,
                                                   repro("CpuHalf.RandomBlocksMatchTheOracle", seed, b.pipeline))
                                  .worst);
      if (HasFailure()) return;
    }
    if (!std::getenv("FB_TEST_SEED")) EXPECT_GT(with_norm, 150);
    if (std::getenv("FB_TEST_VERBOSE")) std::printf("%s: worst %.3g of tolerance\n", dtype_name(d), worst);
  }
}

// Each pointwise result is rounded: x + 256 keeps no fraction in bf16, whatever x was, where the
// f32 block keeps it. (A tolerance of 2e-2 cannot see one missing rounding of 2^-9; this can.)
TEST(CpuHalf, EachPointwiseResultIsRounded) {
  std::mt19937_64 rng(std::random_device{}());
  ConvSpec c;
  c.dims = 1;
  c.in_spatial = {257};
  c.kernel = {3};
  // x + 256 in bf16 has a step of 1 or 2 (for |x| < 128): the sum keeps no fraction, so sub 256
  // leaves integers.
  const Pipeline f32 = make_pipeline(c, group_norm(2), {pointwise(OpKind::Add, 256.0), pointwise(OpKind::Sub, 256.0)});
  Pipeline p = f32;
  Params params = random_params(p, rng);
  store_as(DType::BF16, p, params);
  Tensor x = rounded_to(uniform_input(p.input_shape, rng), DType::BF16);
  const Tensor y = run_cpu(p, params, x);
  int64_t nonzero = 0;
  for (float v : y.vec()) {
    ASSERT_EQ(v, std::round(v));
    nonzero += v != 0.0f;
  }
  EXPECT_GT(nonzero, 0);  // GroupNorm's output reaches past +-0.5
  check_against_oracle(p, params, x, y, describe(p));
  // The same values through the f32 pipeline keep their fractions.
  const Tensor y32 = run_cpu(f32, params, x);
  int64_t fractional = 0;
  for (float v : y32.vec()) fractional += v != std::round(v);
  EXPECT_GT(fractional, y32.numel() / 2);
}

// With no norm and no chain the output is the conv output rounded once from its float32 sum:
// exactly the f32 block's output (same rounded input and parameters) rounded to the type.
TEST(CpuHalf, ConvOutputIsTheFloatSumRoundedOnce) {
  for (DType d : kHalfTypes)
    for (uint64_t seed : fresh_test_seeds(30)) {
      RandomBlock b = random_block(seed);
      b.pipeline.norm.reset();
      b.pipeline.chain.clear();
      b.pipeline.dropout = dropout(0.0, false);
      Pipeline half = b.pipeline;
      store_as(d, half, b.params);
      b.input.round_to(d);
      const Tensor want = rounded_to(run_cpu(b.pipeline, b.params, b.input), d);
      const Tensor got = run_cpu(half, b.params, b.input);
      ASSERT_EQ(0, std::memcmp(want.data(), got.data(), sizeof(float) * static_cast<size_t>(got.numel())))
          << repro("CpuHalf.ConvOutputIsTheFloatSumRoundedOnce", seed, half);
    }
}

// NaN and +-Inf in the input and in a parameter: the oracle's positions, in both types.
TEST(CpuHalf, NonFiniteValuesLandWhereTheOracleSays) {
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity()};
  for (DType d : kHalfTypes)
    for (uint64_t seed : fresh_test_seeds(60)) {
      RandomBlock b = random_block(seed);
      std::mt19937_64 rng(seed);
      store_as(d, b.pipeline, b.params);
      const int64_t n = b.input.numel();
      for (int k = 0; k < 3; ++k) b.input.data()[rng() % n] = specials[rng() % 3];
      if (rng() % 4 == 0 && b.params.conv_bias.numel() > 0) b.params.conv_bias.data()[0] = specials[rng() % 3];
      b.input.round_to(d);
      const Tensor y = run_cpu(b.pipeline, b.params, b.input);
      check_against_oracle(b.pipeline, b.params, b.input, y,
                           repro("CpuHalf.NonFiniteValuesLandWhereTheOracleSays", seed, b.pipeline));
      if (HasFailure()) return;
    }
}

// f16 stores nothing past 65504: a product past 65520 becomes inf where PyTorch's .half() result
// would, and a conv output past it makes its group's statistics, and so the group, NaN.
TEST(CpuHalf, F16OverflowBecomesInf) {
  std::mt19937_64 rng(std::random_device{}());
  ConvSpec c;
  c.dims = 2;
  c.c_in = 4;
  c.c_out = 4;
  c.in_spatial = {9, 11};
  c.kernel = {3, 3};
  {  // chain overflow: GroupNorm output (unit variance, |gamma| >= 0.5) times 6e4 passes 65520
     // wherever |normalized value * gamma| > 1.092
    Pipeline p = make_pipeline(c, group_norm(2), {pointwise(OpKind::Mul, 6e4)});
    Params params = random_params(p, rng);
    store_as(DType::F16, p, params);
    const Tensor x = rounded_to(uniform_input(p.input_shape, rng), DType::F16);
    const Tensor y = run_cpu(p, params, x);
    int64_t inf = 0, finite_big = 0;
    for (float v : y.vec()) inf += std::isinf(v), finite_big += std::isfinite(v) && std::fabs(v) > 32768;
    EXPECT_GT(inf, 0);
    EXPECT_GT(finite_big, 0);  // values between 32768 and 65504 are kept
    check_against_oracle(p, params, x, y, describe(p));
    // bf16 has float32's range: the same block has no inf there.
    Pipeline pb = p;
    Params pbp = random_params(pb, rng);
    store_as(DType::BF16, pb, pbp);
    const Tensor yb = run_cpu(pb, pbp, rounded_to(uniform_input(pb.input_shape, rng), DType::BF16));
    for (float v : yb.vec()) ASSERT_FALSE(std::isinf(v));
  }
  {  // conv overflow: positive weights and, in the last sample, inputs near f16's top give conv
     // outputs past 65504; the other samples stay small and finite
    Pipeline p = make_pipeline(c, group_norm(4), {pointwise(OpKind::Relu)});
    Params params = random_params(p, rng);
    for (float& w : params.conv_weight.vec()) w = std::fabs(w);
    store_as(DType::F16, p, params);
    Tensor x = uniform_input(p.input_shape, rng);
    const int64_t per_sample = x.numel() / c.batch;
    std::uniform_real_distribution<float> big(20000.0f, 60000.0f);
    for (int64_t i = x.numel() - per_sample; i < x.numel(); ++i) x.data()[i] = big(rng);
    x.round_to(DType::F16);
    const Tensor y = run_cpu(p, params, x);
    int64_t nan = 0;
    for (int64_t i = 0; i < y.numel(); ++i) {
      const bool last_sample = i >= y.numel() - y.numel() / c.batch;
      ASSERT_EQ(std::isnan(y.data()[i]), last_sample) << i;
      nan += std::isnan(y.data()[i]);
    }
    EXPECT_GT(nan, 0);
    check_against_oracle(p, params, x, y, describe(p));
  }
}

// Dropout in a half block: x * mask * scale in float32, then rounded (p = 0.3: the scale 1/0.7 is
// not a bf16 value, so rounding the scale first, or not rounding at all, would differ).
TEST(CpuHalf, DropoutRoundsItsProduct) {
  std::mt19937_64 rng(std::random_device{}());
  ConvSpec c;
  const uint64_t seed = rng();
  for (DType d : kHalfTypes) {
    Pipeline p = make_pipeline(c, group_norm(2), {}, dropout(0.3, true, seed, 7));
    Params params = random_params(p, rng);
    store_as(d, p, params);
    const Tensor x = rounded_to(uniform_input(p.input_shape, rng), d);
    const Tensor y = run_cpu(p, params, x);
    Pipeline no_drop = p;
    no_drop.dropout = dropout(0.0, false);
    const Tensor normed = run_cpu(no_drop, params, x);
    const float scale = fb_dropout_scale(0.3);
    int64_t kept = 0;
    for (int64_t i = 0; i < y.numel(); ++i) {
      const float v = normed.data()[i], got = y.data()[i];
      if (got == 0.0f && v != 0.0f) continue;  // dropped
      ASSERT_EQ(got, round_to(d, v * 1.0f * scale)) << i;
      ++kept;
    }
    EXPECT_GT(kept, y.numel() / 2);
    check_against_oracle(p, params, x, y, describe(p));
  }
}

// A half spec lowered and run through the public API: the problem-83 chain still folds under the
// guard, the fill path equals the exact path, and an input of the wrong dtype is refused.
TEST(CpuHalf, LoweredSpecsRunThroughThePublicApi) {
  for (DType d : kHalfTypes) {
    const std::string spec = std::string("input ") + dtype_name(d) +
                             "[3, 3, 6, 12, 10]\nconv3d out_channels=16 kernel_size=3\ngroup_norm num_groups=8\n"
                             "minimum 0.0\nclamp min=0.0 max=1.0\ndropout p=0.2\n";
    const Plan plan = lower(parse_spec(spec, "half.block"));
    EXPECT_EQ(plan.pipeline.types.storage, d);
    EXPECT_TRUE(plan.pipeline.fill_path()) << dump(plan);
    ASSERT_TRUE(plan.guard.has_value());
    EXPECT_LE(plan.guard->conv_output_bound, dtype_info(d).max_finite / 2);
    const Plan exact = lower(parse_spec(spec, "half.block"), {.assume_finite = false, .simplify = false});
    const Params params = init_params(plan.fallback, 5);
    EXPECT_EQ(params.conv_weight.dtype(), d);
    EXPECT_EQ(count_not_representable(params.conv_weight, d), 0);
    std::mt19937_64 rng(std::random_device{}());
    Tensor x = rounded_to(uniform_input(plan.pipeline.input_shape, rng, -3.0f, 3.0f), d);
    x.data()[rng() % x.numel()] = std::numeric_limits<float>::quiet_NaN();  // one sample takes the fallback
    RunOptions cpu;
    cpu.device = Device::Cpu;
    const Tensor y = run(plan, params, x, cpu), y_exact = run(exact, params, x, cpu);
    EXPECT_EQ(y.dtype(), d);
    for (int64_t i = 0; i < y.numel(); ++i) {
      const float a = y.data()[i], b = y_exact.data()[i];
      ASSERT_TRUE((std::isnan(a) && std::isnan(b)) || a == b) << i << ": " << a << " vs " << b;
    }
    // An f32 input for a half block is refused, naming both types.
    try {
      run(plan, params, rounded_to(x, DType::F32), cpu);
      ADD_FAILURE() << "an f32 input ran in a " << dtype_name(d) << " block";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("input is ") + dtype_name(d)), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("f32"), std::string::npos) << e.what();
    }
    // CUDA runs half blocks only through cuDNN (store_once): without a GPU or cuDNN, auto picks
    // the CPU and says why, and asking for CUDA is a UserError.
    std::string no_gpu;
    if (cuda::available(&no_gpu) && !cuda::cudnn_unavailable()) {
      EXPECT_EQ(resolve_device(Device::Auto, d), Device::Cuda);
    } else {
      EXPECT_THROW(resolve_device(Device::Cuda, d), UserError);
      std::string why;
      EXPECT_EQ(resolve_device(Device::Auto, d, &why), Device::Cpu);
      EXPECT_NE(why.find("runs on CUDA only through cuDNN's conv"), std::string::npos) << why;
    }
  }
}

}  // namespace
}  // namespace fbtest
