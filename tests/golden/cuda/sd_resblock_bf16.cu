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

namespace fbs {
constexpr long long S = 4096;  // elements per (sample, channel) plane
constexpr int C = 320, G = 32, CPG = 10;  // channels, groups, channels per group
constexpr int K = 16;  // statistics chunks per plane
constexpr long long L = 256;  // elements per chunk
constexpr int B = 5;  // apply blocks per (sample, group)
constexpr long long UPB = 1024;  // apply units per block
constexpr bool VEC = true;  // planes are whole 16-byte packs
constexpr int PACK = 8;  // storage elements per 16-byte pack
constexpr bool HAS_BIAS = true, AFFINE = true;
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
// bias as a separate op, rounded again.
__device__ __forceinline__ float fb_so_conv_value(fb_st raw, float bias) {
  return fbs::HAS_BIAS ? fb_round(fb_ld(raw) + bias) : fb_ld(raw);
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

__device__ __forceinline__ float fb_so_finish(fb_st raw, float bias, float a, float b) {
  float r = fb_so_conv_value(raw, bias);
  r = fb_round(a * r + b);  // as the CPU backend: scale and shift folded per (sample, channel)
  r = fb_silu(r);  // silu
  r = fb_round(r);
  return r;
}

extern "C" __global__ void __launch_bounds__(256) fb_so_apply(const fb_st* __restrict__ conv,
    const fb_st* __restrict__ bias, const float2* __restrict__ partials, const fb_st* __restrict__ gamma,
    const fb_st* __restrict__ beta, fb_st* __restrict__ y, const unsigned long long* __restrict__ dropout_state) {
  const long long ng = blockIdx.x / fbs::B;  // (sample, group)
  const long long first_plane = ng * fbs::CPG;  // the group's first (sample, channel)
  const long long g0 = first_plane * fbs::S, gl = (long long)fbs::CPG * fbs::S;  // its flat elements
  __shared__ float s_a[fbs::CPG], s_b[fbs::CPG], s_bias[fbs::CPG];
  __shared__ double s_mean, s_rstd;
  fb_so_group_stats(partials, first_plane, &s_mean, &s_rstd);
  __syncthreads();
  for (int c = threadIdx.x; c < fbs::CPG; c += 256) {
    const int ch = (int)((first_plane + c) % fbs::C);
    s_bias[c] = fbs::HAS_BIAS ? fb_ld(bias[ch]) : 0.0f;
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
      const fb_u32x4 bits = fb_dropout_bits(seed, offset, (unsigned long long)(i0 >> 2) + q);
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const int e = 4 * q + k;
        const long long i = i0 + e;
        if (!fbs::VEC && (i < g0 || i >= g0 + gl)) continue;  // a neighbouring group's element
        const int c = (int)((i - g0) / fbs::S);
        const float r = fb_so_finish(fbs::VEC ? in.e[e] : conv[i], s_bias[c], s_a[c], s_b[c]);
        const float o = fb_round(fb_dropout_apply(r, bits.v[k] < 15099495u, 0x1.1c71c8p+0f));
        if (fbs::VEC) out.e[e] = fb_to_st(o); else y[i] = fb_to_st(o);
      }
    }
    if (fbs::VEC) reinterpret_cast<uint4*>(y)[u_first + u] = out.u;
  }
}

