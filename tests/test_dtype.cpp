// The dtype table and the float32 <-> bf16 / f16 conversions, checked exhaustively: every 16-bit
// pattern round-trips, and floats (random bit patterns, every float near each 16-bit value's
// rounding boundaries, the overflow and subnormal edges) round as a reference computed in double
// does, and for f16 as the compiler's own _Float16 conversion does where it has one.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>

#include "fuseblock/dtype.hpp"

namespace fb = fuseblock;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Round-to-nearest-even to `precision` significand bits with `min_exp` the smallest normal
// exponent, in double arithmetic (a different computation from the library's bit tricks):
// v / quantum is exact (a power-of-two scaling), nearbyint rounds ties to even.
double reference_round(double v, int precision, int min_exp, double max_finite) {
  if (std::isnan(v) || std::isinf(v) || v == 0.0) return v;
  const int e = std::max(std::ilogb(v), min_exp);
  const double quantum = std::ldexp(1.0, e - (precision - 1));
  const double r = std::nearbyint(v / quantum) * quantum;
  return std::fabs(r) > max_finite ? std::copysign(kInf, v) : r;
}
double reference_bf16(double v) { return reference_round(v, 8, -126, fb::dtype_info(fb::DType::BF16).max_finite); }
double reference_f16(double v) { return reference_round(v, 11, -14, 65504.0); }

uint32_t bits(float v) { return std::bit_cast<uint32_t>(v); }
float from_bits(uint32_t b) { return std::bit_cast<float>(b); }

// Same value, or both NaN; a zero's sign counts.
::testing::AssertionResult same(float got, double want, float input, const char* what) {
  if (std::isnan(want) ? std::isnan(got) : (bits(got) == bits(static_cast<float>(want))))
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << "(" << std::hexfloat << input << " = 0x" << std::hex << bits(input)
                                       << ") gave " << std::hexfloat << got << ", the reference " << want;
}

void expect_rounds_like_reference(float v) {
  ASSERT_TRUE(same(fb::round_to(fb::DType::BF16, v), reference_bf16(v), v, "bf16"));
  ASSERT_TRUE(same(fb::round_to(fb::DType::F16, v), reference_f16(v), v, "f16"));
#if defined(__FLT16_MAX__)
  // The compiler's conversion (x86-64 and AArch64 g++ >= 12): an independent second reference.
  const _Float16 h = static_cast<_Float16>(v);
  ASSERT_TRUE(same(fb::round_to(fb::DType::F16, v), static_cast<double>(h), v, "f16 vs _Float16"));
#endif
  ASSERT_EQ(bits(fb::round_to(fb::DType::F32, v)), bits(v));
}

TEST(DType, TableRowsAreConsistent) {
  for (const fb::DTypeInfo& r : fb::dtype_table()) {
    EXPECT_EQ(&fb::dtype_info(r.dtype), &r);
    EXPECT_EQ(fb::dtype_from_spec_name(r.spec_name), r.dtype);
    EXPECT_EQ(fb::dtype_from_spec_name(r.long_name), r.dtype);
    EXPECT_EQ(fb::dtype_from_safetensors(r.safetensors_name), r.dtype);
    if (r.npy_descr) EXPECT_EQ(fb::dtype_from_npy_descr(r.npy_descr), r.dtype);
    EXPECT_EQ(r.pack_elems * r.bytes, 16) << r.spec_name;
    // max_finite is a value of the type and the next binade overflows.
    EXPECT_EQ(fb::round_to(r.dtype, static_cast<float>(r.max_finite)), static_cast<float>(r.max_finite));
    EXPECT_EQ(fb::round_to(r.dtype, static_cast<float>(1.0 + r.epsilon)), static_cast<float>(1.0 + r.epsilon));
    EXPECT_EQ(fb::round_to(r.dtype, static_cast<float>(1.0 + r.epsilon / 2)), 1.0f);  // a tie, to even
  }
  EXPECT_EQ(fb::dtype_info(fb::DType::BF16).npy_descr, nullptr);  // numpy has no bfloat16
  EXPECT_FALSE(fb::dtype_from_spec_name("f64"));
  EXPECT_FALSE(fb::dtype_from_safetensors("F64"));
  EXPECT_FALSE(fb::dtype_from_npy_descr(">f2"));  // big-endian is not this row
  EXPECT_EQ(fb::dtype_spec_names(), "f32, bf16, f16");
}

TEST(DType, EverySixteenBitPatternRoundTrips) {
  int nan_bf16 = 0, nan_f16 = 0;
  for (uint32_t b = 0; b <= 0xffff; ++b) {
    const auto h = static_cast<uint16_t>(b);
    const float bf = fb::bf16_bits_to_float(h), f16 = fb::f16_bits_to_float(h);
    if (std::isnan(bf)) {
      ++nan_bf16;
      EXPECT_TRUE(std::isnan(fb::bf16_bits_to_float(fb::float_to_bf16_bits(bf)))) << std::hex << b;
    } else {
      EXPECT_EQ(fb::float_to_bf16_bits(bf), h) << std::hex << b;
    }
    if (std::isnan(f16)) {
      ++nan_f16;
      EXPECT_TRUE(std::isnan(fb::f16_bits_to_float(fb::float_to_f16_bits(f16)))) << std::hex << b;
      // A quiet NaN keeps its sign and payload.
      if (h & 0x0200) EXPECT_EQ(fb::float_to_f16_bits(f16), h) << std::hex << b;
    } else {
      EXPECT_EQ(fb::float_to_f16_bits(f16), h) << std::hex << b;
      // The decoded value is the one the bits mean: (-1)^s * 2^(e-15) * 1.m, or 2^-14 * 0.m.
      const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
      const double mag = e == 0x1f ? kInf : e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
      EXPECT_EQ(static_cast<double>(f16), (h & 0x8000) ? -mag : mag) << std::hex << b;
    }
    if (HasFailure()) return;
  }
  EXPECT_EQ(nan_bf16, 2 * 127);  // exponent all ones, mantissa non-zero, both signs
  EXPECT_EQ(nan_f16, 2 * 1023);
}

