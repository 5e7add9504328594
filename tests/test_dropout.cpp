// Dropout: the Philox4x32-10 stream (Random123's known answers), the keep mask's determinism and
// statistics, exact kept values, p = 0 / p = 1 / eval, and independence from the thread count.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "cpu/cpu_backend.hpp"
#include "device_common/philox.h"
#include "oracle/compare.hpp"
#include "pipeline_fixtures.hpp"

namespace fbtest {
namespace {

// Random123's kat_vectors for philox4x32_10: counter words, key words, expected output.
TEST(Philox, KnownAnswerVectors) {
  struct Kat {
    fb_u32 ctr[4], key[2], out[4];
  };
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
       {0xffffffffu, 0xffffffffu},
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
       {0xa4093822u, 0x299f31d0u},
       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (const Kat& k : kats) {
    const fb_u32x4 r = fb_philox4x32_10(k.ctr[0], k.ctr[1], k.ctr[2], k.ctr[3], k.key[0], k.key[1]);
    for (int j = 0; j < 4; ++j) EXPECT_EQ(r.v[j], k.out[j]) << "counter " << std::hex << k.ctr[0] << " word " << j;
  }
}

// Element i's draw: counter (i / 4, offset), key seed, word i % 4, top 24 bits.
TEST(Philox, DropoutBitsAddressing) {
  const fb_u64 seed = 0x0123456789abcdefull, offset = 0xfedcba9876543210ull, block = 0x1122334455ull;
  const fb_u32x4 raw = fb_philox4x32_10(0x22334455u, 0x11u, 0x76543210u, 0xfedcba98u, 0x89abcdefu, 0x01234567u);
  const fb_u32x4 bits = fb_dropout_bits(seed, offset, block);
  for (int j = 0; j < 4; ++j) EXPECT_EQ(bits.v[j], raw.v[j] >> 8);
}

TEST(Dropout, KeepThresholdAndScale) {
  EXPECT_EQ(fb_keep_threshold(0.0), 16777216u);
  EXPECT_EQ(fb_keep_threshold(1.0), 0u);
  EXPECT_EQ(fb_keep_threshold(0.5), 8388608u);
  EXPECT_EQ(fb_keep_threshold(0.2), 13421773u);  // ceil(0.8 * 2^24): u < 13421772.8
  EXPECT_EQ(fb_dropout_scale(0.2), 1.25f);
  EXPECT_EQ(fb_dropout_scale(0.5), 2.0f);
  EXPECT_EQ(fb_dropout_scale(0.3), static_cast<float>(1.0 / static_cast<double>(0.7f)));
  EXPECT_EQ(fb_dropout_scale(1.0), 0.0f);
  EXPECT_EQ(fb_dropout_scale(0.0), 1.0f);
}

// A block whose output before dropout is exactly 1 everywhere (1x1 conv, weight 1, no bias, input 1),
// so the output is the mask times the scale.
Pipeline ones_pipeline(int64_t batch, int64_t length, DropoutAttrs d) {
  ConvSpec c;
  c.dims = 1;
  c.batch = batch;
  c.c_in = 1;
  c.c_out = 1;
  c.in_spatial = {length};
  c.kernel = {1};
  c.bias = false;
  return make_pipeline(c, std::nullopt, {}, d);
}

std::vector<char> mask_of(const Pipeline& p) {
  Params params;
  params.conv_weight = Tensor({1, 1, 1}, 1.0f);
  const Tensor x(p.input_shape, 1.0f);
  Tensor y(p.output_shape);
  poison(y);
  cpu::run_pipeline(p, params, x, y, 0, p.input_shape[0]);
  std::vector<char> m(static_cast<size_t>(y.numel()));
  const float scale = fb_dropout_scale(p.dropout.p);
  for (int64_t i = 0; i < y.numel(); ++i) {
    EXPECT_TRUE(y.data()[i] == 0.0f || y.data()[i] == scale) << "element " << i << " = " << y.data()[i];
    m[static_cast<size_t>(i)] = y.data()[i] != 0.0f;
  }
  return m;
}

int64_t count(const std::vector<char>& m) { return std::count(m.begin(), m.end(), 1); }

TEST(Dropout, SameSeedAndOffsetSameMask) {
  const Pipeline p = ones_pipeline(3, 10007, dropout(0.2, true, 1234, 56));
  const std::vector<char> a = mask_of(p), b = mask_of(p);
  EXPECT_EQ(a, b);
  // The mask is a function of (seed, offset, flat index) alone: element by element from philox.h.
  const fb_u32 t = fb_keep_threshold(0.2);
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_EQ(a[i], fb_dropout_bits(1234, 56, i / 4).v[i % 4] < t) << "element " << i;
}

// Other offset or other seed: a different mask, agreeing no more than independent masks would.
TEST(Dropout, OtherOffsetOrSeedOtherMask) {
  const double p = 0.5;
  const int64_t n = 1 << 16;
  const std::vector<char> base = mask_of(ones_pipeline(1, n, dropout(p, true, 77, 0)));
  for (const DropoutAttrs& d : {dropout(p, true, 77, 1), dropout(p, true, 78, 0), dropout(p, true, 77, 1ull << 32),
                                dropout(p, true, 77ull | (1ull << 32), 0)}) {
    const std::vector<char> other = mask_of(ones_pipeline(1, n, d));
    int64_t agree = 0;
    for (int64_t i = 0; i < n; ++i) agree += base[i] == other[i];
    const double expect = n * 0.5, sigma = std::sqrt(n * 0.25);
    EXPECT_LT(std::fabs(agree - expect), 5 * sigma) << "seed " << d.seed << " offset " << d.offset;
  }
}

TEST(Dropout, KeepRateWithinBinomialBound) {
  const int64_t n = 1 << 18;
  for (double p : {0.01, 0.2, 0.5, 0.9, 0.999}) {
    const std::vector<char> m = mask_of(ones_pipeline(2, n / 2, dropout(p, true, 2024, 7)));
    const double expect = n * (1 - p), sigma = std::sqrt(n * p * (1 - p));
    EXPECT_LT(std::fabs(count(m) - expect), 5 * sigma) << "p " << p << " kept " << count(m);
  }
}

// Kept elements are exactly x * fb_dropout_scale(p) (bit for bit against the same block in eval
// mode); dropped ones are 0.
TEST(Dropout, KeptValuesExactlyScaled) {
  std::mt19937_64 rng(21);
  ConvSpec c;
  c.dims = 2;
  c.c_out = 6;
  c.in_spatial = {9, 13};
  c.kernel = {3, 3};
  for (double p : {0.2, 0.3, 0.5, 0.75}) {
    const Pipeline train = make_pipeline(c, group_norm(3), {pointwise(OpKind::Gelu)}, dropout(p, true, 5, 6));
    Pipeline eval = train;
    eval.dropout.training = false;
    const Params params = random_params(train, rng);
    const Tensor x = uniform_input(train.input_shape, rng);
    Tensor yt(train.output_shape), ye(train.output_shape);
    cpu::run_pipeline(train, params, x, yt, 0, c.batch);
    cpu::run_pipeline(eval, params, x, ye, 0, c.batch);
    const float scale = fb_dropout_scale(p);
    int64_t kept = 0;
    for (int64_t i = 0; i < yt.numel(); ++i) {
      const bool keep = fb_dropout_bits(5, 6, i / 4).v[i % 4] < fb_keep_threshold(p);
      kept += keep;
      ASSERT_EQ(yt.data()[i], keep ? ye.data()[i] * scale : 0.0f) << "p " << p << " element " << i;
    }
    EXPECT_GT(kept, 0);
    EXPECT_LT(kept, yt.numel());
  }
}

// p = 0 and eval mode are the identity; p = 1 gives x * 0: zeros, and NaN where x is NaN or Inf.
TEST(Dropout, IdentityAndPOne) {
  std::mt19937_64 rng(22);
  ConvSpec c;
  c.dims = 1;
  c.in_spatial = {41};
  const Pipeline none = make_pipeline(c, group_norm(2), {pointwise(OpKind::Tanh)});
  const Params params = random_params(none, rng);
  Tensor x = uniform_input(none.input_shape, rng);
  Tensor reference(none.output_shape);
  cpu::run_pipeline(none, params, x, reference, 0, c.batch);
  for (const DropoutAttrs& d : {dropout(0.0, true, 1, 1), dropout(0.7, false, 1, 1)}) {
    Pipeline p = none;
    p.dropout = d;
    Tensor y(p.output_shape);
    cpu::run_pipeline(p, params, x, y, 0, c.batch);
    EXPECT_EQ(0, std::memcmp(y.data(), reference.data(), sizeof(float) * y.numel())) << "p " << d.p;
  }
  // p = 1 on a sample holding a NaN (sample 0 is then all NaN) and a finite one.
  x.data()[3] = std::numeric_limits<float>::quiet_NaN();
  Pipeline p1 = none;
  p1.dropout = dropout(1.0, true, 3, 4);
  Tensor y(p1.output_shape);
  poison(y);
  cpu::run_pipeline(p1, params, x, y, 0, c.batch);
  const int64_t per = y.numel() / c.batch;
  for (int64_t i = 0; i < y.numel(); ++i) {
    if (i < per) ASSERT_TRUE(std::isnan(y.data()[i])) << i;
    else ASSERT_EQ(y.data()[i], 0.0f) << i;
  }
}

// The output, mask included, is the same bit for bit with 1 and 2 OpenMP threads (and with odd
// sizes, so blocks and channels do not line up with the Philox blocks).
TEST(Dropout, IndependentOfThreadCount) {
  std::mt19937_64 rng(23);
  ConvSpec c;
  c.batch = 3;
  c.c_in = 2;
  c.c_out = 6;
  c.in_spatial = {7, 29, 31};
  c.padding = {1, 1, 1};
  const Pipeline p = make_pipeline(c, group_norm(3), {pointwise(OpKind::Mish), op_clamp(-0.2, 0.9)},
                                   dropout(0.2, true, 99, 100));
  const Params params = random_params(p, rng);
  const Tensor x = uniform_input(p.input_shape, rng);
  const int saved = omp_get_max_threads();
  Tensor y1(p.output_shape), y2(p.output_shape);
  omp_set_num_threads(1);
  cpu::run_pipeline(p, params, x, y1, 0, c.batch);
  omp_set_num_threads(2);
  cpu::run_pipeline(p, params, x, y2, 0, c.batch);
  omp_set_num_threads(3);
  Tensor y3(p.output_shape);
  cpu::run_pipeline(p, params, x, y3, 0, c.batch);
  omp_set_num_threads(saved);
  EXPECT_EQ(0, std::memcmp(y1.data(), y2.data(), sizeof(float) * y1.numel()));
  EXPECT_EQ(0, std::memcmp(y1.data(), y3.data(), sizeof(float) * y1.numel()));
}

// Running sample by sample (as the guard's fallback does) draws the same mask: element indices are
// global over the output tensor.
TEST(Dropout, PerSampleRunsGiveSameMask) {
  const Pipeline p = ones_pipeline(5, 1001, dropout(0.4, true, 8, 9));  // 1001: samples straddle Philox blocks
  Params params;
  params.conv_weight = Tensor({1, 1, 1}, 1.0f);
  const Tensor x(p.input_shape, 1.0f);
  Tensor whole(p.output_shape), pieces(p.output_shape);
  cpu::run_pipeline(p, params, x, whole, 0, 5);
  for (int64_t n : {3, 0, 4, 1, 2}) cpu::run_pipeline(p, params, x, pieces, n, n + 1);
  EXPECT_EQ(0, std::memcmp(whole.data(), pieces.data(), sizeof(float) * whole.numel()));
}

}  // namespace
}  // namespace fbtest