namespace fbi {
constexpr int N = 8;  // samples
constexpr int D = 1, H = 64, W = 64;  // input
constexpr int OD = 1, OH = 64, OW = 64;  // output
constexpr int KD = 1, KH = 3, KW = 3;  // kernel
constexpr int SD = 1, SH = 1, SW = 1;  // stride
constexpr int PD = 0, PH = 1, PW = 1;  // padding
constexpr int DD = 1, DH = 1, DW = 1;  // dilation
constexpr int CIN_REAL = 320, CIN = 320, COUT = 320;  // CIN: padded to 8
constexpr int K = 2880, KP = 2880;  // taps * CIN, padded to 32
constexpr int PIN = 4096, P = 4096, TILES = 16;  // input, output pixels per sample; M tiles
constexpr int BM = 256, BN = 160, WM = 64, WN = 80, STAGES = 4, MIN_BLOCKS = 1;
constexpr int SMEM_HOST = 112896, THREADS_HOST = 256;  // as the host launches it
constexpr bool HAS_BIAS = true, STATS = true, VEC_OUT = true;  // VEC_OUT: planes of whole 16-byte chunks
}  // namespace fbi
#define FBI_MMA_T "bf16"
// ---- igemm_engine.cuh ----
// store_once's igemm conv engine (emit_igemm.cpp pastes this text after the storage helpers and
// the fbi:: constexprs it needs; dev/igemm/igemm_v1.cu is where it was developed and measured).
//
//   fb_ig_pack_w  the conv weights [COUT][CIN_REAL][taps] -> [COUT][KP], k = tap * CIN + ci,
//                 zeros for ci >= CIN_REAL and k >= K (run every call: parameters may change)
//   fb_ig_to_cl   x NC[D]HW -> channels-last N[D]HWC, C padded with zeros to CIN (a multiple of 8),
//                 64 x 64 tiles transposed through shared memory, 16-byte loads and stores
//   fb_ig_conv    the implicit-GEMM conv: M = output pixels of one sample (a tile never crosses a
//                 sample), N = COUT, K = taps * CIN; STAGES-deep cp.async pipeline, XOR-swizzled
//                 64-byte shared-memory rows, ldmatrix.x4, mma.sync.m16n8k16 (fp32 accumulation).
//                 Epilogue: the conv rounded to the storage type is staged transposed in shared
//                 memory and stored once, NCDHW (a tile's pixels of one channel are contiguous),
//                 without the bias (fb_so_apply adds it, as after cuDNN); from the same registers,
//                 conv + bias rounded again (as eager) -> per (sample, channel, M tile) (mean, root
//                 of M2) in the layout fb_so_apply merges: partials[(n * COUT + c) * TILES + tile],
//                 count min(BM, P - tile * BM). Scaled as fb_so_stats (fb_stats_scale), fixed
//                 reduction order (lane butterfly, then warps along M in index order), no atomics.
// Geometry: stride, padding and dilation per dimension; taps <= 32 (a row's tap mask is 32 bits);
// offsets inside one sample are 32-bit (the emitter refuses larger samples).

namespace fbi {
constexpr int TAPS = KD * KH * KW;
constexpr int BK = 32;  // K elements per stage: 64-byte shared-memory rows
constexpr int WARPS_M = BM / WM, WARPS_N = BN / WN, WARPS = WARPS_M * WARPS_N, THREADS = WARPS * 32;
constexpr int MI = WM / 16, NI = WN / 8;
constexpr int A_ROWS_PER_THREAD = BM * 4 / THREADS;  // 16-byte chunks: 4 per row
constexpr int A_STAGE = BM * 64, B_STAGE = BN * 64;  // bytes
constexpr int PIPE_BYTES = STAGES * (A_STAGE + B_STAGE);
constexpr int OUT_LD = BM + 8;  // staged output: one row of BM pixels per channel (16-byte aligned)
constexpr int OUT_BYTES = BN * OUT_LD * 2;
constexpr int MAIN_BYTES = PIPE_BYTES > OUT_BYTES ? PIPE_BYTES : OUT_BYTES;
constexpr int RED_BYTES = (2 * WARPS_M + 2) * BN * 4;  // per-warp column sums and maxima, means, scales
constexpr int SMEM_BYTES = MAIN_BYTES + RED_BYTES;
static_assert(SMEM_BYTES == SMEM_HOST && THREADS == THREADS_HOST, "the host's sizes (emit_igemm.cpp) disagree");
static_assert(TAPS <= 32, "a row's tap mask is 32 bits");
static_assert(CIN % 8 == 0 && KP % BK == 0 && COUT % BN == 0, "padded channels, padded K, whole N tiles");
static_assert(WM % 16 == 0 && WN % 16 == 0, "warp tile: m16 blocks, n16 ldmatrix pairs");
static_assert(BM % WM == 0 && BN % WN == 0, "warp grid");
static_assert((BM * 4) % THREADS == 0, "A loader: whole rows per thread");
static_assert(BM % 8 == 0, "16-byte output chunks");
}  // namespace fbi

