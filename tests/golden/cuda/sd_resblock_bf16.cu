// fuseblock program: [8, 320, 64, 64] -> [8, 320, 64, 64], tf32 allowed
// Emitted by fuseblock (src/cuda/emit_*.cpp) from a plan; compiled with NVRTC.

// ---- philox.h ----
// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11) and the
// dropout keep test built on it. Valid C++ and CUDA C++: the CPU backend includes it, and the
// CUDA emitter pastes this file's text into every NVRTC program, so both draw the same bits.
//
// Element i of a dropout with (seed, offset) uses counter (i / 4 as two words, offset as two
// words) and key (seed as two words), and takes output word i % 4. The mask therefore depends on
// nothing but (seed, offset, i): not on threads, grid or block size.
#ifndef FB_PHILOX_H
#define FB_PHILOX_H
#ifndef FB_HD
#ifdef __CUDACC__
#define FB_HD __host__ __device__ __forceinline__
#else
#define FB_HD inline
#endif
#endif

typedef unsigned int fb_u32;
typedef unsigned long long fb_u64;

struct fb_u32x4 { fb_u32 v[4]; };
FB_HD fb_u32x4 fb_philox4x32_10(fb_u32 c0, fb_u32 c1, fb_u32 c2, fb_u32 c3, fb_u32 k0, fb_u32 k1) {
  const fb_u32 M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;  // round multipliers
  const fb_u32 W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;  // key schedule (golden ratio, sqrt(3) - 1)
  for (int r = 0; r < 10; ++r) {
    // One 32 x 32 -> 64-bit product per multiplier, both halves used (one wide multiply on the
    // GPU rather than a high and a low one; on an H100 the run time did not change).
    const fb_u64 p0 = (fb_u64)M0 * (fb_u64)c0, p1 = (fb_u64)M1 * (fb_u64)c2;
    fb_u32 h0 = (fb_u32)(p0 >> 32), l0 = (fb_u32)p0;
    fb_u32 h1 = (fb_u32)(p1 >> 32), l1 = (fb_u32)p1;
    fb_u32 n0 = h1 ^ c1 ^ k0, n2 = h0 ^ c3 ^ k1;
    c0 = n0; c1 = l1; c2 = n2; c3 = l0;
    k0 += W0; k1 += W1;
  }
  fb_u32x4 out;
  out.v[0] = c0; out.v[1] = c1; out.v[2] = c2; out.v[3] = c3;
  return out;
}

// The four 24-bit uniform draws of the counter block holding element index `block4 * 4 + j`.
FB_HD fb_u32x4 fb_dropout_bits(fb_u64 seed, fb_u64 offset, fb_u64 block4) {
  fb_u32x4 r = fb_philox4x32_10((fb_u32)block4, (fb_u32)(block4 >> 32), (fb_u32)offset,
                                (fb_u32)(offset >> 32), (fb_u32)seed, (fb_u32)(seed >> 32));
  for (int j = 0; j < 4; ++j) r.v[j] >>= 8;
  return r;
}

// Keep test: a 24-bit draw u is kept when u < keep_threshold, where
// keep_threshold = the number of 24-bit values below (1 - p) * 2^24 (fb_keep_threshold).
// Integer comparison keeps CPU and CUDA bit-identical.
FB_HD fb_u32 fb_keep_threshold(double p) {
  double t = (1.0 - p) * 16777216.0;
  if (t <= 0.0) return 0u;
  if (t >= 16777216.0) return 16777216u;
  fb_u32 i = (fb_u32)t;
  return ((double)i < t) ? i + 1u : i;  // ceil: u < t  <=>  u < ceil(t) for integer u
}

// The value that a kept element is multiplied by: float32(1 / float32(1 - p)), as PyTorch's
// fused dropout computes its scale.
// p = 1 keeps nothing and PyTorch returns x * 0 there: the scale is then 0, not inf, so that a
// finite x gives 0 and a NaN or Inf gives NaN.
FB_HD float fb_dropout_scale(double p) {
  float keep = (float)(1.0 - p);
  if (keep <= 0.0f) return 0.0f;
  return (float)(1.0 / (double)keep);
}

