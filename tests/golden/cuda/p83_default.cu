// fuseblock program: [128, 3, 16, 64, 64] -> [128, 16, 14, 62, 62], tf32 allowed
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

// ---- storage type: f32 ----
typedef float fb_st;  // f32 storage: rounding to it is the identity
__device__ __forceinline__ float fb_ld(fb_st v) { return v; }
__device__ __forceinline__ fb_st fb_to_st(float v) { return v; }
__device__ __forceinline__ float fb_round(float v) { return fb_ld(fb_to_st(v)); }

// The flat output's 4-element block q from o[0..3], element k written where 0 <= first + k < len
// (the block starts at index `first` of a run of len elements); a whole block is one streaming
// vector store.
template <class I>
__device__ __forceinline__ void fb_store_quad(fb_st* __restrict__ y, long long q, const fb_st (&o)[4],
                                              I first, I len) {
  if (first >= 0 && first + 3 < len) {
    __stcs(reinterpret_cast<float4*>(y) + q, make_float4(o[0], o[1], o[2], o[3]));
  } else {
#pragma unroll
    for (int k = 0; k < 4; ++k)
      if (first + k >= 0 && first + k < len) __stcs(y + 4 * q + k, o[k]);
  }
}

// ---- guard bound: the largest |x| for which |conv output| <= 1e+12, from the parameters ----
extern "C" __global__ void __launch_bounds__(256) fb_guard_bound(const float* __restrict__ w,
    const float* __restrict__ bias, const float* __restrict__ gamma, const float* __restrict__ beta,
    float* __restrict__ guard_bound) {
  constexpr long long C_OUT = 16, PER_CHANNEL = 81;
  constexpr bool HAS_BIAS = true, HAS_AFFINE = true;
  const double B = 0x1.d1a94a2p+39;  // |conv output| <= B is what the analysis assumed
  const double INF = __longlong_as_double(0x7ff0000000000000ll), QNAN = __longlong_as_double(0x7ff8000000000000ll);
  const float FLOAT_MAX = 0x1.fffffep+127f;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  double m = INF;  // the min over this warp's channels; NaN once a parameter is not finite
  for (long long o = warp; o < C_OUT; o += 8) {
    const float* row = w + o * PER_CHANNEL;
    double s = 0.0;
#pragma unroll 4
    for (long long i = lane; i < PER_CHANNEL; i += 32) s = __dadd_ru(s, fabs((double)row[i]));
#pragma unroll
    for (int d = 16; d > 0; d >>= 1) s = __dadd_ru(s, __shfl_xor_sync(0xffffffffu, s, d));
    const double b = HAS_BIAS ? fabs((double)bias[o]) : 0.0;
    const double g = HAS_AFFINE ? fabs((double)gamma[o]) : 0.0;
    const double h = HAS_AFFINE ? fabs((double)beta[o]) : 0.0;
    double c;
    if (!(s < INF && b < INF && g < INF && h < INF)) c = QNAN;  // a NaN or Inf anywhere in the channel
    else if (b > B || g > B || h > B) c = -INF;                // no input can meet the bound
    else c = s > 0.0 ? __ddiv_rd(__dsub_rd(B, b), s) : INF;  // all-zero weights constrain nothing
    m = (m != m || c != c) ? QNAN : fmin(m, c);
  }
  __shared__ double warp_min[8];
  if (lane == 0) warp_min[warp] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int k = 1; k < 8; ++k) m = (m != m || warp_min[k] != warp_min[k]) ? QNAN : fmin(m, warp_min[k]);
    // As the guard compares it: the largest float <= m, at most FLT_MAX (an infinite x always
    // fails), NaN kept.
    *guard_bound = m != m ? (float)m : (m >= (double)FLOAT_MAX ? FLOAT_MAX : __double2float_rd(m));
  }
}

