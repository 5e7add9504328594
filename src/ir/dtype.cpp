// The dtype table and the float32 <-> bf16 / f16 conversions (include/fuseblock/dtype.hpp).
#include "fuseblock/dtype.hpp"

#include <bit>
#include <cstring>

namespace fuseblock {

namespace {

// clang-format off
constexpr std::array<DTypeInfo, 3> kTable{{
  // dtype       spec    long        bytes npy      safetensors c/cuda type      pack  max finite              epsilon
  {DType::F32,  "f32",  "float32",  4,    "<f4",   "F32",      "float",         4,    3.4028234663852886e38,  0x1p-23},
  {DType::BF16, "bf16", "bfloat16", 2,    nullptr, "BF16",     "__nv_bfloat16", 8,    3.3895313892515355e38,  0x1p-7},
  {DType::F16,  "f16",  "float16",  2,    "<f2",   "F16",      "__half",        8,    65504.0,                0x1p-10},
}};
// clang-format on

static_assert(kTable[static_cast<size_t>(DType::F32)].dtype == DType::F32 &&
              kTable[static_cast<size_t>(DType::BF16)].dtype == DType::BF16 &&
              kTable[static_cast<size_t>(DType::F16)].dtype == DType::F16,
              "the table is indexed by the enum");

uint32_t bits_of(float v) { return std::bit_cast<uint32_t>(v); }
float float_of(uint32_t b) { return std::bit_cast<float>(b); }

template <class Pred>
std::optional<DType> find_row(Pred pred) {
  for (const DTypeInfo& r : kTable)
    if (pred(r)) return r.dtype;
  return std::nullopt;
}

}  // namespace

const std::array<DTypeInfo, 3>& dtype_table() { return kTable; }
const DTypeInfo& dtype_info(DType d) { return kTable[static_cast<size_t>(d)]; }

std::optional<DType> dtype_from_spec_name(std::string_view name) {
  return find_row([&](const DTypeInfo& r) { return name == r.spec_name || name == r.long_name; });
}
std::optional<DType> dtype_from_safetensors(std::string_view name) {
  return find_row([&](const DTypeInfo& r) { return name == r.safetensors_name; });
}
std::optional<DType> dtype_from_npy_descr(std::string_view descr) {
  return find_row([&](const DTypeInfo& r) { return r.npy_descr && descr == r.npy_descr; });
}

std::string dtype_spec_names() {
  std::string s;
  for (const DTypeInfo& r : kTable) s += (s.empty() ? "" : ", ") + std::string(r.spec_name);
  return s;
}

// bf16 is float32's upper half: adding 0x7fff plus the kept part's lowest bit, then truncating,
// rounds to nearest with ties to even; a carry out of the mantissa bumps the exponent, and past
// the largest finite value lands exactly on inf. NaN is kept apart so the carry cannot turn it
// into inf; its quiet bit is set (a NaN whose payload sat only in the low half would otherwise
// truncate to inf).
uint16_t float_to_bf16_bits(float v) {
  const uint32_t b = bits_of(v);
  if ((b & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((b >> 16) | 0x0040u);
  return static_cast<uint16_t>((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

float bf16_bits_to_float(uint16_t bits) { return float_of(uint32_t{bits} << 16); }

uint16_t float_to_f16_bits(float v) {
  const uint32_t b = bits_of(v);
  const uint16_t sign = static_cast<uint16_t>((b >> 16) & 0x8000u);
  const uint32_t mag = b & 0x7fffffffu;
  if (mag > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | ((mag >> 13) & 0x3ffu));  // NaN, quiet
  // 65520 = 65504 + half an ulp is the first magnitude that rounds (to even) up to 2^16: inf.
  if (mag >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);
  if (mag >= 0x38800000u) {
    // Normal in f16 (>= 2^-14): rebias the exponent (127 -> 15), then round away the low 13 bits;
    // a carry into the exponent is the correct next binade.
    const uint32_t rebased = mag - (uint32_t{112} << 23);
    return static_cast<uint16_t>(sign | ((rebased + 0xfffu + ((rebased >> 13) & 1u)) >> 13));
  }
  // Subnormal in f16: the value in units of 2^-24 (f16's smallest step), rounded to even. A float
  // below 2^-25 (float denormals included) rounds to zero; rounding up from the largest
  // subnormal gives 0x400, the smallest normal, which is the right encoding.
  const uint32_t exp = mag >> 23;
  if (exp < 102) return sign;  // mag < 2^-25: below half the smallest subnormal
  const uint32_t mant = (mag & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126 - exp;  // value = mant * 2^(exp - 150) = (mant >> shift) * 2^-24
  const uint32_t q = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
  return static_cast<uint16_t>(sign | (q + (rem > half || (rem == half && (q & 1u)))));
}

float f16_bits_to_float(uint16_t h) {
  const uint32_t sign = uint32_t{h & 0x8000u} << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0x1f) return float_of(sign | 0x7f800000u | (mant << 13));  // inf, NaN (payload kept)
  if (exp != 0) return float_of(sign | ((exp + 112) << 23) | (mant << 13));
  // Zero or subnormal: mant * 2^-24, exact in float.
  const float mag = static_cast<float>(mant) * 0x1p-24f;
  return sign ? -mag : mag;
}

float round_to(DType d, float v) {
  switch (d) {
    case DType::F32: return v;
    case DType::BF16: return bf16_bits_to_float(float_to_bf16_bits(v));
    case DType::F16: return f16_bits_to_float(float_to_f16_bits(v));
  }
  return v;
}

void round_to(DType d, float* v, int64_t n) {
  if (d == DType::F32) return;
  for (int64_t i = 0; i < n; ++i) v[i] = round_to(d, v[i]);
}

}  // namespace fuseblock
