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

// ---- general path ----
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

// SiLU and sigmoid on the TF32 path: __expf and __fdividef (NaN, +-Inf as x / (1 + exp(-x))).
__device__ __forceinline__ float fbl_silu_tf32(float x) { return __fdividef(x, 1.0f + __expf(-x)); }
__device__ __forceinline__ float fbl_sigmoid_tf32(float x) { return __fdividef(1.0f, 1.0f + __expf(-x)); }
// One element after the conv and its norm: the chain and dropout, each result rounded to the storage type where
// eager PyTorch stores it (src/cpu/epilogue.cpp); returned as stored.
__device__ __forceinline__ fb_st fb_epilogue(float v, int c, fb_u32 draw) {
  float r = v;
  r = fbl_silu_tf32(r);  // silu
  r = fb_dropout_apply(r, draw < 13421773u, 0x1.4p+0f);  // dropout
  return fb_to_st(r);
}
namespace fbl {  // the constants lean_kernels.cuh expects
constexpr bool DROPOUT = true;
constexpr int GROUPS = 8;
constexpr double EPS = 0x1.4f8b588e368f1p-17;
constexpr bool AFFINE = true;
constexpr int SCP = 500;  // staging channel pitch
}  // namespace fbl
// ---- lean_kernels.cuh ----
// The general path's lean kernels (emit_lean.cpp pastes this text after the emitted geometry
// constants, the shared epilogue fb_epilogue and the helpers, when lean_path_applies(): the MMA engine, one 16-channel
// block, stride 1, no padding, a tile spanning an output row). Three kernels:
//   fbl_conv_stats   conv (tf32 MMA), statistics from the accumulators, no conv output stored;
//   fbl_finalize     per (sample, group): merge the partials in double, write y = a conv + b's a, b;
//   fbl_conv_output  conv again, a conv + b, the chain, dropout, one float4 store per 4 outputs.
// A block owns one sample's contiguous run of tiles (grid = samples x BPS, one wave on the device),
// so its statistics stay in registers across tiles: per warp and channel, sums of S (v - K) and
// (S (v - K))^2 with K the warp's first row mean and S a power of two, 1 unless the values are
// huge (fbl_conv_stats); one partial per (block, warp, channel). Each thread
// copies the same window chunks for every tile (16-byte cp.async, zero-filled outside the input);
// staging is written without branches; the epilogue reads staging as float4 and calls Philox once
// per 4 outputs. Measured against src/'s earlier kernels and the sample-resident design in
// dev/general_lean.cpp (docs/benchmarks.md). Emitted before this text: fbl::DROPOUT, GROUPS, EPS,
// AFFINE and SCP (staging channel pitch). The measured winners of
// dev/general_lean.cpp are fixed here (the host's shared-memory sizes in emit_lean.cpp assume
// them): the B fragments in shared memory (v7b), 2 blocks per SM for both conv kernels, one
// window buffer in the output kernel loaded under the epilogue (v7g), one 4-element step per lane
// in flight in the epilogue (v7d: two were no faster).
namespace fbl {
constexpr int IHW = fbc::IH * fbc::IW;
constexpr int CH_STRIDE = fbc::ID * IHW;
constexpr int ROWS = fbc::CIN * fbc::XD * fbc::XH;  // window rows
constexpr int CPR = fbc::IW / 4;                    // 16-byte chunks per window row
constexpr int CHUNKS = ROWS * CPR;
constexpr int RPI = fbc::THREADS / CPR;             // rows per pass of the block
constexpr int CPT = (CHUNKS + fbc::THREADS - 1) / fbc::THREADS;  // chunks per thread
constexpr int WIN = fbc::CIN * fbc::XCP;            // floats per window buffer
constexpr int SRP = fbc::OW, SPP = fbc::TH * fbc::OW;  // staging pitches (compact rows; SCP is emitted)
constexpr int STAGE_FLOATS = fbc::COUT * SCP;
constexpr int STAGE = 2 * WIN;                      // past the statistics kernel's two windows
constexpr int JUNK_FLOATS = 32 * fbc::WARPS;  // a junk slot per thread (no two threads share one)
constexpr long long OHW = (long long)fbc::OH * fbc::OW;

static_assert(fbc::SD == 1 && fbc::SH == 1 && fbc::SW == 1, "stride 1");
static_assert(fbc::PD == 0 && fbc::PH == 0 && fbc::PW == 0, "no padding");
static_assert(fbc::DD == 1 && fbc::DH == 1 && fbc::DW == 1, "no dilation");
static_assert(fbc::TILES_W == 1 && fbc::TW >= fbc::OW && fbc::XW >= fbc::IW, "one tile spans a row");
static_assert(fbc::IW % 4 == 0 && fbc::THREADS % CPR == 0, "window rows in 16-byte chunks");
static_assert(fbc::TD * fbc::TILES_D == fbc::OD, "no partial tile along d");
static_assert(fbc::MPW == fbc::WS && fbc::WARPS == fbc::TD * fbc::TH, "a warp computes one output row");
static_assert(fbc::CT == fbc::COUT && fbc::COUT == 16 && fbc::NT == 2, "16 channels, one block");
static_assert(OHW % 4 == 0 && (fbc::TH * fbc::OW) % 4 == 0, "segments start on a 4-element boundary");
static_assert(fbc::TD * SPP <= SCP && SCP % 4 == 0 && (SCP * 2) % 32 == 8, "staging pitch");
static_assert(fbc::XWP % 4 == 0 && fbc::XPP % 4 == 0 && fbc::XCP % 4 == 0 && WIN % 4 == 0, "16-byte rows");
}  // namespace fbl