// ---- fill path: output = 0x0p+0f everywhere (no dropout mask), written by cuMemsetD32Async(0x00000000) ----
// ---- fill path guard: per-sample |x| <= bound, input read once; the output is a memset ----
extern "C" __global__ void __launch_bounds__(256) fb_guard(const float* __restrict__ x, int* __restrict__ flags,
    const float* __restrict__ guard_bound, int blocks_per_sample, long long slice) {
  constexpr long long IN_SAMPLE = 196608, N_SAMPLES = 128;
  constexpr int U = 4;
  const float bound = *guard_bound;
  const long long n = blockIdx.x / blocks_per_sample;
  const long long s0 = (long long)(blockIdx.x % blocks_per_sample) * slice;
  const long long s1 = min(s0 + slice, IN_SAMPLE);
  const float* xn = x + n * IN_SAMPLE;
  bool bad = false;
  if (IN_SAMPLE % 4 == 0) {  // slices are multiples of 4: whole float4s
    const float4* x4 = reinterpret_cast<const float4*>(xn);
    const long long e = s1 / 4;
    for (long long i = s0 / 4 + threadIdx.x; i < e; i += 256 * U) {
      float4 v[U];
#pragma unroll
      for (int u = 0; u < U; ++u)
        v[u] = i + u * 256 < e ? __ldcs(x4 + i + u * 256) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
      for (int u = 0; u < U; ++u)
        bad |= !(fabsf(v[u].x) <= bound) | !(fabsf(v[u].y) <= bound) | !(fabsf(v[u].z) <= bound) | !(fabsf(v[u].w) <= bound);
    }
  } else {
    for (long long i = s0 + threadIdx.x; i < s1; i += 256) bad |= !(fabsf(__ldcs(xn + i)) <= bound);
  }
  if (__syncthreads_or(bad) && threadIdx.x == 0) {
    flags[n] = 1;
    flags[N_SAMPLES] = 1;  // "some sample failed": the fallback kernels exit at once without it
  }
}

// ---- exact fallback for samples that fail the guard ----
// ---- convolution geometry: mma-tf32 engine, tile 2x4x64 x 16 channels (112 tiles/sample, 1 channel chunks), 256 threads, window 4x6x66 pitches 76/456/1824 double-buffered, staging pitch 500, 74 KB shared, segments at level 1 ----
namespace fbc {
  constexpr long long N = 128;
  constexpr int CIN = 3, COUT = 16;
  constexpr int ID = 16, IH = 64, IW = 64;
  constexpr int OD = 14, OH = 62, OW = 62;
  constexpr int KD = 3, KH = 3, KW = 3;
  constexpr int SD = 1, SH = 1, SW = 1;
  constexpr int PD = 0, PH = 0, PW = 0;
  constexpr int DD = 1, DH = 1, DW = 1;
  constexpr int KVOL = 27, KRED = 81;
  constexpr bool HAS_BIAS = true;
  constexpr long long IN_SAMPLE = 196608;  // input elements per sample
  constexpr long long OUT_CHANNEL = 53816;  // output elements per (sample, channel)
  constexpr int TD = 2, TH = 4, TW = 64;  // output tile
  constexpr int TILES_D = 7, TILES_H = 16, TILES_W = 1, TILES = 112;
  constexpr int CT = 16, CCHUNKS = 1, CIC = 3;  // channels per block, chunks, input channels per window
  constexpr int XD = 4, XH = 6, XW = 66;  // input window
  constexpr int XWP = 76, XPP = 456, XCP = 1824;  // window pitches (bank-conflict padded)
  constexpr int RP = 62, PP = 248, CP = 500, SEG_LEVEL = 1;  // staging pitches
  constexpr int THREADS = 256, WARPS = 8;
  constexpr int WIN0_OFFSET = 0, WIN1_OFFSET = 5472;  // floats into shared memory: the window being computed and the next one
  constexpr int WEIGHTS_OFFSET = 10944;
  constexpr int STAGE_OFFSET = 10944;
  constexpr int AO_OFFSET = 18944;  // the MMA engine's A-offset table
  constexpr int MPW = 4, WS = 4, KSTEPS = 11, NT = 2;  // m-tiles per warp, per row; k-steps; n-tiles
}  // namespace fbc

// One block tile: its origin in the output and how much of it lies inside the output.
struct fb_tile {
  int od0, oh0, ow0;
  int tdv, thv, twv;
};

__device__ __forceinline__ fb_tile fb_tile_at(int t) {
  fb_tile r;
  const int tw_i = t % fbc::TILES_W;
  const int rest = t / fbc::TILES_W;
  const int th_i = rest % fbc::TILES_H;
  const int td_i = rest / fbc::TILES_H;
  r.od0 = td_i * fbc::TD;
  r.oh0 = th_i * fbc::TH;
  r.ow0 = tw_i * fbc::TW;
  r.tdv = min(fbc::TD, fbc::OD - r.od0);
  r.thv = min(fbc::TH, fbc::OH - r.oh0);
  r.twv = min(fbc::TW, fbc::OW - r.ow0);
  return r;
}

// Output positions of tile t (the statistics' count for its partial sums).
__device__ __forceinline__ int fb_tile_count(int t) {
  const fb_tile r = fb_tile_at(t);
  return r.tdv * r.thv * r.twv;
}

// Global -> shared copies, asynchronous on sm_80+ (cp.async; a 4-byte one zero-fills when !valid).
__device__ __forceinline__ void fb_cp_async4(float* dst, const float* src, bool valid) {
#if __CUDA_ARCH__ >= 800
  const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 4 : 0) : "memory");
#else
  *dst = valid ? __ldg(src) : 0.0f;