// x * mask * scale, in that order, as PyTorch does: a dropped NaN or Inf gives NaN.
FB_HD float fb_dropout_apply(float x, bool keep, float scale) {
  return x * (keep ? 1.0f : 0.0f) * scale;
}

#endif

// ---- pointwise_math.h ----
// The pointwise ops of a block, as PyTorch computes them for float32 (its CUDA and CPU kernels'
// formulas), NaN and Inf included. Valid C++ and CUDA C++: the CPU backend and infer_ranges call
// these functions, and the CUDA emitter pastes this file's text into every NVRTC program, so
// every backend evaluates the same formula.
//
// The includer provides expf, erff, tanhf, log1pf (<math.h> on the host; built in under NVRTC).
#ifndef FB_POINTWISE_MATH_H
#define FB_POINTWISE_MATH_H
#ifndef FB_HD
#ifdef __CUDACC__
#define FB_HD __host__ __device__ __forceinline__
#else
#define FB_HD inline
#endif
#endif

FB_HD bool fb_isnan(float x) { return x != x; }

// torch.minimum / torch.maximum: a NaN on either side gives NaN.
FB_HD float fb_minimum(float x, float a) { return (fb_isnan(x) || fb_isnan(a)) ? (x + a) : (a < x ? a : x); }
FB_HD float fb_maximum(float x, float a) { return (fb_isnan(x) || fb_isnan(a)) ? (x + a) : (a > x ? a : x); }

// torch.clamp: NaN input stays NaN; a NaN bound gives NaN; min > max gives max. An absent bound
// is passed as has_lo/has_hi = false.
FB_HD float fb_clamp(float x, bool has_lo, float lo, bool has_hi, float hi) {
  if (fb_isnan(x)) return x;
  if (has_lo && fb_isnan(lo)) return lo;
  if (has_hi && fb_isnan(hi)) return hi;
  if (has_lo) x = x < lo ? lo : x;
  if (has_hi) x = x > hi ? hi : x;
  return x;
}

FB_HD float fb_relu(float x) { return fb_isnan(x) ? x : (x > 0.0f ? x : 0.0f); }
FB_HD float fb_leaky_relu(float x, float slope) { return x > 0.0f ? x : x * slope; }

FB_HD float fb_gelu_erf(float x) { return x * 0.5f * (1.0f + erff(x * 0.70710678118654752440f)); }
FB_HD float fb_gelu_tanh(float x) {
  const float kBeta = 0.79788456080286535588f;  // sqrt(2 / pi)
  const float kKappa = 0.044715f;
  float inner = kBeta * (x + kKappa * x * x * x);
  return 0.5f * x * (1.0f + tanhf(inner));
}

FB_HD float fb_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
FB_HD float fb_silu(float x) { return x / (1.0f + expf(-x)); }
FB_HD float fb_tanh(float x) { return tanhf(x); }
FB_HD float fb_mish(float x) { return x * tanhf(log1pf(expf(x))); }

// x * min(max(x + 3, 0), 6) / 6 with C++'s std::min/std::max (a NaN x stays NaN via the product).
FB_HD float fb_hardswish(float x) {
  float t = x + 3.0f;
  t = (t < 0.0f) ? 0.0f : t;
  t = (6.0f < t) ? 6.0f : t;
  return x * t / 6.0f;
}

FB_HD float fb_softplus(float x, float beta, float threshold) {
  return (x * beta) > threshold ? x : log1pf(expf(x * beta)) / beta;
}

// nn.ELU as PyTorch computes it: expm1(x) * alpha where x is not above 0 (NaN included, which stays NaN).
FB_HD float fb_elu(float x, float alpha) { return x > 0.0f ? x : expm1f(x) * alpha; }

FB_HD float fb_add(float x, float a) { return x + a; }
FB_HD float fb_sub(float x, float a) { return x - a; }
FB_HD float fb_mul(float x, float a) { return x * a; }
FB_HD float fb_div(float x, float a) { return x / a; }

#endif

// ---- helpers ----

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