__device__ __forceinline__ void fbl_cp16(float* dst, const float* src, bool valid) {
  const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 16 : 0) : "memory");
}

// Starts the copy of tile t's window of sample xn: this thread's chunks (the same ones for every
// tile), rows outside the input zero-filled. Columns IW.. of every row are zeroed once (fbl_zero_pads).
__device__ __forceinline__ void fbl_issue(float* xs, const float* __restrict__ xn, int t) {
  const int oh0 = (t % fbc::TILES_H) * fbc::TH, od0 = (t / fbc::TILES_H) * fbc::TD;
  const float* base = xn + od0 * fbl::IHW + oh0 * fbc::IW + 4 * (threadIdx.x % fbl::CPR);
#pragma unroll
  for (int k = 0; k < fbl::CPT; ++k) {
    const int row = threadIdx.x / fbl::CPR + k * fbl::RPI;
    if (fbl::CHUNKS % fbc::THREADS == 0 || row < fbl::ROWS) {
      const int xh = row % fbc::XH, xd = (row / fbc::XH) % fbc::XD, ci = row / (fbc::XH * fbc::XD);
      const bool in = oh0 + xh < fbc::IH;
      const float* src = base + ci * fbl::CH_STRIDE + xd * fbl::IHW + xh * fbc::IW;
      fbl_cp16(xs + ci * fbc::XCP + xd * fbc::XPP + xh * fbc::XWP + 4 * (threadIdx.x % fbl::CPR), in ? src : xn, in);
    }
  }
}

// After the copies landed: rounds this thread's own chunks to tf32 (no barrier needed before).
__device__ __forceinline__ void fbl_round(float* xs) {
#pragma unroll
  for (int k = 0; k < fbl::CPT; ++k) {
    const int row = threadIdx.x / fbl::CPR + k * fbl::RPI;
    if (fbl::CHUNKS % fbc::THREADS == 0 || row < fbl::ROWS) {
      const int xh = row % fbc::XH, xd = (row / fbc::XH) % fbc::XD, ci = row / (fbc::XH * fbc::XD);
      float4* p = reinterpret_cast<float4*>(xs + ci * fbc::XCP + xd * fbc::XPP + xh * fbc::XWP + 4 * (threadIdx.x % fbl::CPR));
      float4 v = *p;
      v.x = fb_tf32(v.x);
      v.y = fb_tf32(v.y);
      v.z = fb_tf32(v.z);
      v.w = fb_tf32(v.w);
      *p = v;
    }
  }
}