#endif
}
__device__ __forceinline__ void fb_cp_async16(float* dst, const float* src) {
#if __CUDA_ARCH__ >= 800
  const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(d), "l"(src) : "memory");
#else
  *reinterpret_cast<float4*>(dst) = __ldg(reinterpret_cast<const float4*>(src));
#endif
}
__device__ __forceinline__ void fb_cp_commit() {
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void fb_cp_wait_all() {
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}

// Starts copying work item `item`'s whole window (all CIN channels) into xs, zero outside the
// input, in 4-float chunks: one 16-byte copy where the chunk lies inside the input row and is
// 16-byte aligned there (window pitches are multiples of 4), else four 4-byte copies.
// fb_round_window visits the same chunks in the same order, so each thread rounds only what it
// copied itself (no barrier in between).
constexpr int FB_XCH = (fbc::XW + 3) / 4;  // chunks per window row
__device__ __forceinline__ void fb_issue_window(float* xs, const float* __restrict__ x, long long item) {
  const long long n = item / fbc::TILES;
  const fb_tile T = fb_tile_at((int)(item % fbc::TILES));
  const int id0 = T.od0 * fbc::SD - fbc::PD, ih0 = T.oh0 * fbc::SH - fbc::PH, iw0 = T.ow0 * fbc::SW - fbc::PW;
  const float* xn = x + n * fbc::IN_SAMPLE;
  for (int i = threadIdx.x; i < fbc::CIN * fbc::XD * fbc::XH * FB_XCH; i += fbc::THREADS) {
    const int chunk = i % FB_XCH, row = i / FB_XCH;
    const int xh = row % fbc::XH, xd = (row / fbc::XH) % fbc::XD, ci = row / (fbc::XH * fbc::XD);
    const int gd = id0 + xd, gh = ih0 + xh, gw = iw0 + 4 * chunk;
    const bool row_in = (unsigned)gd < (unsigned)fbc::ID && (unsigned)gh < (unsigned)fbc::IH;
    const float* src = xn + ((ci * fbc::ID + gd) * fbc::IH + gh) * fbc::IW + gw;
    float* dst = xs + ci * fbc::XCP + xd * fbc::XPP + xh * fbc::XWP + 4 * chunk;
    if (row_in && gw >= 0 && gw + 3 < fbc::IW && (reinterpret_cast<unsigned long long>(src) & 15) == 0) {
      fb_cp_async16(dst, src);
    } else {
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const bool in = row_in && (unsigned)(gw + k) < (unsigned)fbc::IW;
        fb_cp_async4(dst + k, in ? src + k : x, in);
      }
    }
  }
}

__device__ __forceinline__ void fb_round_window(float* xs) {
  for (int i = threadIdx.x; i < fbc::CIN * fbc::XD * fbc::XH * FB_XCH; i += fbc::THREADS) {
    const int chunk = i % FB_XCH, row = i / FB_XCH;
    const int xh = row % fbc::XH, xd = (row / fbc::XH) % fbc::XD, ci = row / (fbc::XH * fbc::XD);
    float4* p = reinterpret_cast<float4*>(xs + ci * fbc::XCP + xd * fbc::XPP + xh * fbc::XWP + 4 * chunk);
    float4 v = *p;
    v.x = fb_tf32(v.x);
    v.y = fb_tf32(v.y);
    v.z = fb_tf32(v.z);
    v.w = fb_tf32(v.w);
    *p = v;
  }
}

// Loads input channels [ci0, ci0 + CIC) of the tile's window into xs, zero outside the input
// (the conv's padding) and past CIN. Warps take rows, lanes take columns.
template <bool TF32>
__device__ __forceinline__ void fb_load_window(float* xs, const float* __restrict__ x, long long n, int ci0,
                                               const fb_tile& T) {
  const int id0 = T.od0 * fbc::SD - fbc::PD, ih0 = T.oh0 * fbc::SH - fbc::PH, iw0 = T.ow0 * fbc::SW - fbc::PW;
  const float* xn = x + n * fbc::IN_SAMPLE;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int row = warp; row < fbc::CIC * fbc::XD * fbc::XH; row += fbc::WARPS) {
    const int xh = row % fbc::XH;
    const int xd = (row / fbc::XH) % fbc::XD;
    const int ci = row / (fbc::XH * fbc::XD);
    const int gd = id0 + xd, gh = ih0 + xh;
    const bool row_in = ci0 + ci < fbc::CIN && (unsigned)gd < (unsigned)fbc::ID && (unsigned)gh < (unsigned)fbc::IH;
    const float* src = xn + (((ci0 + ci) * fbc::ID + gd) * fbc::IH + gh) * fbc::IW;
    float* dst = xs + ci * fbc::XCP + xd * fbc::XPP + xh * fbc::XWP;
    for (int xw = lane; xw < fbc::XW; xw += 32) {
      const int gw = iw0 + xw;
      float v = 0.0f;
      if (row_in && (unsigned)gw < (unsigned)fbc::IW) v = __ldg(src + gw);
      dst[xw] = TF32 ? fb_tf32(v) : v;
    }
  }
}