// Output pixel m of a sample: the element offset of its first input tap's channel 0 (it may lie
// outside the sample: only taps inside are read) and a bit per tap inside the input.
__device__ __forceinline__ void fbi_row_setup(int m, int& off, unsigned& mask) {
  off = 0;
  mask = 0u;
  if (m >= fbi::P) return;
  const int ow = m % fbi::OW, oh = (m / fbi::OW) % fbi::OH, od = m / (fbi::OW * fbi::OH);
  const int id0 = od * fbi::SD - fbi::PD, ih0 = oh * fbi::SH - fbi::PH, iw0 = ow * fbi::SW - fbi::PW;
  off = ((id0 * fbi::H + ih0) * fbi::W + iw0) * fbi::CIN;
#pragma unroll
  for (int kd = 0; kd < fbi::KD; ++kd)
#pragma unroll
    for (int kh = 0; kh < fbi::KH; ++kh)
#pragma unroll
      for (int kw = 0; kw < fbi::KW; ++kw) {
        const int id = id0 + kd * fbi::DD, ih = ih0 + kh * fbi::DH, iw = iw0 + kw * fbi::DW;
        const bool in = id >= 0 && id < fbi::D && ih >= 0 && ih < fbi::H && iw >= 0 && iw < fbi::W;
        mask |= (in ? 1u : 0u) << ((kd * fbi::KH + kh) * fbi::KW + kw);
      }
}

// Element offset from a row's first tap to tap t's channel 0.
__device__ __forceinline__ int fbi_tap_delta(int t) {
  const int kd = t / (fbi::KH * fbi::KW), kh = (t / fbi::KW) % fbi::KH, kw = t % fbi::KW;
  return ((kd * fbi::DD * fbi::H + kh * fbi::DH) * fbi::W + kw * fbi::DW) * fbi::CIN;
}

// The loader's walk along K for one 16-byte chunk column (CIN is a multiple of 8: a chunk never
// straddles two taps).
struct FbiKWalk {
  int k, tap, ci;
  __device__ explicit FbiKWalk(int col) : k(col * 8), tap(col * 8 / fbi::CIN), ci(col * 8 - tap * fbi::CIN) {}
  __device__ void next() {
    k += fbi::BK;
    ci += fbi::BK;
    while (ci >= fbi::CIN) ci -= fbi::CIN, ++tap;
  }
};

// Byte offset of 16-byte chunk `chunk` (0..3) of row `row`: the XOR spreads the 8 rows of an
// ldmatrix phase over the 8 bank groups.
__device__ __forceinline__ int fbi_swz(int row, int chunk) { return row * 64 + ((chunk ^ ((row >> 1) & 3)) << 4); }
__device__ __forceinline__ int fbi_a_frag(int r0, int lane, int ks) {
  return fbi_swz(r0 + (lane & 15), ks * 2 + (lane >> 4));
}
__device__ __forceinline__ int fbi_b_frag(int n0, int lane, int ks) {
  return fbi_swz(n0 + (lane & 7) + ((lane >> 4) << 3), ks * 2 + ((lane >> 3) & 1));
}