// Window columns past the input row (read by the last positions of a row) are zero in both buffers.
__device__ __forceinline__ void fbl_zero_pads(float* smem, int buffers = 2) {
  constexpr int PADC = fbc::XW - fbc::IW;
  for (int i = threadIdx.x; i < buffers * fbl::ROWS * PADC; i += fbc::THREADS) {
    const int b = i / (fbl::ROWS * PADC), r = (i / PADC) % fbl::ROWS, c = fbc::IW + i % PADC;
    const int xh = r % fbc::XH, xd = (r / fbc::XH) % fbc::XD, ci = r / (fbc::XH * fbc::XD);
    smem[b * fbl::WIN + ci * fbc::XCP + xd * fbc::XPP + xh * fbc::XWP + c] = 0.0f;
  }
}

// The B fragments (weights, tf32) and the A-offset table, as the emitted prologue.
constexpr int FBL_BS_FLOATS = fbc::KSTEPS * fbc::NT * 32 * 2;
struct fbl_engine {
  const uint2* bs;  // [KSTEPS][NT][32 lanes]
  const int2* ao;
  int mbase;
  unsigned m0, m1;  // all ones where the last k-step's column is inside KRED, else 0
};
// ao_s: KSTEPS * 8 ints, then the B table, 8-byte aligned.
__device__ __forceinline__ void fbl_engine_init(fbl_engine& e, const float* __restrict__ w, int* ao_s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;
  uint2* const bs = reinterpret_cast<uint2*>(ao_s + fbc::KSTEPS * 8);
  for (int i = threadIdx.x; i < fbc::KSTEPS * fbc::NT * 32; i += fbc::THREADS) {
    const int l = i % 32, nt = (i / 32) % fbc::NT, ks = i / (32 * fbc::NT);
    const int c = nt * 8 + (l >> 2), k0 = ks * 8 + (l & 3), k1 = k0 + 4;
    bs[i] = make_uint2(k0 < fbc::KRED ? __float_as_uint(fb_tf32(__ldg(w + c * fbc::KRED + k0))) : 0u,
                       k1 < fbc::KRED ? __float_as_uint(fb_tf32(__ldg(w + c * fbc::KRED + k1))) : 0u);
  }
  e.bs = bs;
  for (int i = threadIdx.x; i < fbc::KSTEPS * 8; i += fbc::THREADS) {
    const int k = (i / 8) * 8 + (i % 8) / 2 + 4 * (i % 2);
    ao_s[i] = k < fbc::KRED ? fb_k_offset(k) : 0;
  }
  e.ao = reinterpret_cast<const int2*>(ao_s);
  e.m0 = (fbc::KSTEPS - 1) * 8 + t4 < fbc::KRED ? ~0u : 0u;
  e.m1 = (fbc::KSTEPS - 1) * 8 + t4 + 4 < fbc::KRED ? ~0u : 0u;
  // Warp = one output row (td, th) of the tile; lane row g.
  e.mbase = (warp / fbc::TH) * fbc::XPP + (warp % fbc::TH) * fbc::XWP + g;
}