// Window offset of reduction index k = ((ci * KD + kd) * KH + kh) * KW + kw (PyTorch's weight order).
__device__ __forceinline__ int fb_k_offset(int k) {
  const int kw = k % fbc::KW, kh = (k / fbc::KW) % fbc::KH, kd = (k / (fbc::KW * fbc::KH)) % fbc::KD;
  const int ci = k / fbc::KVOL;
  return ci * fbc::XCP + kd * fbc::DD * fbc::XPP + kh * fbc::DH * fbc::XWP + kw * fbc::DW;
}

// Window offset of a warp's m-tile j from its first: a warp's m-tiles lie in one row (WS a
// multiple of MPW) or over whole rows of one plane (conv_geometry.cpp guarantees one of these).
__device__ __forceinline__ constexpr int fb_mt_delta(int j) {
  return (j % fbc::WS) * 16 * fbc::SW + (j / fbc::WS) * fbc::SH * fbc::XWP;
}

extern "C" __global__ void __launch_bounds__(256, 2) fb_conv_stats(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias, float2* __restrict__ partials, const int* __restrict__ flags) {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");  // until the previous kernel is done and its writes visible
#endif
  if (flags[fbc::N] == 0) return;  // no sample failed the guard: nothing to recompute
  extern __shared__ __align__(16) float fb_smem[];
  float* const st = fb_smem + fbc::STAGE_OFFSET;
  const int c0 = blockIdx.y * fbc::CT;
  const long long total = fbc::N * fbc::TILES;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  // B fragments: B[k][n] = weight[c0 + n][k], rounded to tf32; zero past COUT and KRED.
  unsigned bf[fbc::KSTEPS][fbc::NT][2];
#pragma unroll
  for (int ks = 0; ks < fbc::KSTEPS; ++ks)
#pragma unroll
    for (int nt = 0; nt < fbc::NT; ++nt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int k = ks * 8 + t4 + 4 * h, c = c0 + nt * 8 + g;
        bf[ks][nt][h] = (k < fbc::KRED && c < fbc::COUT) ? __float_as_uint(fb_tf32(__ldg(w + c * fbc::KRED + k))) : 0u;
      }
  // The window offsets of each lane's two A columns per k-step, a table in shared memory
  // (read as one int2 per k-step; in registers they would push the kernel past 128).
  int* const ao_s = reinterpret_cast<int*>(fb_smem + fbc::AO_OFFSET);
  for (int i = threadIdx.x; i < fbc::KSTEPS * 8; i += fbc::THREADS) {
    const int k = (i / 8) * 8 + (i % 8) / 2 + 4 * (i % 2);  // i = (ks * 4 + t4) * 2 + h
    ao_s[i] = k < fbc::KRED ? fb_k_offset(k) : 0;
  }
  const int2* const ao = reinterpret_cast<const int2*>(ao_s);  // ready after the loop's first barrier
  // Columns past KRED in the last k-step read a real window word: zero them in A (B is zero
  // there too, but 0 * Inf would be NaN).
  // As masks, not flags: a branch on them (they depend on the lane) let ptxas split the warp
  // around mma.sync in the lean kernels, which then hung on an H100.
  const unsigned kv0 = (fbc::KSTEPS - 1) * 8 + t4 < fbc::KRED ? ~0u : 0u;
  const unsigned kv1 = (fbc::KSTEPS - 1) * 8 + t4 + 4 < fbc::KRED ? ~0u : 0u;
  // Window offset of row g of this warp's first m-tile; the others sit at fb_mt_delta(j).
  const int mt0 = warp * fbc::MPW;
  const int mbase = ((mt0 / fbc::WS) / fbc::TH) * fbc::SD * fbc::XPP + ((mt0 / fbc::WS) % fbc::TH) * fbc::SH * fbc::XWP +
                    ((mt0 % fbc::WS) * 16 + g) * fbc::SW;
  long long item = blockIdx.x;
  while (item < total && flags[item / fbc::TILES] == 0) item += gridDim.x;  // samples that passed
  float* cur = fb_smem + fbc::WIN0_OFFSET;
  float* nxt = fb_smem + fbc::WIN1_OFFSET;
  if (item < total) fb_issue_window(cur, x, item);
  fb_cp_commit();
  while (item < total) {
    long long next = item + gridDim.x;
    while (next < total && flags[next / fbc::TILES] == 0) next += gridDim.x;
    const long long n = item / fbc::TILES;
    const int t = (int)(item % fbc::TILES);
    const fb_tile T = fb_tile_at(t);
    fb_cp_wait_all();
    fb_round_window(cur);  // tf32, once per element rather than once per use
    __syncthreads();  // window ready; the previous tile's window and staging are free
    if (next < total) fb_issue_window(nxt, x, next);
    fb_cp_commit();
    const float* const xs = cur;
    float acc[fbc::MPW][fbc::NT][4];
#pragma unroll
    for (int j = 0; j < fbc::MPW; ++j)
#pragma unroll
      for (int nt = 0; nt < fbc::NT; ++nt)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[j][nt][i] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < fbc::KSTEPS; ++ks) {
      const int2 o = ao[ks * 4 + t4];
      const float* p0 = xs + mbase + o.x;
      const float* p1 = xs + mbase + o.y;
#pragma unroll
      for (int j = 0; j < fbc::MPW; ++j) {
        const int dj = fb_mt_delta(j);
        unsigned a0 = __float_as_uint(p0[dj]), a1 = __float_as_uint(p0[dj + 8 * fbc::SW]);
        unsigned a2 = __float_as_uint(p1[dj]), a3 = __float_as_uint(p1[dj + 8 * fbc::SW]);
        if (ks == fbc::KSTEPS - 1) {
          a0 &= kv0;
          a1 &= kv0;
          a2 &= kv1;
          a3 &= kv1;
        }
#pragma unroll
        for (int nt = 0; nt < fbc::NT; ++nt) fb_mma_tf32(acc[j][nt], a0, a1, a2, a3, bf[ks][nt][0], bf[ks][nt][1]);
      }
    }
    {
      bool valid[fbc::MPW][2];
#pragma unroll
      for (int j = 0; j < fbc::MPW; ++j) {
        const int mt = warp * fbc::MPW + j;
        const int row = mt / fbc::WS, th = row % fbc::TH, td = row / fbc::TH;
#pragma unroll
        for (int r = 0; r < 2; ++r)
          valid[j][r] = td < T.tdv && th < T.thv && (mt % fbc::WS) * 16 + g + 8 * r < T.twv;
      }
      const float inv_count = 1.0f / (float)(T.tdv * T.thv * T.twv);
      float s[fbc::NT][2], m[fbc::NT][2];
#pragma unroll
      for (int nt = 0; nt < fbc::NT; ++nt)
#pragma unroll
        for (int odd = 0; odd < 2; ++odd) {
          float v = 0.0f, max_abs = 0.0f;
#pragma unroll
          for (int j = 0; j < fbc::MPW; ++j)
#pragma unroll
            for (int r = 0; r < 2; ++r)
              if (valid[j][r]) {
                v = fmaf(acc[j][nt][2 * r + odd], inv_count, v);
                max_abs = fmaxf(max_abs, fabsf(acc[j][nt][2 * r + odd]));
              }
          for (int o = 4; o < 32; o <<= 1) {
            v += __shfl_xor_sync(0xffffffffu, v, o);
            max_abs = fmaxf(max_abs, __shfl_xor_sync(0xffffffffu, max_abs, o));
          }
          s[nt][odd] = v;
          m[nt][odd] = max_abs;
        }
      // The scratch fits the 2 * WARPS + 1 floats per channel that conv_geometry.cpp reserves:
      // maxes share sq's place (read before sq is written), scales sums' first row (each column
      // is read by its one thread before it writes there).
      float* const sums = st;                          // [WARPS][CT]
      float* const means = st + fbc::WARPS * fbc::CT;  // [CT]
      float* const sq = means + fbc::CT;               // [WARPS][CT]
      float* const maxes = sq;                         // [WARPS][CT]
      float* const scales = sums;                      // [CT]
      if (g == 0) {
#pragma unroll
        for (int nt = 0; nt < fbc::NT; ++nt)
#pragma unroll
          for (int odd = 0; odd < 2; ++odd) {
            sums[warp * fbc::CT + nt * 8 + 2 * t4 + odd] = s[nt][odd];
            maxes[warp * fbc::CT + nt * 8 + 2 * t4 + odd] = m[nt][odd];
          }
      }
      __syncthreads();
      if (threadIdx.x < fbc::CT) {
        float v = 0.0f, max_abs = 0.0f;
        for (int wi = 0; wi < fbc::WARPS; ++wi) {
          v += sums[wi * fbc::CT + threadIdx.x];
          max_abs = fmaxf(max_abs, maxes[wi * fbc::CT + threadIdx.x]);
        }
        means[threadIdx.x] = v;
        scales[threadIdx.x] = fb_stats_scale(max_abs);
      }
      __syncthreads();
#pragma unroll
      for (int nt = 0; nt < fbc::NT; ++nt)
#pragma unroll
        for (int odd = 0; odd < 2; ++odd) {
          const float scale = scales[nt * 8 + 2 * t4 + odd], shift = -means[nt * 8 + 2 * t4 + odd] * scale;
          float v = 0.0f;
#pragma unroll
          for (int j = 0; j < fbc::MPW; ++j)
#pragma unroll
            for (int r = 0; r < 2; ++r)
              if (valid[j][r]) {
                const float d = fmaf(acc[j][nt][2 * r + odd], scale, shift);  // scale * (v - mean)
                v = fmaf(d, d, v);
              }
          for (int o = 4; o < 32; o <<= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
          if (g == 0) sq[warp * fbc::CT + nt * 8 + 2 * t4 + odd] = v;
        }
      __syncthreads();
      if (threadIdx.x < fbc::CT && c0 + (int)threadIdx.x < fbc::COUT) {
        float m2 = 0.0f;
        for (int wi = 0; wi < fbc::WARPS; ++wi) m2 += sq[wi * fbc::CT + threadIdx.x];
        // The accumulators hold the conv without its bias: the bias moves the mean, not M2.
        const float b = fbc::HAS_BIAS ? __ldg(bias + c0 + threadIdx.x) : 0.0f;
        partials[(n * fbc::COUT + c0 + threadIdx.x) * fbc::TILES + t] =
            make_float2(means[threadIdx.x] + b, sqrtf(m2) / scales[threadIdx.x]);
      }
    }
    float* const done = cur;
    cur = nxt;
    nxt = done;
    item = next;
  }
}