__device__ __forceinline__ void fbi_mma(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." FBI_MMA_T "." FBI_MMA_T
               ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ unsigned fbi_smem_u32(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}
// 16-byte cp.async; src_bytes 0 writes 16 zero bytes (the source is not read).
__device__ __forceinline__ void fbi_cp_async_ca16(unsigned dst, const void* src, int src_bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void fbi_cp_async_cg16(unsigned dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void fbi_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void fbi_cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void fbi_ldmatrix_x4(unsigned (&r)[4], unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// grid: COUT * KP / 256 blocks, one thread per packed element.
extern "C" __global__ void __launch_bounds__(256) fb_ig_pack_w(const fb_st* __restrict__ w, fb_st* __restrict__ wp) {
  const long long i = (long long)blockIdx.x * 256 + threadIdx.x;
  if (i >= (long long)fbi::COUT * fbi::KP) return;
  const int co = (int)(i / fbi::KP), k = (int)(i % fbi::KP);
  fb_st v = 0;
  if (k < fbi::K) {
    const int tap = k / fbi::CIN, ci = k % fbi::CIN;
    if (ci < fbi::CIN_REAL) v = w[((long long)co * fbi::CIN_REAL + ci) * fbi::TAPS + tap];
  }
  wp[i] = v;
}

// grid: N * ceil(PIN / 64) * ceil(CIN / 64) blocks of 256 threads, each a tile of 64 pixels x 64
// channels through shared memory: read along each channel's pixels (16-byte loads where the
// planes are whole 16-byte chunks and x is aligned), written along each pixel's channels (16-byte
// stores), channels from CIN_REAL to CIN zero.
extern "C" __global__ void __launch_bounds__(256) fb_ig_to_cl(const fb_st* __restrict__ x, fb_st* __restrict__ xcl) {
  constexpr int TP = 64, TC = 64, LD = TP + 2;  // an odd word count per row: few bank conflicts
  constexpr int PT = (fbi::PIN + TP - 1) / TP, CT = (fbi::CIN + TC - 1) / TC;
  __shared__ fb_st s[TC * LD];
  const int ct = (int)(blockIdx.x % CT);
  const long long rest = blockIdx.x / CT;
  const int pt = (int)(rest % PT);
  const long long n = rest / PT;
  const int c0 = ct * TC, p0 = pt * TP;
  const bool vec = fbi::PIN % 8 == 0 && (reinterpret_cast<unsigned long long>(x) & 15ull) == 0;
  for (int q = threadIdx.x; q < TC * (TP / 8); q += 256) {
    const int c = q / (TP / 8), pc = (q % (TP / 8)) * 8;  // channel, first of 8 pixels
    const int ch = c0 + c, pix = p0 + pc;
    union {
      uint4 u;
      fb_st e[8];
    } v;
    const fb_st* src = x + (n * fbi::CIN_REAL + ch) * fbi::PIN + pix;
    if (vec && ch < fbi::CIN_REAL && pix < fbi::PIN) {  // PIN % 8 == 0: the 8 pixels are all inside
      v.u = *reinterpret_cast<const uint4*>(src);
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e) v.e[e] = ch < fbi::CIN_REAL && pix + e < fbi::PIN ? src[e] : (fb_st)0;
    }
#pragma unroll
    for (int e = 0; e < 8; ++e) s[c * LD + pc + e] = v.e[e];
  }
  __syncthreads();
  for (int q = threadIdx.x; q < TP * (TC / 8); q += 256) {
    const int p = q / (TC / 8), cc = (q % (TC / 8)) * 8;  // pixel, first of 8 channels
    const int pix = p0 + p, ch = c0 + cc;
    if (pix >= fbi::PIN || ch >= fbi::CIN) continue;
    union {
      uint4 u;
      fb_st e[8];
    } v;
#pragma unroll
    for (int e = 0; e < 8; ++e) v.e[e] = s[(cc + e) * LD + p];
    reinterpret_cast<uint4*>(xcl)[((n * fbi::PIN + pix) * fbi::CIN + ch) / 8] = v.u;
  }
}

// The body of fb_ig_conv (emit_igemm.cpp writes the kernel with literal launch bounds):
// grid N * TILES * (COUT / BN), the N tile fastest (neighbours share the A rows); THREADS threads;
// SMEM_BYTES of dynamic shared memory. Without a GroupNorm (STATS false) partials is null and
// never written.
__device__ __forceinline__ void fbi_conv(const fb_st* __restrict__ x, const fb_st* __restrict__ w,
                                         const fb_st* __restrict__ bias, fb_st* __restrict__ y,
                                         float2* __restrict__ partials) {
  using namespace fbi;
  extern __shared__ __align__(128) unsigned char smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int warp_m = warp / WARPS_N, warp_n = warp % WARPS_N;
  constexpr int n_tiles = COUT / BN;
  const int nt = blockIdx.x % n_tiles;
  const int mt_global = blockIdx.x / n_tiles;
  const int n = mt_global / TILES, mt = mt_global % TILES;
  const int m0 = mt * BM, n0 = nt * BN;
  const fb_st* xs = x + (long long)n * PIN * CIN;

  // A loader: this thread copies chunk column (tid % 4) of rows tid / 4 + i * THREADS / 4.
  const int a_col = tid & 3;
  int a_off[A_ROWS_PER_THREAD];
  unsigned a_mask[A_ROWS_PER_THREAD];
#pragma unroll
  for (int i = 0; i < A_ROWS_PER_THREAD; ++i) fbi_row_setup(m0 + (tid >> 2) + i * (THREADS / 4), a_off[i], a_mask[i]);
  FbiKWalk kw(a_col);

  const unsigned s_base = fbi_smem_u32(smem);
  auto load_stage = [&](int stage, int kt) {
    const unsigned sa = s_base + stage * (A_STAGE + B_STAGE);
    const unsigned sb = sa + A_STAGE;
    const bool k_ok = kw.k < K && kw.tap < TAPS;
    const int delta = k_ok ? fbi_tap_delta(kw.tap) + kw.ci : 0;
#pragma unroll
    for (int i = 0; i < A_ROWS_PER_THREAD; ++i) {
      const int row = (tid >> 2) + i * (THREADS / 4);
      const bool ok = k_ok && ((a_mask[i] >> kw.tap) & 1u);
      const fb_st* src = ok ? xs + (a_off[i] + delta) : xs;
      fbi_cp_async_ca16(sa + fbi_swz(row, a_col), src, ok ? 16 : 0);
    }
    for (int q = tid; q < BN * 4; q += THREADS) {
      const int row = q >> 2, col = q & 3;
      fbi_cp_async_cg16(sb + fbi_swz(row, col), w + (long long)(n0 + row) * KP + kt * BK + col * 8);
    }
    kw.next();
  };

  float acc[MI][NI][4];
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

  constexpr int KT = KP / BK;
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < KT) load_stage(s, s);
    fbi_cp_async_commit();
  }
  for (int kt = 0; kt < KT; ++kt) {
    fbi_cp_async_wait<STAGES - 2>();
    __syncthreads();  // stage kt is visible to all; stage (kt - 1) % STAGES is free to refill
    if (kt + STAGES - 1 < KT) load_stage((kt + STAGES - 1) % STAGES, kt + STAGES - 1);
    fbi_cp_async_commit();
    const unsigned sa = s_base + (kt % STAGES) * (A_STAGE + B_STAGE);
    const unsigned sb = sa + A_STAGE;
#pragma unroll
    for (int ks = 0; ks < BK / 16; ++ks) {
      unsigned af[MI][4];
#pragma unroll
      for (int i = 0; i < MI; ++i) fbi_ldmatrix_x4(af[i], sa + fbi_a_frag(warp_m * WM + i * 16, lane, ks));
#pragma unroll
      for (int j = 0; j < NI / 2; ++j) {
        unsigned b[4];  // b[0], b[1]: n block 2j; b[2], b[3]: n block 2j + 1
        fbi_ldmatrix_x4(b, sb + fbi_b_frag(warp_n * WN + j * 16, lane, ks));
#pragma unroll
        for (int i = 0; i < MI; ++i) {
          fbi_mma(acc[i][2 * j], af[i], b[0], b[1]);
          fbi_mma(acc[i][2 * j + 1], af[i], b[2], b[3]);
        }
      }
    }
  }
  fbi_cp_async_wait<0>();
  __syncthreads();  // the pipeline's shared memory is reused below

  // Epilogue. Fragment (i, j, e): row warp_m*WM + i*16 + g + 8*(e >> 1), column
  // warp_n*WN + j*8 + 2*t4 + (e & 1).
  const int g = lane >> 2, t4 = lane & 3;
  const int valid_rows = min(BM, P - m0);
  const float inv_count = 1.0f / (float)valid_rows;
  fb_st* so = reinterpret_cast<fb_st*>(smem);                   // [BN][OUT_LD]
  float* red = reinterpret_cast<float*>(smem + MAIN_BYTES);     // [WARPS_M][BN] sums, then M2s
  float* red_max = red + WARPS_M * BN;                          // [WARPS_M][BN]
  float* mean_s = red_max + WARPS_M * BN;                       // [BN]
  float* scale_s = mean_s + BN;                                 // [BN]
#pragma unroll
  for (int j = 0; j < NI; ++j) {
    const int c = warp_n * WN + j * 8 + 2 * t4;
    const float b0 = HAS_BIAS ? fb_ld(bias[n0 + c]) : 0.0f, b1 = HAS_BIAS ? fb_ld(bias[n0 + c + 1]) : 0.0f;
#pragma unroll
    for (int i = 0; i < MI; ++i) {
      const int r = warp_m * WM + i * 16 + g;
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const fb_st st = fb_to_st(acc[i][j][e]);  // the conv as stored (cuDNN's output, eager's conv)
        so[(c + (e & 1)) * OUT_LD + r + 8 * (e >> 1)] = st;
        // conv + bias as eager rounds it (fb_so_conv_value): the value the statistics see
        acc[i][j][e] = HAS_BIAS ? fb_round(fb_ld(st) + ((e & 1) ? b1 : b0)) : fb_ld(st);
      }
    }
  }
  bool row_ok[MI][2];
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int h = 0; h < 2; ++h) row_ok[i][h] = warp_m * WM + i * 16 + g + 8 * h < valid_rows;

  // pass 1: the mean as a sum of v / count (no partial sum passes max |v|), and max |v|