__device__ __forceinline__ void fbl_mma(const fbl_engine& e, const float* xs, float (&acc)[fbc::MPW][fbc::NT][4]) {
  const int t4 = threadIdx.x & 3;
#pragma unroll
  for (int j = 0; j < fbc::MPW; ++j)
#pragma unroll
    for (int nt = 0; nt < fbc::NT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[j][nt][i] = 0.0f;
#pragma unroll
  for (int ks = 0; ks < fbc::KSTEPS; ++ks) {
    const int2 o = e.ao[ks * 4 + t4];
    const float* p0 = xs + e.mbase + o.x;
    const float* p1 = xs + e.mbase + o.y;
    uint2 b[fbc::NT];
#pragma unroll
    for (int nt = 0; nt < fbc::NT; ++nt) b[nt] = e.bs[(ks * fbc::NT + nt) * 32 + (threadIdx.x & 31)];
#pragma unroll
    for (int j = 0; j < fbc::MPW; ++j) {
      unsigned a0 = __float_as_uint(p0[16 * j]), a1 = __float_as_uint(p0[16 * j + 8]);
      unsigned a2 = __float_as_uint(p1[16 * j]), a3 = __float_as_uint(p1[16 * j + 8]);
      if (ks == fbc::KSTEPS - 1) {  // masks, not branches: a branch on t4 made ptxas split the
        a0 &= e.m0;                  // warp around mma.sync (which needs the whole warp), and
        a1 &= e.m0;                  // the kernel hung on the H100
        a2 &= e.m1;
        a3 &= e.m1;
      }
#pragma unroll
      for (int nt = 0; nt < fbc::NT; ++nt)
        fb_mma_tf32(acc[j][nt], a0, a1, a2, a3, b[nt].x, b[nt].y);
    }
  }
}

// Is accumulator row (m-tile j, half r) of this lane inside the output row?
__device__ __forceinline__ bool fbl_col_ok(int j, int r) {
  const int g = (threadIdx.x & 31) >> 2;
  return (16 * j + 8 * r + 15 < fbc::OW) || (16 * j + 8 * r + g < fbc::OW);
}

// Accumulators to a staging slot: (channel, td, th, ow) at c*SCP + td*SPP + th*SRP + ow; lanes
// whose position is past the row write to a junk area instead (no branch). Rows past the
// output (the last h-tile) land inside the plane and are never read.
__device__ __forceinline__ void fbl_stage(float* st, float* junk, const float (&acc)[fbc::MPW][fbc::NT][4]) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;
  float* const row = st + (warp / fbc::TH) * fbl::SPP + (warp % fbc::TH) * fbl::SRP + g + 2 * t4 * fbl::SCP;
#pragma unroll
  for (int j = 0; j < fbc::MPW; ++j)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float* const p = fbl_col_ok(j, r) ? row + 16 * j + 8 * r : junk + threadIdx.x;
      const int pitch = fbl_col_ok(j, r) ? fbl::SCP : 0;
#pragma unroll
      for (int nt = 0; nt < fbc::NT; ++nt)
#pragma unroll
        for (int odd = 0; odd < 2; ++odd) p[(nt * 8 + odd) * pitch] = acc[j][nt][2 * r + odd];
    }
}

// Four outputs from staging: a * conv + b, then the shared epilogue (chain, dropout) with one
// Philox call for the four draws (unused, and so not computed, without dropout).
__device__ __forceinline__ void fbl_step(const float* seg, float* __restrict__ y, long long q, int j, float a, float b,
                                         unsigned long long seed, unsigned long long offset) {
  const float4 v = *reinterpret_cast<const float4*>(seg + 4 * j);
  const fb_u32x4 bits = fb_dropout_bits(seed, offset, (unsigned long long)q);
  const fb_st o[4] = {fb_epilogue(fmaf(v.x, a, b), 0, bits.v[0]), fb_epilogue(fmaf(v.y, a, b), 0, bits.v[1]),
                      fb_epilogue(fmaf(v.z, a, b), 0, bits.v[2]), fb_epilogue(fmaf(v.w, a, b), 0, bits.v[3])};
  fb_store_quad(y, q, o, 0, 4);
}
// The output of one (channel, td) segment of a staged tile: L = thv * OW consecutive outputs.
// a, b: y = a * conv + b before the chain (b holds the conv bias, the mean and beta).
__device__ __forceinline__ void fbl_segment(const float* seg, float* __restrict__ y, long long q0, int steps, float a,
                                           float b, unsigned long long seed, unsigned long long offset) {
  for (int j = threadIdx.x & 31; j < steps; j += 32)
    fbl_step(seg, y, q0 + j, j, a, b, seed, offset);
}

// Every segment of a staged tile; warp w takes segments w, w + WARPS, ... (segment s = channel
// s / TD, plane s % TD), whose (a, b) it holds in ab[].
__device__ __forceinline__ void fbl_tile_out(const float* st, float* __restrict__ y, long long n, int t,
                                            const float2 (&ab)[fbc::COUT * fbc::TD / fbc::WARPS],
                                            unsigned long long seed, unsigned long long offset) {
  const int warp = threadIdx.x >> 5;
  const int oh0 = (t % fbc::TILES_H) * fbc::TH, od0 = (t / fbc::TILES_H) * fbc::TD;
  const int thv = min(fbc::TH, fbc::OH - oh0);
  const int steps = thv * fbc::OW / 4;
#pragma unroll
  for (int i = 0; i < fbc::COUT * fbc::TD / fbc::WARPS; ++i) {
    const int s = warp + i * fbc::WARPS, c = s / fbc::TD, sd = s % fbc::TD;
    const long long F = ((n * fbc::COUT + c) * fbc::OD + od0 + sd) * fbl::OHW + (long long)oh0 * fbc::OW;
    fbl_segment(st + c * fbl::SCP + sd * fbl::SPP, y, F >> 2, steps, ab[i].x, ab[i].y, seed, offset);
  }
}