// Merges a (sample, group)'s partial statistics; writes per-(n, c) scale and mean.
extern "C" __global__ void __launch_bounds__(256, 1) fb_norm_finalize(const float2* __restrict__ partials,
    const float* __restrict__ gamma, float* __restrict__ nscale, float* __restrict__ nmean,
    const int* __restrict__ flags) {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");  // until the previous kernel is done and its writes visible
#endif
  constexpr int G = 8, CPG = 2;
  constexpr double EPS = 0x1.4f8b588e368f1p-17;
  constexpr bool AFFINE = true;
  const long long n = (long long)blockIdx.x / G;
  const int grp = (int)(blockIdx.x % G);
  if (flags[fbc::N] == 0 || flags[n] == 0) return;  // guard passed
  double cnt = 0.0, mean = 0.0, m2 = 0.0;
  for (int i = threadIdx.x; i < CPG * fbc::TILES; i += 256) {
    const int c = grp * CPG + i / fbc::TILES, t = i % fbc::TILES;
    const float2 p = partials[(n * fbc::COUT + c) * fbc::TILES + t];  // (mean, root of M2)
    fb_chan_merge(cnt, mean, m2, (double)fb_tile_count(t), (double)p.x, (double)p.y * (double)p.y);
  }
  // Tree merge in a fixed order: the statistics do not depend on timing.
  __shared__ double s_n[256], s_mean[256], s_m2[256];
  s_n[threadIdx.x] = cnt;
  s_mean[threadIdx.x] = mean;
  s_m2[threadIdx.x] = m2;
  __syncthreads();
  for (int s = 128; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      double a = s_n[threadIdx.x], b = s_mean[threadIdx.x], c = s_m2[threadIdx.x];
      fb_chan_merge(a, b, c, s_n[threadIdx.x + s], s_mean[threadIdx.x + s], s_m2[threadIdx.x + s]);
      s_n[threadIdx.x] = a;
      s_mean[threadIdx.x] = b;
      s_m2[threadIdx.x] = c;
    }
    __syncthreads();
  }
  const double mu = s_mean[0];
  // Biased variance, as GroupNorm.
  const double rstd = fb_rstd(s_m2[0] * __drcp_rn(s_n[0]) + EPS);
  for (int c = threadIdx.x; c < CPG; c += 256) {
    const int ch = grp * CPG + c;
    const double gm = AFFINE ? (double)__ldg(gamma + ch) : 1.0;
    nscale[n * fbc::COUT + ch] = (float)(gm * rstd);
    nmean[n * fbc::COUT + ch] = (float)mu;
  }
}