// Every 16-bit value's neighbourhood: the exact midpoint to the next value (a tie), one float
// either side of it, and the value itself; both signs.
TEST(DType, RoundingBoundariesOfEveryValue) {
  for (uint32_t b = 0; b < 0x7f80; ++b) {  // bf16 finite non-negative values
    const double lo = fb::bf16_bits_to_float(static_cast<uint16_t>(b));
    const double hi = b + 1 == 0x7f80 ? std::ldexp(1.0, 128) : fb::bf16_bits_to_float(static_cast<uint16_t>(b + 1));
    const float mid = static_cast<float>((lo + hi) / 2);  // exact: bf16 is float's upper half
    for (float v : {static_cast<float>(lo), mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY)})
      for (float s : {v, -v}) expect_rounds_like_reference(s);
    if (HasFailure()) return;
  }
  for (uint32_t b = 0; b < 0x7c00; ++b) {  // f16 finite non-negative values
    const double lo = fb::f16_bits_to_float(static_cast<uint16_t>(b));
    const double hi = b + 1 == 0x7c00 ? 65536.0 : fb::f16_bits_to_float(static_cast<uint16_t>(b + 1));
    const float mid = static_cast<float>((lo + hi) / 2);
    for (float v : {static_cast<float>(lo), mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY)})
      for (float s : {v, -v}) expect_rounds_like_reference(s);
    if (HasFailure()) return;
  }
}

TEST(DType, RandomFloatsRoundLikeTheReference) {
  std::mt19937_64 rng(std::random_device{}());
  const uint64_t seed = rng();
  rng.seed(seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  for (int i = 0; i < (1 << 21); ++i) {
    const float v = from_bits(static_cast<uint32_t>(rng()));
    expect_rounds_like_reference(v);
    if (HasFailure()) return;
  }
  // The binades where f16 goes subnormal (every 61st float, from a random start; the boundaries
  // test has every value's edges), and every float around f16's overflow.
  for (uint32_t b = bits(0x1p-26f) + static_cast<uint32_t>(rng() % 61); b <= bits(0x1p-13f); b += 61)
    expect_rounds_like_reference(from_bits(b));
  for (uint32_t b = bits(65000.0f); b <= bits(70000.0f); ++b) expect_rounds_like_reference(from_bits(b));
}

TEST(DType, SpecialValues) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (fb::DType d : {fb::DType::BF16, fb::DType::F16}) {
    EXPECT_TRUE(std::isnan(fb::round_to(d, nan)));
    EXPECT_TRUE(std::isnan(fb::round_to(d, -nan)));
    // A NaN whose payload lies only in float's low bits stays NaN (not inf).
    EXPECT_TRUE(std::isnan(fb::round_to(d, from_bits(0x7f800001u))));
    EXPECT_EQ(fb::round_to(d, inf), inf);
    EXPECT_EQ(fb::round_to(d, -inf), -inf);
    EXPECT_TRUE(std::signbit(fb::round_to(d, -0.0f)));
    EXPECT_EQ(fb::round_to(d, -0.0f), 0.0f);
  }
  // f16 overflow as IEEE (and PyTorch's .half()): 65504 is the largest value, 65519.99 rounds to
  // it, 65520 (a tie with 2^16) rounds to even: inf.
  EXPECT_EQ(fb::round_to(fb::DType::F16, 65504.0f), 65504.0f);
  EXPECT_EQ(fb::round_to(fb::DType::F16, std::nextafter(65520.0f, 0.0f)), 65504.0f);
  EXPECT_EQ(fb::round_to(fb::DType::F16, 65520.0f), inf);
  EXPECT_EQ(fb::round_to(fb::DType::F16, -1e5f), -inf);
  EXPECT_EQ(fb::round_to(fb::DType::F16, 0x1p-24f), 0x1p-24f);     // smallest subnormal
  EXPECT_EQ(fb::round_to(fb::DType::F16, 0x1p-25f), 0.0f);         // half of it: tie to even (0)
  EXPECT_EQ(fb::round_to(fb::DType::F16, 0x1.8p-25f), 0x1p-24f);   // above the tie
  // bf16 keeps float's range: float denormals stay denormal, FLT_MAX rounds up to inf.
  EXPECT_EQ(fb::round_to(fb::DType::BF16, 0x1p-133f), 0x1p-133f);
  EXPECT_EQ(fb::round_to(fb::DType::BF16, std::numeric_limits<float>::max()), inf);
  EXPECT_EQ(fb::round_to(fb::DType::BF16, 1.00390625f), 1.0f);         // 1 + 2^-8: tie to even
  EXPECT_EQ(fb::round_to(fb::DType::BF16, 1.01171875f), 1.015625f);    // 1 + 3 * 2^-8: tie to even, up
}

}  // namespace
