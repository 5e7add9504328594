// Parameters: PyTorch-style initialisation, shape checks, loading from safetensors, and the
// guard's input bound.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "fuseblock/error.hpp"
#include "fuseblock/io.hpp"
#include "fuseblock/params.hpp"

namespace fb = fuseblock;
namespace fs = std::filesystem;

namespace {

// KernelBench level 2 problem 83: Conv3d(3, 16, 3) -> GroupNorm(8, 16).
fb::Pipeline problem83() {
  fb::Pipeline p;
  p.input_shape = {128, 3, 16, 64, 64};
  p.output_shape = {128, 16, 14, 62, 62};
  p.conv.dims = 3;
  p.conv.in_channels = 3;
  p.conv.out_channels = 16;
  p.conv.kernel = {3, 3, 3};
  p.norm = fb::GroupNormAttrs{8, 1e-5, true};
  return p;
}

// A fresh, empty folder for the running test, removed when the test ends.
struct ScratchDir {
  std::string path;
  ScratchDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    fs::path dir = fs::path(::testing::TempDir()) / (std::string("fb_params_") + info->test_suite_name() + "_" +
                                                     info->name() + "_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    path = dir.string();
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

template <class F>
std::string expect_user_error(F&& f, std::initializer_list<std::string> pieces) {
  try {
    f();
  } catch (const fb::UserError& e) {
    std::string msg = e.formatted();
    for (const std::string& p : pieces) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
    return msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected a UserError, got: " << e.what();
    return {};
  }
  ADD_FAILURE() << "expected a UserError, nothing was thrown";
  return {};
}

bool same_bits(const fb::Tensor& a, const fb::Tensor& b) {
  return a.shape() == b.shape() && a.vec().size() == b.vec().size() &&
         std::memcmp(a.data(), b.data(), a.vec().size() * 4) == 0;
}

// Checks that `t` looks like draws from U(-bound, bound): inside the bounds, mean and variance
// within 5 standard errors of 0 and bound^2 / 3, and the extremes close to the bounds.
void expect_uniform(const fb::Tensor& t, double bound) {
  ASSERT_GT(t.numel(), 0);
  double n = static_cast<double>(t.numel()), sum = 0, sum2 = 0, lo = 0, hi = 0;
  for (float v : t.vec()) {
    ASSERT_TRUE(std::isfinite(v));
    EXPECT_LE(std::fabs(v), static_cast<float>(bound));
    sum += v;
    sum2 += double(v) * v;
    lo = std::min<double>(lo, v);
    hi = std::max<double>(hi, v);
  }
  double var = bound * bound / 3;
  EXPECT_NEAR(sum / n, 0.0, 5 * std::sqrt(var / n));
  // Var(U^2) for U ~ U(-b, b) is 4 b^4 / 45.
  EXPECT_NEAR(sum2 / n, var, 5 * std::sqrt(4 * std::pow(bound, 4) / 45 / n));
  if (n >= 1000) {
    EXPECT_GT(hi, 0.99 * bound);
    EXPECT_LT(lo, -0.99 * bound);
  }
}

}  // namespace

// ---- init_params -------------------------------------------------------------------------------

TEST(InitParams, Problem83) {
  fb::Pipeline p = problem83();
  fb::Params params = fb::init_params(p, 42);
  EXPECT_EQ(params.conv_weight.shape(), (fb::Shape{16, 3, 3, 3, 3}));
  EXPECT_EQ(params.conv_bias.shape(), (fb::Shape{16}));
  EXPECT_EQ(params.norm_weight.shape(), (fb::Shape{16}));
  EXPECT_EQ(params.norm_bias.shape(), (fb::Shape{16}));
  EXPECT_NO_THROW(fb::check_params(p, params));
  double bound = 1.0 / std::sqrt(81.0);  // fan_in = 3 * 3 * 3 * 3
  expect_uniform(params.conv_weight, bound);
  for (float v : params.conv_bias.vec()) EXPECT_LE(std::fabs(v), static_cast<float>(bound));
  for (float v : params.norm_weight.vec()) EXPECT_EQ(v, 1.0f);
  for (float v : params.norm_bias.vec()) EXPECT_EQ(v, 0.0f);
}

TEST(InitParams, LargeFanInStatistics) {
  fb::Pipeline p = problem83();
  p.conv.in_channels = 64;
  p.conv.out_channels = 128;
  p.conv.kernel = {3, 5, 2};
  p.norm->num_groups = 32;
  fb::Params params = fb::init_params(p, 7);
  EXPECT_EQ(params.conv_weight.shape(), (fb::Shape{128, 64, 3, 5, 2}));
  double bound = 1.0 / std::sqrt(64.0 * 30);
  expect_uniform(params.conv_weight, bound);
  expect_uniform(params.conv_bias, bound);
}

TEST(InitParams, Deterministic) {
  fb::Pipeline p = problem83();
  fb::Params a = fb::init_params(p, 1234), b = fb::init_params(p, 1234), c = fb::init_params(p, 1235);
  EXPECT_TRUE(same_bits(a.conv_weight, b.conv_weight));
  EXPECT_TRUE(same_bits(a.conv_bias, b.conv_bias));
  EXPECT_FALSE(same_bits(a.conv_weight, c.conv_weight));
  EXPECT_FALSE(same_bits(a.conv_bias, c.conv_bias));
  // Platform independence: the C++ standard fixes std::mt19937_64's 10000th output for seed 5489
  // at 9981545732273789042; with our documented conversion that pins the 10000th weight.
  fb::Pipeline big = problem83();
  big.conv.in_channels = 64;
  big.conv.out_channels = 128;  // 128 * 64 * 27 weights, fan_in 1728
  fb::Params z = fb::init_params(big, 5489);
  double u = static_cast<double>(9981545732273789042ull >> 11) * 0x1.0p-53;
  EXPECT_EQ(z.conv_weight.data()[9999], static_cast<float>((2 * u - 1) * (1 / std::sqrt(1728.0))));
}

TEST(InitParams, Variants) {
  // conv1d / conv2d, no bias, no norm, non-affine norm.
  fb::Pipeline p1 = problem83();
  p1.conv.dims = 1;
  p1.conv.kernel = {5, 1, 1};
  p1.conv.bias = false;
  p1.norm.reset();
  fb::Params a = fb::init_params(p1, 3);
  EXPECT_EQ(a.conv_weight.shape(), (fb::Shape{16, 3, 5}));
  EXPECT_EQ(a.conv_bias.numel(), 0);
  EXPECT_EQ(a.norm_weight.numel(), 0);
  EXPECT_EQ(a.norm_bias.numel(), 0);
  for (float v : a.conv_weight.vec()) EXPECT_LE(std::fabs(v), static_cast<float>(1 / std::sqrt(15.0)));
  EXPECT_NO_THROW(fb::check_params(p1, a));

  fb::Pipeline p2 = problem83();
  p2.conv.dims = 2;
  p2.conv.kernel = {3, 4, 1};
  p2.norm->affine = false;
  fb::Params b = fb::init_params(p2, 3);
  EXPECT_EQ(b.conv_weight.shape(), (fb::Shape{16, 3, 3, 4}));
  EXPECT_EQ(b.norm_weight.numel(), 0);
  EXPECT_NO_THROW(fb::check_params(p2, b));
}

TEST(InitParams, FillPathKeepsWhatTheFallbackNeeds) {
  // On the fill path the norm is folded away, but conv attrs stay and the fallback needs all
  // parameters: the same Params must pass the exact pipeline's check.
  fb::Pipeline exact = problem83();
  fb::Pipeline fill = exact;
  fill.computes_conv = false;
  fill.norm.reset();
  fb::Params params = fb::init_params(fill, 9);
  EXPECT_NO_THROW(fb::check_params(fill, params));
  EXPECT_NO_THROW(fb::check_params(exact, params));
  EXPECT_TRUE(same_bits(params.conv_weight, fb::init_params(exact, 9).conv_weight));
  EXPECT_TRUE(same_bits(params.conv_bias, fb::init_params(exact, 9).conv_bias));
}

// ---- check_params ------------------------------------------------------------------------------

TEST(CheckParams, ShapeErrors) {
  fb::Pipeline p = problem83();
  fb::Params good = fb::init_params(p, 1);

  fb::Params w = good;
  w.conv_weight = fb::Tensor({16, 3, 3, 3}, 0.f);
  std::string msg = expect_user_error([&] { fb::check_params(p, w); }, {});
  EXPECT_EQ(msg, "error: conv.weight has shape [16, 3, 3, 3], expected [16, 3, 3, 3, 3]");

  fb::Params b = good;
  b.conv_bias = fb::Tensor();
  expect_user_error([&] { fb::check_params(p, b); }, {"conv.bias is missing, expected shape [16]"});
  b.conv_bias = fb::Tensor({15}, 0.f);
  expect_user_error([&] { fb::check_params(p, b); }, {"conv.bias has shape [15], expected [16]"});
  b.conv_bias = fb::Tensor({0});
  expect_user_error([&] { fb::check_params(p, b); }, {"conv.bias has shape [0], expected [16]"});

  fb::Pipeline nobias = p;
  nobias.conv.bias = false;
  expect_user_error([&] { fb::check_params(nobias, good); }, {"conv.bias has shape [16]", "bias=false"});

  fb::Params n = good;
  n.norm_weight = fb::Tensor({8}, 1.f);
  expect_user_error([&] { fb::check_params(p, n); }, {"norm.weight has shape [8], expected [16]"});
  n = good;
  n.norm_bias = fb::Tensor();
  expect_user_error([&] { fb::check_params(p, n); }, {"norm.bias is missing"});

  // Non-finite values are not a shape problem: the guard handles them.
  fb::Params nan = good;
  nan.conv_weight.data()[5] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_NO_THROW(fb::check_params(p, nan));
}

// ---- load_params -------------------------------------------------------------------------------

TEST(LoadParams, RoundTripAndExtraKeys) {
  ScratchDir scratch;
  const std::string& dir = scratch.path;
  fb::Pipeline p = problem83();
  fb::Params params = fb::init_params(p, 77);
  std::string path = dir + "/model.safetensors";
  fb::save_safetensors(path, {{"conv.weight", params.conv_weight},
                              {"conv.bias", params.conv_bias},
                              {"norm.weight", fb::Tensor({16}, 0.5f)},
                              {"norm.bias", fb::Tensor({16}, -0.25f)},
                              {"extra.thing", fb::Tensor({3, 3}, 2.f)}});
  fb::Params back = fb::load_params(p, path);
  EXPECT_TRUE(same_bits(back.conv_weight, params.conv_weight));
  EXPECT_TRUE(same_bits(back.conv_bias, params.conv_bias));
  EXPECT_EQ(back.norm_weight.data()[3], 0.5f);
  EXPECT_EQ(back.norm_bias.data()[15], -0.25f);
  EXPECT_NO_THROW(fb::check_params(p, back));

  // Keys the block has no use for are ignored: no conv bias, no norm.
  fb::Pipeline bare = p;
  bare.conv.bias = false;
  bare.norm.reset();
  fb::Params b = fb::load_params(bare, path);
  EXPECT_EQ(b.conv_bias.numel(), 0);
  EXPECT_NO_THROW(fb::check_params(bare, b));
}

TEST(LoadParams, Errors) {
  ScratchDir scratch;
  const std::string& dir = scratch.path;
  fb::Pipeline p = problem83();
  fb::Params params = fb::init_params(p, 5);
  std::string path = dir + "/m.safetensors";

  fb::save_safetensors(path, {{"conv.weight", params.conv_weight}, {"norm.weight", params.norm_weight},
                              {"norm.bias", params.norm_bias}});
  expect_user_error([&] { fb::load_params(p, path); }, {path, "conv.bias is missing", "[16]", "conv.weight"});

  fb::save_safetensors(path, {{"conv.weight", fb::Tensor({16, 3, 3, 3}, 0.f)}, {"conv.bias", params.conv_bias},
                              {"norm.weight", params.norm_weight}, {"norm.bias", params.norm_bias}});
  expect_user_error([&] { fb::load_params(p, path); },
                    {path, "conv.weight has shape [16, 3, 3, 3], expected [16, 3, 3, 3, 3]"});

  fb::save_safetensors(path, {{"conv.weight", params.conv_weight}, {"conv.bias", params.conv_bias},
                              {"norm.weight", fb::Tensor({8}, 1.f)}, {"norm.bias", params.norm_bias}});
  expect_user_error([&] { fb::load_params(p, path); }, {path, "norm.weight has shape [8], expected [16]"});

  expect_user_error([&] { fb::load_params(p, dir + "/absent.safetensors"); }, {dir + "/absent.safetensors", "cannot open"});
}

// ---- guard_input_bound -------------------------------------------------------------------------

namespace {
fb::Params tiny(std::vector<float> w, std::vector<float> b) {
  // Two output channels, one input channel, kernel 2 (conv1d).
  fb::Params p;
  p.conv_weight = fb::Tensor({2, 1, 2}, std::move(w));
  if (!b.empty()) p.conv_bias = fb::Tensor({2}, std::move(b));
  return p;
}
}  // namespace

TEST(GuardInputBound, HandComputed) {
  // Channel 0: sum|w| = 3, |b| = 1 -> M <= (10 - 1) / 3 = 3.  Channel 1: sum|w| = 1, |b| = 3 -> 7.
  EXPECT_DOUBLE_EQ(fb::guard_input_bound(tiny({1, -2, 0.5, 0.5}, {1, -3}), 10.0), 3.0);
  // No bias: 10 / 3.
  EXPECT_DOUBLE_EQ(fb::guard_input_bound(tiny({1, -2, 0.5, 0.5}, {}), 10.0), 10.0 / 3);
  // The tighter channel decides: channel 1 now has sum|w| = 8, |b| = 2 -> (10 - 2) / 8 = 1.
  EXPECT_DOUBLE_EQ(fb::guard_input_bound(tiny({1, -2, -4, 4}, {1, 2}), 10.0), 1.0);
  // A zero channel constrains nothing.
  EXPECT_DOUBLE_EQ(fb::guard_input_bound(tiny({0, 0, 0.25, 0.25}, {5, 0}), 10.0), 20.0);
  // All weights zero: any finite input passes.
  EXPECT_EQ(fb::guard_input_bound(tiny({0, -0.0f, 0, 0}, {1, 1}), 10.0), std::numeric_limits<double>::infinity());
  // A bias alone past the bound: no input can pass.
  double none = fb::guard_input_bound(tiny({1, 1, 1, 1}, {0, 11}), 10.0);
  EXPECT_TRUE(none < 0);
  EXPECT_FALSE(0.0 <= none);
  // Problem 83's default shape with init params: M * sum|w| + |b| <= B holds for every channel,
  // tightly for the worst one.
  fb::Params p83 = fb::init_params(problem83(), 3);
  double m = fb::guard_input_bound(p83, 1e12);
  ASSERT_GT(m, 0);
  double worst = 0;
  for (int o = 0; o < 16; ++o) {
    double s = 0;
    for (int i = 0; i < 81; ++i) s += std::fabs(p83.conv_weight.data()[o * 81 + i]);
    double y = m * s + std::fabs(p83.conv_bias.data()[o]);
    EXPECT_LE(y, 1e12 * (1 + 1e-12));
    worst = std::max(worst, y);
  }
  EXPECT_NEAR(worst, 1e12, 1e12 * 1e-12);
}

TEST(GuardInputBound, NonFiniteParams) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(std::isnan(fb::guard_input_bound(tiny({1, nan, 0, 0}, {0, 0}), 10.0)));
  EXPECT_TRUE(std::isnan(fb::guard_input_bound(tiny({1, 1, 0, 0}, {-inf, 0}), 10.0)));
  fb::Params p = tiny({1, 1, 0, 0}, {0, 0});
  p.norm_weight = fb::Tensor({2}, 1.f);
  p.norm_bias = fb::Tensor({2}, std::vector<float>{0.f, inf});
  EXPECT_TRUE(std::isnan(fb::guard_input_bound(p, 10.0)));
  p.norm_bias.data()[1] = 0;
  EXPECT_DOUBLE_EQ(fb::guard_input_bound(p, 10.0), 5.0);
}