// One element after the conv and its norm: the chain and dropout, each result rounded to the storage type where
// eager PyTorch stores it (src/cpu/epilogue.cpp); returned as stored.
__device__ __forceinline__ fb_st fb_epilogue(float v, int c, fb_u32 draw) {
  float r = v;
  r = fb_minimum(r, 0x0p+0f);  // minimum
  r = fb_clamp(r, true, 0x0p+0f, true, 0x1p+0f);  // clamp
  r = fb_dropout_apply(r, draw < 13421773u, 0x1.4p+0f);  // dropout
  return fb_to_st(r);
}

__device__ __forceinline__ void fb_output_epilogue(const float* st, float* __restrict__ y,
    const float* __restrict__ bias, const float* __restrict__ nscale, const float* __restrict__ nmean,
    const float* __restrict__ beta,
    long long n, const fb_tile& T, int c0, const unsigned long long* __restrict__ dropout_state) {
  const unsigned long long seed = dropout_state[0], offset = dropout_state[1];
  constexpr int SEGD = fbc::SEG_LEVEL == 2 ? 1 : fbc::TD;  // segments per channel along d
  constexpr int SEGH = fbc::SEG_LEVEL == 0 ? fbc::TH : 1;  // and along h
  const int L = fbc::SEG_LEVEL == 0 ? T.twv : (fbc::SEG_LEVEL == 1 ? T.thv * fbc::OW : T.tdv * fbc::OH * fbc::OW);
  const int nsd = fbc::SEG_LEVEL == 2 ? 1 : T.tdv;
  const int nsh = fbc::SEG_LEVEL == 0 ? T.thv : 1;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  // A warp per segment (its constants loaded once), lanes over its 4-element steps.
  for (int s = warp; s < fbc::CT * SEGD * SEGH; s += fbc::WARPS) {
    const int sh = s % SEGH, sd = (s / SEGH) % SEGD, cl = s / (SEGH * SEGD);
    const int c = c0 + cl;
    if (sd >= nsd || sh >= nsh || c >= fbc::COUT) continue;
    const long long F = ((n * fbc::COUT + c) * fbc::OD + T.od0 + sd) * ((long long)fbc::OH * fbc::OW) +
                        (long long)(T.oh0 + sh) * fbc::OW + T.ow0;  // the segment's first flat index
    const long long q0 = F >> 2;
    const int lead = (int)(F & 3);  // elements of the first step that precede the segment
    const int steps = (lead + L + 3) >> 2;
    const float* seg = st + cl * fbc::CP + sd * fbc::PP + sh * fbc::RP;
    const float a = nscale[n * fbc::COUT + c], m = nmean[n * fbc::COUT + c];
    const float b = __ldg(beta + c);
    const float cb = fbc::HAS_BIAS ? __ldg(bias + c) : 0.0f;  // staging holds the conv without its bias
#pragma unroll 1
    for (int j = lane; j < steps; j += 32) {
      const long long q = q0 + j;
      const int e0 = 4 * j - lead;  // the step's first element, as an index into the segment
      const fb_u32x4 bits = fb_dropout_bits(seed, offset, (unsigned long long)(q));
      fb_st o[4];
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const int e = e0 + k;
        const float v = (e >= 0 && e < L ? seg[e] : 0.0f) + cb;
        o[k] = fb_epilogue(fmaf(v - m, a, b), c, bits.v[k]);
      }
      fb_store_quad(y, q, o, e0, L);
    }
  }
}

