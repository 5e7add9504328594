// The shared pieces of emitted programs (emit_common.hpp).
#include "cuda/codegen/emit_common.hpp"

#include <algorithm>

#include "device_common/embedded.hpp"
#include "fuseblock/error.hpp"
#include "ops/pointwise_eval.hpp"

namespace fuseblock::cuda {
namespace {

const char* kHelpers = R"(
// Rounds to the nearest tf32 value (the tensor cores read the top 19 bits).
// Both need sm_80; older GPUs use the FMA engine, which calls neither.
__device__ __forceinline__ float fb_tf32(float v) {
#if __CUDA_ARCH__ >= 800
  unsigned r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(v));
  return __uint_as_float(r);
#else
  return v;
#endif
}

// d += a * b on the tensor cores: a 16x8 (row), b 8x8 (col), d 16x8, tf32 in, fp32 accumulate.
__device__ __forceinline__ void fb_mma_tf32(float (&d)[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3,
                                            unsigned b0, unsigned b1) {
#if __CUDA_ARCH__ >= 800
  asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#endif
}

__device__ __forceinline__ float fb_warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float fb_warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// The statistics' scale for values up to max_abs: 1 below 2^41, else the power of two 2^-k that
// brings max_abs below 2^41. Scaled deviations from a mean then stay below 2^42, and up to 2^44
// squares of them sum below 2^128 (float's range): M2 cannot overflow where the values do not.
// A power of two, so scaling adds no rounding (underflow aside, which only values far below
// max_abs, whose squares do not count, can reach).
__device__ __forceinline__ float fb_stats_scale(float max_abs) {
  const int e = (__float_as_int(max_abs) >> 23) & 0xff;  // biased exponent: max_abs < 2^(e - 126)
  return e > 167 ? __int_as_float((127 - (e - 167)) << 23) : 1.0f;
}

// The reciprocal square root of var + eps (formed in double): in float, as PyTorch computes it,
// where that fits a float; in double beyond (values above about 1e19), where PyTorch's CUDA
// kernel, in float, gives rstd = 0 (docs/semantics.md).
__device__ __forceinline__ double fb_rstd(double var_eps) {
  return var_eps <= 3.4028234663852886e38 ? (double)(1.0f / sqrtf((float)var_eps)) : rsqrt(var_eps);
}

// Chan et al.'s merge of two (count, mean, M2) summaries, in double: exact enough for any offset.
// __drcp_rn rather than a division: a double divide calls a slow-path subroutine that spills.
__device__ __forceinline__ void fb_chan_merge(double& n, double& mean, double& m2, double nb, double mb, double m2b) {
  if (nb == 0.0) return;
  const double nn = n + nb, inv = __drcp_rn(nn);
  const double d = mb - mean;
  mean = (n == 0.0) ? mb : mean + d * (nb * inv);
  m2 = m2 + m2b + d * d * (n * nb * inv);
  n = nn;
}
)";

}  // namespace

void emit_prelude(SourceWriter& w, const std::string& title) {
  w.line("// {}", title);
  w.line("// Emitted by fuseblock (src/cuda/emit_*.cpp) from a plan; compiled with NVRTC.");
  w.blank();
  for (const char* name : {"philox.h", "pointwise_math.h"}) {
    const char* text = embedded_source(name);
    FB_ASSERT(text != nullptr, std::string("embedded source missing: ") + name);
    w.line("// ---- {} ----", name);
    w.raw(text);
    w.blank();
  }
  w.line("// ---- helpers ----");
  w.raw(kHelpers);
  w.blank();
}

float fold_fill_chain(const std::vector<Op>& chain, size_t count) {
  FB_ASSERT(!chain.empty() && chain.front().kind == OpKind::Fill, "a fill-path chain starts with fill");
  float v = 0.0f;
  for (size_t i = 0; i < std::min(count, chain.size()); ++i) v = eval_pointwise(chain[i], v);
  return v;
}

}  // namespace fuseblock::cuda