#pragma unroll
  for (int j = 0; j < NI; ++j)
#pragma unroll
    for (int odd = 0; odd < 2; ++odd) {
      float s = 0.0f, mx = 0.0f;
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const float v = acc[i][j][2 * h + odd];
          s = row_ok[i][h] ? fmaf(v, inv_count, s) : s;
          mx = row_ok[i][h] ? fmaxf(mx, fabsf(v)) : mx;
        }
#pragma unroll
      for (int o = 4; o < 32; o <<= 1) {
        s += __shfl_xor_sync(0xffffffffu, s, o);
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      }
      if (g == 0) {
        const int c = warp_n * WN + j * 8 + 2 * t4 + odd;
        red[warp_m * BN + c] = s;
        red_max[warp_m * BN + c] = mx;
      }
    }
  __syncthreads();  // also: the staged output tile is complete
  for (int c = tid; c < BN; c += THREADS) {
    float s = 0.0f, mx = 0.0f;
    for (int wm = 0; wm < WARPS_M; ++wm) s += red[wm * BN + c], mx = fmaxf(mx, red_max[wm * BN + c]);
    mean_s[c] = s;
    scale_s[c] = fb_stats_scale(mx);
  }
  // The output tile, stored once: per channel, the tile's contiguous pixels in 16-byte chunks
  // where the planes are whole chunks.
  {
    constexpr int CPC = BM / 8;  // chunks per channel row
    fb_st* yt = y + ((long long)n * COUT + n0) * P + m0;
    for (int q = tid; q < BN * CPC; q += THREADS) {
      const int c = q / CPC, r0 = (q % CPC) * 8;
      if (r0 >= valid_rows) continue;
      fb_st* dst = yt + (long long)c * P + r0;
      const fb_st* src = so + c * OUT_LD + r0;
      if (VEC_OUT && r0 + 8 <= valid_rows) {
        *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
      } else {
        for (int e = 0; e < 8 && r0 + e < valid_rows; ++e) dst[e] = src[e];
      }
    }
  }
  if (!STATS) return;  // no GroupNorm: the conv alone
  __syncthreads();  // means and scales ready; red may be overwritten
  // pass 2: sums of squared scaled deviations from the tile's mean
