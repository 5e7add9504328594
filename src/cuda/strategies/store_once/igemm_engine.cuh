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
//                 conv + bias rounded again (as eager), + the per-(sample, channel) input rounded
//                 again where the block has one (HAS_ADD) -> per (sample, channel, M tile) (mean, root
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
                                         const fb_st* __restrict__ bias, const fb_st* __restrict__ channel_add,
                                         fb_st* __restrict__ y, float2* __restrict__ partials) {
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
    const long long nc = (long long)n * COUT + n0 + c;  // channel_add is [N][COUT]
    const float a0 = HAS_ADD ? fb_ld(channel_add[nc]) : 0.0f, a1 = HAS_ADD ? fb_ld(channel_add[nc + 1]) : 0.0f;
#pragma unroll
    for (int i = 0; i < MI; ++i) {
      const int r = warp_m * WM + i * 16 + g;
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const fb_st st = fb_to_st(acc[i][j][e]);  // the conv as stored (cuDNN's output, eager's conv)
        so[(c + (e & 1)) * OUT_LD + r + 8 * (e >> 1)] = st;
        // conv + bias (+ add) as eager rounds it (fb_so_conv_value): the value the statistics see
        const float v = HAS_BIAS ? fb_round(fb_ld(st) + ((e & 1) ? b1 : b0)) : fb_ld(st);
        acc[i][j][e] = HAS_ADD ? fb_round(v + ((e & 1) ? a1 : a0)) : v;
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
