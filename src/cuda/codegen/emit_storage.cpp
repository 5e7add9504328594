// The storage type's device helpers (emit_storage.hpp).
#include "cuda/codegen/emit_storage.hpp"

namespace fuseblock::cuda {
namespace {

const char* kF32 = R"(typedef float fb_st;  // f32 storage: rounding to it is the identity
__device__ __forceinline__ float fb_ld(fb_st v) { return v; }
__device__ __forceinline__ fb_st fb_to_st(float v) { return v; }
)";

// NaN: quiet, sign and leading payload kept, as fuseblock::float_to_bf16_bits.
const char* kBf16 = R"(typedef unsigned short fb_st;  // bf16 bits
__device__ __forceinline__ float fb_ld(fb_st v) { return __uint_as_float((unsigned)v << 16); }
__device__ __forceinline__ fb_st fb_to_st(float v) {
  const unsigned b = __float_as_uint(v);
  if ((b & 0x7fffffffu) > 0x7f800000u) return (fb_st)((b >> 16) | 0x40u);
  return (fb_st)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);  // round to nearest even
}
)";

// The hardware conversions round to nearest even (cvt.rn); a NaN stays a NaN.
const char* kF16 = R"(typedef unsigned short fb_st;  // f16 bits
__device__ __forceinline__ float fb_ld(fb_st v) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v));
  return f;
}
__device__ __forceinline__ fb_st fb_to_st(float v) {
  fb_st h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
  return h;
}
)";

}  // namespace

void emit_storage_helpers(SourceWriter& w, DType storage) {
  w.line("// ---- storage type: {} ----", dtype_name(storage));
  w.raw(storage == DType::BF16 ? kBf16 : storage == DType::F16 ? kF16 : kF32);
  w.line("__device__ __forceinline__ float fb_round(float v) {{ return fb_ld(fb_to_st(v)); }}");
  w.blank();
}

}  // namespace fuseblock::cuda