#pragma unroll
  for (int j = 0; j < NI; ++j)
#pragma unroll
    for (int odd = 0; odd < 2; ++odd) {
      const int c = warp_n * WN + j * 8 + 2 * t4 + odd;
      const float scale = scale_s[c], shift = -mean_s[c] * scale;
      float s = 0.0f;
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const float d = fmaf(acc[i][j][2 * h + odd], scale, shift);
          s = row_ok[i][h] ? fmaf(d, d, s) : s;
        }
#pragma unroll
      for (int o = 4; o < 32; o <<= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
      if (g == 0) red[warp_m * BN + c] = s;
    }
  __syncthreads();
  for (int c = tid; c < BN; c += THREADS) {
    float s = 0.0f;
    for (int wm = 0; wm < WARPS_M; ++wm) s += red[wm * BN + c];
    partials[((long long)n * COUT + n0 + c) * TILES + mt] = make_float2(mean_s[c], sqrtf(s) / scale_s[c]);
  }
}

extern "C" __global__ void __launch_bounds__(256, 1) fb_ig_conv(const fb_st* __restrict__ x,
    const fb_st* __restrict__ w, const fb_st* __restrict__ bias, fb_st* __restrict__ y,
    float2* __restrict__ partials) {
  fbi_conv(x, w, bias, y, partials);
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