// ---- storage type: bf16 ----
typedef unsigned short fb_st;  // bf16 bits
__device__ __forceinline__ float fb_ld(fb_st v) { return __uint_as_float((unsigned)v << 16); }
__device__ __forceinline__ fb_st fb_to_st(float v) {
  const unsigned b = __float_as_uint(v);
  if ((b & 0x7fffffffu) > 0x7f800000u) return (fb_st)((b >> 16) | 0x40u);
  return (fb_st)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);  // round to nearest even
}
__device__ __forceinline__ float fb_round(float v) { return fb_ld(fb_to_st(v)); }

// The flat output's 4-element block q from o[0..3], element k written where 0 <= first + k < len
// (the block starts at index `first` of a run of len elements); a whole block is one streaming
// vector store.
template <class I>
__device__ __forceinline__ void fb_store_quad(fb_st* __restrict__ y, long long q, const fb_st (&o)[4],
                                              I first, I len) {
  if (first >= 0 && first + 3 < len) {
    __stcs(reinterpret_cast<uint2*>(y) + q,
           make_uint2(o[0] | (unsigned)o[1] << 16, o[2] | (unsigned)o[3] << 16));
  } else {
#pragma unroll
    for (int k = 0; k < 4; ++k)
      if (first + k >= 0 && first + k < len) y[4 * q + k] = o[k];
  }
}

namespace fbs {
constexpr long long S = 4096;  // elements per (sample, channel) plane
constexpr int C = 320, G = 32, CPG = 10;  // channels, groups, channels per group
constexpr int K = 1;  // statistics chunks per plane
constexpr long long L = 4096;  // elements per chunk
constexpr int B = 5;  // apply blocks per (sample, group)
constexpr long long UPB = 1024;  // apply units per block
constexpr bool VEC = true;  // planes are whole 16-byte packs
constexpr int PACK = 8;  // storage elements per 16-byte pack
constexpr bool HAS_BIAS = true, HAS_ADD = false, AFFINE = true;  // HAS_ADD: the per-(sample, channel) input
constexpr double EPS = 0x1.0c6f7a0b5ed8dp-20;
}  // namespace fbs
union fb_pack { uint4 u; fb_st e[fbs::PACK]; };

__device__ __forceinline__ float fb_so_block_reduce(float v, bool is_max) {
  __shared__ float s_warp[8];
  __shared__ float s_all;
  v = is_max ? fb_warp_max(v) : fb_warp_sum(v);
  if ((threadIdx.x & 31) == 0) s_warp[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    float r = s_warp[0];
    for (int k = 1; k < 8; ++k) r = is_max ? fmaxf(r, s_warp[k]) : r + s_warp[k];
    s_all = r;
  }
  __syncthreads();
  const float r = s_all;
  __syncthreads();  // s_all and s_warp are reused by the next call
  return r;
}

// f(value) for each element of a chunk of the stored conv output, in this thread's share: 16-byte
// packs where planes are whole packs, else elements.
template <class F>
__device__ __forceinline__ void fb_so_for_chunk(const fb_st* __restrict__ src, long long count, F f) {
  if (fbs::VEC) {
    const uint4* p = reinterpret_cast<const uint4*>(src);
    for (long long j = threadIdx.x; j < count / fbs::PACK; j += 256) {
      fb_pack pk;
      pk.u = p[j];
#pragma unroll
      for (int e = 0; e < fbs::PACK; ++e) f(pk.e[e]);
    }
  } else {
    for (long long j = threadIdx.x; j < count; j += 256) f(src[j]);
  }
}

// The conv output as eager holds it before the norm: the stored conv (already rounded), plus the
// bias as a separate op, rounded again, plus the per-(sample, channel) input (temb[:, :, None,
// None]) as eager's next add, rounded again (the CPU backend's add_per_sample_channel).
__device__ __forceinline__ float fb_so_conv_value(fb_st raw, float bias, float add) {
  const float v = fbs::HAS_BIAS ? fb_round(fb_ld(raw) + bias) : fb_ld(raw);
  return fbs::HAS_ADD ? fb_round(v + add) : v;
}