// ---------------------------------------------------------------- the three kernels
// Partial statistics: per (sample, part, warp, channel) float4 (K, mean of v - K, root of the sum of
// (v - K)^2, count). Each lane sums its deviations scaled by S = 2^-k per channel: S = 1 (the sums
// as they were) until a tile's scaled squares reach 2^64; that tile then lowers S (fb_stats_scale
// of its max |v|, |K|), rescales the sums (exactly: powers of two) and is summed again. So nothing
// overflows where the values do not, and the ordinary path costs one add per channel and tile.
// The partial's mean and root fit a float without S; the finalize squares the root in double.
extern "C" __global__ void __launch_bounds__(256, 2) fbl_conv_stats(const float* __restrict__ x,
    const float* __restrict__ w, float4* __restrict__ partials, int bps) {
  extern __shared__ __align__(16) float smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2;
  const long long n = blockIdx.x / bps;
  const int part = blockIdx.x % bps;
  const int t0 = part * fbc::TILES / bps, t1 = (part + 1) * fbc::TILES / bps;
  const float* xn = x + n * fbc::IN_SAMPLE;
  fbl_engine e;
  fbl_engine_init(e, w, reinterpret_cast<int*>(smem + fbl::STAGE));
  fbl_zero_pads(smem);
  float* cur = smem;
  float* nxt = smem + fbl::WIN;
  fbl_issue(cur, xn, t0);
  fb_cp_commit();
  // Per lane and channel: the scale S, the shift as -K * S, s = sum S (v - K), q = sum (S (v - K))^2.
  float S[fbc::NT][2], nks[fbc::NT][2], s[fbc::NT][2], q[fbc::NT][2];
#pragma unroll
  for (int nt = 0; nt < fbc::NT; ++nt)
#pragma unroll
    for (int odd = 0; odd < 2; ++odd) {
      S[nt][odd] = 1.0f;
      nks[nt][odd] = s[nt][odd] = q[nt][odd] = 0.0f;
    }
  bool have_k = false;
  float cnt = 0.0f;
  float lane_cnt = 0.0f;
#pragma unroll
  for (int j = 0; j < fbc::MPW; ++j)
#pragma unroll
    for (int r = 0; r < 2; ++r) lane_cnt += fbl_col_ok(j, r) ? 1.0f : 0.0f;
  for (int t = t0; t < t1; ++t) {
    fb_cp_wait_all();
    fbl_round(cur);
    __syncthreads();
    if (t + 1 < t1) fbl_issue(nxt, xn, t + 1);
    fb_cp_commit();
    float acc[fbc::MPW][fbc::NT][4];
    fbl_mma(e, cur, acc);
    const int oh0 = (t % fbc::TILES_H) * fbc::TH;
    if (oh0 + warp % fbc::TH < fbc::OH) {  // this warp's row is an output row (warp-uniform)
      if (!have_k) {  // the shift: the row's mean, from the first valid row
        have_k = true;
#pragma unroll
        for (int nt = 0; nt < fbc::NT; ++nt)
#pragma unroll
          for (int odd = 0; odd < 2; ++odd) {
            float v = 0.0f;  // sums v / OW: no partial sum passes max |v|
#pragma unroll
            for (int j = 0; j < fbc::MPW; ++j)
#pragma unroll
              for (int r = 0; r < 2; ++r) v = fmaf(fbl_col_ok(j, r) ? acc[j][nt][2 * r + odd] : 0.0f, 1.0f / fbc::OW, v);
            for (int o = 4; o < 32; o <<= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
            nks[nt][odd] = -v;  // S = 1
          }
      }
#pragma unroll
      for (int nt = 0; nt < fbc::NT; ++nt)
#pragma unroll
        for (int odd = 0; odd < 2; ++odd) {
          float ts = 0.0f, tq = 0.0f;  // this tile's sums
#pragma unroll
          for (int j = 0; j < fbc::MPW; ++j)
#pragma unroll
            for (int r = 0; r < 2; ++r) {
              const float d = fbl_col_ok(j, r) ? fmaf(acc[j][nt][2 * r + odd], S[nt][odd], nks[nt][odd]) : 0.0f;
              ts += d;
              tq = fmaf(d, d, tq);
            }
          if (!(tq < 0x1p64f)) {  // huge values for this scale (or NaN, Inf): lower the scale, sum again
            float max_abs = fabsf(nks[nt][odd] / S[nt][odd]);  // |K|
#pragma unroll
            for (int j = 0; j < fbc::MPW; ++j)
#pragma unroll
              for (int r = 0; r < 2; ++r)
                if (fbl_col_ok(j, r)) max_abs = fmaxf(max_abs, fabsf(acc[j][nt][2 * r + odd]));
            const float lower = fminf(S[nt][odd], fb_stats_scale(max_abs)), ratio = lower / S[nt][odd];
            S[nt][odd] = lower;
            nks[nt][odd] *= ratio;
            s[nt][odd] *= ratio;
            q[nt][odd] = q[nt][odd] * ratio * ratio;
            ts = tq = 0.0f;
#pragma unroll
            for (int j = 0; j < fbc::MPW; ++j)
#pragma unroll
              for (int r = 0; r < 2; ++r) {
                const float d = fbl_col_ok(j, r) ? fmaf(acc[j][nt][2 * r + odd], lower, nks[nt][odd]) : 0.0f;
                ts += d;
                tq = fmaf(d, d, tq);
              }
            if (!(max_abs <= 0x1.fffffep127f)) tq = __int_as_float(0x7fc00000);  // an Inf: the group is NaN
          }
          s[nt][odd] += ts;
          q[nt][odd] += tq;
        }
      cnt += lane_cnt;
    }
    float* const done = cur;
    cur = nxt;
    nxt = done;
  }
  for (int o = 4; o < 32; o <<= 1) cnt += __shfl_xor_sync(0xffffffffu, cnt, o);
#pragma unroll
  for (int nt = 0; nt < fbc::NT; ++nt)
#pragma unroll
    for (int odd = 0; odd < 2; ++odd) {
      // The lanes of a channel share K but not S: bring them to the smallest S, then sum.
      float lowest = S[nt][odd];
      for (int o = 4; o < 32; o <<= 1) lowest = fminf(lowest, __shfl_xor_sync(0xffffffffu, lowest, o));
      const float ratio = lowest / S[nt][odd];
      float a = s[nt][odd] * ratio, b = q[nt][odd] * ratio * ratio;
      for (int o = 4; o < 32; o <<= 1) {
        a += __shfl_xor_sync(0xffffffffu, a, o);
        b += __shfl_xor_sync(0xffffffffu, b, o);
      }
      const int c = nt * 8 + 2 * (lane & 3) + odd;
      if (g == 0)
        partials[((n * bps + part) * fbc::WARPS + warp) * fbc::COUT + c] =
            make_float4(-nks[nt][odd] / S[nt][odd], a / (lowest * cnt), sqrtf(b) / lowest, cnt);
    }
}

// One warp per (sample, group): merges the group's partials in double (lane i takes partials
// i, i + 32, ...; then a butterfly in a fixed order) and writes per (n, c): a = gamma * rstd and
// b = beta + a * (bias - mean), so that the output kernel computes a * conv + b.
extern "C" __global__ void __launch_bounds__(256) fbl_finalize(const float4* __restrict__ partials,
    const float* __restrict__ bias, const float* __restrict__ gamma, const float* __restrict__ beta,
    float2* __restrict__ ab, int bps) {
  const int lane = threadIdx.x & 31;
  const long long pair = (long long)blockIdx.x * 8 + (threadIdx.x >> 5);
  if (pair >= fbc::N * fbl::GROUPS) return;
  const long long n = pair / fbl::GROUPS;
  const int grp = (int)(pair % fbl::GROUPS);
  constexpr int CPG = fbc::COUT / fbl::GROUPS;
  const int P = bps * fbc::WARPS * CPG;
  double cn = 0.0, mean = 0.0, m2 = 0.0;
  for (int i = lane; i < P; i += 32) {
    const int c = grp * CPG + i % CPG, wp = i / CPG;  // wp = part * WARPS + warp
    const float4 p = partials[(n * bps * fbc::WARPS + wp) * fbc::COUT + c];
    if (p.w == 0.0f) continue;
    const double pn = p.w, dm = p.y;  // dm: the mean of v - K
    const double pm = (double)p.x + dm + (fbc::HAS_BIAS ? (double)__ldg(bias + c) : 0.0);
    const double pm2 = (double)p.z * (double)p.z - pn * dm * dm;
    fb_chan_merge(cn, mean, m2, pn, pm, pm2 < 0.0 ? 0.0 : pm2);  // rounding below 0; NaN stays NaN
  }
  for (int o = 16; o > 0; o >>= 1) {
    const double on = __shfl_xor_sync(0xffffffffu, cn, o), om = __shfl_xor_sync(0xffffffffu, mean, o),
                 om2 = __shfl_xor_sync(0xffffffffu, m2, o);
    fb_chan_merge(cn, mean, m2, on, om, om2);
  }
  const double rstd = fb_rstd(m2 / cn + fbl::EPS);
  if (lane < CPG) {
    const int c = grp * CPG + lane;
    // In double, rounded once: the float product where rstd is a float, and no underflow of
    // rstd's own rounding where it is not.
    const float a = (float)((fbl::AFFINE ? (double)__ldg(gamma + c) : 1.0) * rstd);
    const float cb = fbc::HAS_BIAS ? __ldg(bias + c) : 0.0f;
    ab[n * fbc::COUT + c] = make_float2(a, fmaf(a, cb - (float)mean, fbl::AFFINE ? __ldg(beta + c) : 0.0f));
  }
}

extern "C" __global__ void __launch_bounds__(256, 2) fbl_conv_output(const float* __restrict__ x,
    const float* __restrict__ w, const float2* __restrict__ abg, float* __restrict__ y, int bps,
    const unsigned long long* __restrict__ dropout_state) {
  // Dropout's (seed, offset) from device memory (emit_dropout_state.hpp); no buffer without dropout.
  const unsigned long long seed = fbl::DROPOUT ? dropout_state[0] : 0ull, offset = fbl::DROPOUT ? dropout_state[1] : 0ull;
  extern __shared__ __align__(16) float smem[];
  const int warp = threadIdx.x >> 5;
  const long long n = blockIdx.x / bps;
  const int part = blockIdx.x % bps;
  const int t0 = part * fbc::TILES / bps, t1 = (part + 1) * fbc::TILES / bps;
  const float* xn = x + n * fbc::IN_SAMPLE;
  float* const st = smem + fbl::WIN;  // past the one window buffer
  float* const junk = st + fbl::STAGE_FLOATS;
  fbl_engine e;
  fbl_engine_init(e, w, reinterpret_cast<int*>(junk + fbl::JUNK_FLOATS));
  fbl_zero_pads(smem, 1);
  float2 ab[fbc::COUT * fbc::TD / fbc::WARPS];
#pragma unroll
  for (int i = 0; i < fbc::COUT * fbc::TD / fbc::WARPS; ++i) ab[i] = abg[n * fbc::COUT + (warp + i * fbc::WARPS) / fbc::TD];
  // One window: the next tile's copy starts once every warp's MMA has read this one (the barrier
  // after staging) and lands under the epilogue (dev v7g: the output kernel 2.6-3.1% faster than
  // with two buffers, and 22 KB less shared memory per block).
  fbl_issue(smem, xn, t0);
  fb_cp_commit();
  for (int t = t0; t < t1; ++t) {
    fb_cp_wait_all();
    fbl_round(smem);
    __syncthreads();  // window ready; the previous tile's staging has been read
    float acc[fbc::MPW][fbc::NT][4];
    fbl_mma(e, smem, acc);
    fbl_stage(st, junk, acc);
    __syncthreads();  // staging complete; the window is free
    if (t + 1 < t1) fbl_issue(smem, xn, t + 1);
    fb_cp_commit();
    fbl_tile_out(st, y, n, t, ab, seed, offset);
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