extern "C" __global__ void __launch_bounds__(256, 2) fb_conv_output(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias, const float* __restrict__ nscale, const float* __restrict__ nmean, const float* __restrict__ beta, float* __restrict__ y, const int* __restrict__ flags, const unsigned long long* __restrict__ dropout_state) {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");  // until the previous kernel is done and its writes visible
#endif
  if (flags[fbc::N] == 0) return;  // no sample failed the guard: nothing to recompute
  extern __shared__ __align__(16) float fb_smem[];
  float* const st = fb_smem + fbc::STAGE_OFFSET;
  const int c0 = blockIdx.y * fbc::CT;
  const long long total = fbc::N * fbc::TILES;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  // B fragments: B[k][n] = weight[c0 + n][k], rounded to tf32; zero past COUT and KRED.
  unsigned bf[fbc::KSTEPS][fbc::NT][2];
#pragma unroll
  for (int ks = 0; ks < fbc::KSTEPS; ++ks)
#pragma unroll
    for (int nt = 0; nt < fbc::NT; ++nt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int k = ks * 8 + t4 + 4 * h, c = c0 + nt * 8 + g;
        bf[ks][nt][h] = (k < fbc::KRED && c < fbc::COUT) ? __float_as_uint(fb_tf32(__ldg(w + c * fbc::KRED + k))) : 0u;
      }
  // The window offsets of each lane's two A columns per k-step, a table in shared memory
  // (read as one int2 per k-step; in registers they would push the kernel past 128).
  int* const ao_s = reinterpret_cast<int*>(fb_smem + fbc::AO_OFFSET);
  for (int i = threadIdx.x; i < fbc::KSTEPS * 8; i += fbc::THREADS) {
    const int k = (i / 8) * 8 + (i % 8) / 2 + 4 * (i % 2);  // i = (ks * 4 + t4) * 2 + h
    ao_s[i] = k < fbc::KRED ? fb_k_offset(k) : 0;
  }
  const int2* const ao = reinterpret_cast<const int2*>(ao_s);  // ready after the loop's first barrier
  // Columns past KRED in the last k-step read a real window word: zero them in A (B is zero
  // there too, but 0 * Inf would be NaN).
  // As masks, not flags: a branch on them (they depend on the lane) let ptxas split the warp
  // around mma.sync in the lean kernels, which then hung on an H100.
  const unsigned kv0 = (fbc::KSTEPS - 1) * 8 + t4 < fbc::KRED ? ~0u : 0u;
  const unsigned kv1 = (fbc::KSTEPS - 1) * 8 + t4 + 4 < fbc::KRED ? ~0u : 0u;
  // Window offset of row g of this warp's first m-tile; the others sit at fb_mt_delta(j).
  const int mt0 = warp * fbc::MPW;
  const int mbase = ((mt0 / fbc::WS) / fbc::TH) * fbc::SD * fbc::XPP + ((mt0 / fbc::WS) % fbc::TH) * fbc::SH * fbc::XWP +
                    ((mt0 % fbc::WS) * 16 + g) * fbc::SW;
  long long item = blockIdx.x;
  while (item < total && flags[item / fbc::TILES] == 0) item += gridDim.x;  // samples that passed
  float* cur = fb_smem + fbc::WIN0_OFFSET;
  float* nxt = fb_smem + fbc::WIN1_OFFSET;
  if (item < total) fb_issue_window(cur, x, item);
  fb_cp_commit();
  while (item < total) {
    long long next = item + gridDim.x;
    while (next < total && flags[next / fbc::TILES] == 0) next += gridDim.x;
    const long long n = item / fbc::TILES;
    const int t = (int)(item % fbc::TILES);
    const fb_tile T = fb_tile_at(t);
    fb_cp_wait_all();
    fb_round_window(cur);  // tf32, once per element rather than once per use
    __syncthreads();  // window ready; the previous tile's window and staging are free
    if (next < total) fb_issue_window(nxt, x, next);
    fb_cp_commit();
    const float* const xs = cur;
    float acc[fbc::MPW][fbc::NT][4];
#pragma unroll
    for (int j = 0; j < fbc::MPW; ++j)
#pragma unroll
      for (int nt = 0; nt < fbc::NT; ++nt)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[j][nt][i] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < fbc::KSTEPS; ++ks) {
      const int2 o = ao[ks * 4 + t4];
      const float* p0 = xs + mbase + o.x;
      const float* p1 = xs + mbase + o.y;
#pragma unroll
      for (int j = 0; j < fbc::MPW; ++j) {
        const int dj = fb_mt_delta(j);
        unsigned a0 = __float_as_uint(p0[dj]), a1 = __float_as_uint(p0[dj + 8 * fbc::SW]);
        unsigned a2 = __float_as_uint(p1[dj]), a3 = __float_as_uint(p1[dj + 8 * fbc::SW]);
        if (ks == fbc::KSTEPS - 1) {
          a0 &= kv0;
          a1 &= kv0;
          a2 &= kv1;
          a3 &= kv1;
        }
#pragma unroll
        for (int nt = 0; nt < fbc::NT; ++nt) fb_mma_tf32(acc[j][nt], a0, a1, a2, a3, bf[ks][nt][0], bf[ks][nt][1]);
      }
    }
    // C fragments to staging (the epilogue adds the bias): rows g and g + 8, channels 2 t4 and
    // 2 t4 + 1 per n-tile.
#pragma unroll
    for (int j = 0; j < fbc::MPW; ++j) {
      const int mt = warp * fbc::MPW + j;
      const int row = mt / fbc::WS, th = row % fbc::TH, td = row / fbc::TH;
      if (td < T.tdv && th < T.thv) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int ow = (mt % fbc::WS) * 16 + g + 8 * r;
          if (ow < T.twv) {
#pragma unroll
            for (int nt = 0; nt < fbc::NT; ++nt)
#pragma unroll
              for (int odd = 0; odd < 2; ++odd) {
                const int cl = nt * 8 + 2 * t4 + odd;
                if (c0 + cl < fbc::COUT)
                  st[cl * fbc::CP + td * fbc::PP + th * fbc::RP + ow] = acc[j][nt][2 * r + odd];
              }
          }
        }
      }
    }
    __syncthreads();  // staging complete
    fb_output_epilogue(st, y, bias, nscale, nmean, beta, n, T, c0, dropout_state);
    float* const done = cur;
    cur = nxt;
    nxt = done;
    item = next;
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