extern "C" __global__ void __launch_bounds__(256) fb_so_stats(const fb_st* __restrict__ conv,
    const fb_st* __restrict__ bias, const fb_st* __restrict__ channel_add, float2* __restrict__ partials) {
  const long long plane = blockIdx.x / fbs::K;
  const long long begin = (long long)(blockIdx.x % fbs::K) * fbs::L;
  const long long count = min(fbs::L, fbs::S - begin);
  const fb_st* src = conv + plane * fbs::S + begin;
  const float b = fbs::HAS_BIAS ? fb_ld(bias[plane % fbs::C]) : 0.0f;
  const float add = fbs::HAS_ADD ? fb_ld(channel_add[plane]) : 0.0f;  // [N, C]: one value per plane
  const float inv_count = 1.0f / (float)count;
  float s = 0.0f, max_abs = 0.0f;
  fb_so_for_chunk(src, count, [&](fb_st raw) {
    const float v = fb_so_conv_value(raw, b, add);
    s = fmaf(v, inv_count, s);  // the mean as a sum of v / count: no partial sum passes max |v|
    max_abs = fmaxf(max_abs, fabsf(v));
  });
  const float mean = fb_so_block_reduce(s, false);
  const float scale = fb_stats_scale(fb_so_block_reduce(max_abs, true)), shift = -mean * scale;
  float m2 = 0.0f;
  fb_so_for_chunk(src, count, [&](fb_st raw) {  // the chunk again, from L1/L2
    const float d = fmaf(fb_so_conv_value(raw, b, add), scale, shift);  // scale * (v - mean)
    m2 = fmaf(d, d, m2);
  });
  m2 = fb_so_block_reduce(m2, false);
  if (threadIdx.x == 0) partials[blockIdx.x] = make_float2(mean, sqrtf(m2) / scale);
}

__device__ void fb_so_group_stats(const float2* __restrict__ partials, long long first_plane, double* mean_out,
                                  double* rstd_out) {
  double cnt = 0.0, mean = 0.0, m2 = 0.0;
  for (int i = threadIdx.x; i < fbs::CPG * fbs::K; i += 256) {
    const int k = i % fbs::K;
    const float2 p = partials[(first_plane + i / fbs::K) * fbs::K + k];  // (mean, root of M2)
    const double count = (double)min(fbs::L, fbs::S - (long long)k * fbs::L);
    fb_chan_merge(cnt, mean, m2, count, (double)p.x, (double)p.y * (double)p.y);
  }
  for (int o = 1; o < 32; o <<= 1) {
    const double nb = __shfl_down_sync(0xffffffffu, cnt, o), mb = __shfl_down_sync(0xffffffffu, mean, o),
                 m2b = __shfl_down_sync(0xffffffffu, m2, o);
    if ((threadIdx.x & (2 * o - 1)) == 0) fb_chan_merge(cnt, mean, m2, nb, mb, m2b);
  }
  __shared__ double s_stats[8][3];
  if ((threadIdx.x & 31) == 0) {
    s_stats[threadIdx.x >> 5][0] = cnt;
    s_stats[threadIdx.x >> 5][1] = mean;
    s_stats[threadIdx.x >> 5][2] = m2;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int k = 1; k < 8; ++k) fb_chan_merge(cnt, mean, m2, s_stats[k][0], s_stats[k][1], s_stats[k][2]);
    const double var = m2 * __drcp_rn(cnt);  // biased, as GroupNorm
    // A NaN or Inf in the group makes the whole group NaN, as the CPU backend and PyTorch.
    const bool finite = isfinite(mean) && isfinite(var);
    *mean_out = finite ? mean : __longlong_as_double(0x7ff8000000000000ll);
    *rstd_out = finite ? fb_rstd(var + fbs::EPS) : __longlong_as_double(0x7ff8000000000000ll);
  }
}

__device__ __forceinline__ float fb_so_norm(fb_st raw, float bias, float add, float a, float b) {
  const float r = fb_so_conv_value(raw, bias, add);
  return a * r + b;
}

// One element after the conv and its norm: the chain and dropout, each result rounded to the storage type where
// eager PyTorch stores it (src/cpu/epilogue.cpp); returned as stored.
__device__ __forceinline__ fb_st fb_epilogue(float v, int c, fb_u32 draw) {
  // The norm's output as eager stores it.
  float r = fb_round(v);
  r = fb_silu(r);  // silu
  r = fb_round(r);
  r = fb_dropout_apply(r, draw < 15099495u, 0x1.1c71c8p+0f);  // dropout
  return fb_to_st(r);
}

extern "C" __global__ void __launch_bounds__(256) fb_so_apply(const fb_st* __restrict__ conv,
    const fb_st* __restrict__ bias, const float2* __restrict__ partials, const fb_st* __restrict__ gamma,
    const fb_st* __restrict__ beta, const fb_st* __restrict__ channel_add, fb_st* __restrict__ y,
    const unsigned long long* __restrict__ dropout_state) {
  const long long ng = blockIdx.x / fbs::B;  // (sample, group)
  const long long first_plane = ng * fbs::CPG;  // the group's first (sample, channel)
  const long long g0 = first_plane * fbs::S, gl = (long long)fbs::CPG * fbs::S;  // its flat elements
  __shared__ float s_a[fbs::CPG], s_b[fbs::CPG], s_bias[fbs::CPG], s_add[fbs::CPG];
  __shared__ double s_mean, s_rstd;
  fb_so_group_stats(partials, first_plane, &s_mean, &s_rstd);
  __syncthreads();
  for (int c = threadIdx.x; c < fbs::CPG; c += 256) {
    const int ch = (int)((first_plane + c) % fbs::C);
    s_bias[c] = fbs::HAS_BIAS ? fb_ld(bias[ch]) : 0.0f;
    s_add[c] = fbs::HAS_ADD ? fb_ld(channel_add[first_plane + c]) : 0.0f;
    // Folded as the CPU backend folds them (src/cpu/group_norm.cpp): a = rstd gamma, b = beta - mean a.
    const double a = s_rstd * (fbs::AFFINE ? (double)fb_ld(gamma[ch]) : 1.0);
    s_a[c] = (float)a;
    s_b[c] = (float)((fbs::AFFINE ? (double)fb_ld(beta[ch]) : 0.0) - s_mean * a);
  }
  __syncthreads();
  const unsigned long long seed = dropout_state[0], offset = dropout_state[1];
  const long long u_first = fbs::VEC ? g0 / fbs::PACK : g0 >> 2;
  const long long units = fbs::VEC ? gl / fbs::PACK : ((g0 + gl - 1) >> 2) - (g0 >> 2) + 1;
  const long long u_end = min(units, (long long)(blockIdx.x % fbs::B + 1) * fbs::UPB);
  constexpr int UE = fbs::VEC ? fbs::PACK : 4;  // elements per unit
  for (long long u = (long long)(blockIdx.x % fbs::B) * fbs::UPB + threadIdx.x; u < u_end; u += 256) {
    const long long i0 = (u_first + u) * UE;  // the unit's first flat index
    fb_pack in, out;
    if (fbs::VEC) in.u = reinterpret_cast<const uint4*>(conv)[u_first + u];
#pragma unroll
    for (int q = 0; q < UE / 4; ++q) {
      const fb_u32x4 bits = fb_dropout_bits(seed, offset, (unsigned long long)((i0 >> 2) + q));
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const int e = 4 * q + k;
        const long long i = i0 + e;
        if (!fbs::VEC && (i < g0 || i >= g0 + gl)) continue;  // a neighbouring group's element
        const int c = (int)((i - g0) / fbs::S);
        const float v = fb_so_norm(fbs::VEC ? in.e[e] : conv[i], s_bias[c], s_add[c], s_a[c], s_b[c]);
        const fb_st o = fb_epilogue(v, (int)((first_plane + c) % fbs::C), bits.v[k]);
        if (fbs::VEC) out.e[e] = o; else y[i] = o;
      }
    }
    if (fbs::VEC) reinterpret_cast<uint4*>(y)[u_first + u] = out.u;
  }
}

// ---- dropout state: (seed, offset) in device memory ----
extern "C" __global__ void __launch_bounds__(32) fb_dropout_seed(unsigned long long* __restrict__ state,
    unsigned long long seed, unsigned long long offset) {
  if (threadIdx.x == 0) {
    state[0] = seed;
    state[1] = offset;
  }
}
extern "C" __global__ void __launch_bounds__(32) fb_dropout_advance(unsigned long long* __restrict__ state) {
  if (threadIdx.x == 0) state[1] += 1ull;
}

