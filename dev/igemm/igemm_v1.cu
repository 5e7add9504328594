// dev/igemm v1: an implicit-GEMM conv (Conv1d/2d/3d, stride 1, padding k/2) on the sm_80 tensor-core
// path, with the GroupNorm partial statistics computed in its epilogue.
//
//   GEMM view: M = output pixels of one sample (tiles never cross a sample), N = Cout,
//              K = taps * Cin in the order (kd, kh, kw, ci), the order of the packed weights.
//   A (BM x 32 per stage): gathered from the channels-last input by cp.async, 16 bytes (8 channels)
//              per copy, zero-filled (src-size 0) at the padding, past the sample's last pixel and
//              past K; B (BN x 32): the packed weights [Cout][Kp] (K padded to 32 with zeros).
//   STAGES-deep cp.async pipeline, XOR-swizzled 64-byte shared-memory rows, ldmatrix.x4 fragments,
//   mma.sync.m16n8k16 (bf16 or f16 operands, fp32 accumulation).
//   Epilogue: + bias, rounded to the storage type; the rounded tile staged in shared memory and
//   stored once with 16-byte stores; from the rounded values in registers, per (sample, channel,
//   M tile) (mean, M2) in fp32, two passes (sum -> mean, then sum of squared deviations from that
//   mean), reduced in a fixed order (lane butterfly, then warps in index order): deterministic,
//   no atomics. partials[(n * tiles_per_sample + tile) * Cout + c] = (mean, M2); the tile's count
//   is min(BM, P - tile * BM).
//
// Build and run: bash dev/igemm/run.sh   (see dev/igemm/README.md)
//   igemm_v1 [reps [name]]  every shape (or those whose name contains `name`: SD, VAE, MONAI,
//                       audio, p83), bf16 and f16: check against a naive GPU conv, statistics
//                       against float64 on the host, timing (median of `reps`, default 20, L2 flushed)
//   igemm_v1 --selftest CPU only: the kernel's index math (row masks, tap offsets, swizzle, weight
//                       packing) against a direct conv in double on small shapes
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#define CK(call)                                                                              \
  do {                                                                                        \
    cudaError_t e_ = (call);                                                                  \
    if (e_ != cudaSuccess) {                                                                  \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      std::exit(2);                                                                           \
    }                                                                                         \
  } while (0)

constexpr int BK = 32;  // K elements per stage: 64 bytes per shared-memory row

// ------------------------------------------------------------------ index math (host and device)
// Shared by the kernel and the CPU self-test, so the self-test checks what the kernel runs.

struct ConvParams {
  int N, D, H, W;         // input = output spatial size (stride 1, padding k/2); D = H = 1 allowed
  int Cin;                // channels in the stored layout (a multiple of 8; padded with zeros)
  int Cout;               // a multiple of the tile's BN
  int K, Kp;              // taps * Cin, and K rounded up to BK
  int P;                  // D * H * W
  int tiles_per_sample;   // ceil(P / BM)
};

// Row setup for output pixel m of a sample: the element offset of its channel 0 in the sample's
// channels-last input, and a bit per tap that is inside the input (bit t for tap t = (kd*KH+kh)*KW+kw).
template <int KD, int KH, int KW>
__host__ __device__ inline void row_setup(int m, const ConvParams& p, int& off, unsigned& mask) {
  static_assert(KD * KH * KW <= 32, "a row's tap mask is 32 bits");
  off = 0;
  mask = 0u;
  if (m >= p.P) return;
  const int ow = m % p.W, oh = (m / p.W) % p.H, od = m / (p.W * p.H);
  off = m * p.Cin;
#pragma unroll
  for (int kd = 0; kd < KD; ++kd)
#pragma unroll
    for (int kh = 0; kh < KH; ++kh)
#pragma unroll
      for (int kw = 0; kw < KW; ++kw) {
        const int id = od + kd - KD / 2, ih = oh + kh - KH / 2, iw = ow + kw - KW / 2;
        const bool in = id >= 0 && id < p.D && ih >= 0 && ih < p.H && iw >= 0 && iw < p.W;
        mask |= (in ? 1u : 0u) << ((kd * KH + kh) * KW + kw);
      }
}

// Element offset, in the channels-last input, from an output pixel's channel 0 to tap t's channel 0.
template <int KD, int KH, int KW>
__host__ __device__ inline int tap_delta(int t, const ConvParams& p) {
  const int kd = t / (KH * KW), kh = (t / KW) % KH, kw = t % KW;
  return (((kd - KD / 2) * p.H + (kh - KH / 2)) * p.W + (kw - KW / 2)) * p.Cin;
}

// The loader's walk along K for one 16-byte chunk column: k = col * 8 + 32 * (stages loaded so far),
// split into (tap, ci) without a division per stage (Cin is a multiple of 8, so a chunk never
// straddles two taps).
struct KWalk {
  int k, tap, ci;
  __host__ __device__ KWalk(int col, int Cin) : k(col * 8), tap(col * 8 / Cin), ci(col * 8 - tap * Cin) {}
  __host__ __device__ void next(int Cin) {
    k += BK;
    ci += BK;
    while (ci >= Cin) ci -= Cin, ++tap;
  }
};

// Byte offset of 16-byte chunk `chunk` (0..3) of row `row` in a tile of 64-byte rows. The XOR with
// (row / 2) % 4 spreads the 8 rows one ldmatrix phase reads over all 8 16-byte bank groups.
__host__ __device__ inline int swz(int row, int chunk) { return row * 64 + ((chunk ^ ((row >> 1) & 3)) << 4); }

// ldmatrix.x4 lane addresses (byte offsets in a stage's tile), for m16n8k16's fragment layouts:
//   A, rows r0..r0+15: matrices (rows 0-7, k 0-7) (rows 8-15, k 0-7) (rows 0-7, k 8-15) (rows 8-15, k 8-15)
//      -> registers a0..a3; lane l gives row r0 + l % 16, k chunk l / 16.
//   B, n rows n0..n0+15 (two n8 blocks): (n 0-7, k 0-7) (n 0-7, k 8-15) (n 8-15, k 0-7) (n 8-15, k 8-15)
//      -> b0, b1 of block n0 and b0, b1 of block n0 + 8; lane l gives n row n0 + l % 8 + 8 * (l / 16),
//      k chunk (l / 8) % 2.  ks: which k16 half of the stage's 32.
__host__ __device__ inline int a_frag_addr(int r0, int lane, int ks) { return swz(r0 + (lane & 15), ks * 2 + (lane >> 4)); }
__host__ __device__ inline int b_frag_addr(int n0, int lane, int ks) {
  return swz(n0 + (lane & 7) + ((lane >> 4) << 3), ks * 2 + ((lane >> 3) & 1));
}

// ------------------------------------------------------------------ device helpers

template <typename T> struct MmaOp;
template <> struct MmaOp<__nv_bfloat16> {
  __device__ static void mma(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  __device__ static float round(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }
  __device__ static unsigned pack(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&h);
  }
};
template <> struct MmaOp<__half> {
  __device__ static void mma(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  __device__ static float round(float v) { return __half2float(__float2half_rn(v)); }
  __device__ static unsigned pack(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&h);
  }
};

__device__ __forceinline__ unsigned smem_u32(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}
// 16-byte cp.async; src_bytes 0 writes 16 zero bytes (the source is not read).
__device__ __forceinline__ void cp_async_ca16(unsigned dst, const void* src, int src_bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_cg16(unsigned dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

template <int BM, int BN, int WM, int WN, int STAGES>
struct TileCfg {
  static constexpr int WARPS_M = BM / WM, WARPS_N = BN / WN, WARPS = WARPS_M * WARPS_N;
  static constexpr int THREADS = WARPS * 32;
  static constexpr int MI = WM / 16, NI = WN / 8;
  static constexpr int A_ROWS_PER_THREAD = BM * 4 / THREADS;  // 16-byte chunks: 4 per row
  static constexpr int A_STAGE = BM * 64, B_STAGE = BN * 64;  // bytes
  static constexpr int PIPE_BYTES = STAGES * (A_STAGE + B_STAGE);
  static constexpr int OUT_LD = BN + 8;  // staged output row, elements (16-byte aligned, no conflicts)
  static constexpr int OUT_BYTES = BM * OUT_LD * 2;
  static constexpr int MAIN_BYTES = PIPE_BYTES > OUT_BYTES ? PIPE_BYTES : OUT_BYTES;
  static constexpr int RED_BYTES = (WARPS_M + 1) * BN * 4;  // per-warp column sums + the means
  static constexpr int SMEM_BYTES = MAIN_BYTES + RED_BYTES;
  static_assert(WM % 16 == 0 && WN % 16 == 0, "warp tile: m16 blocks, n16 ldmatrix pairs");
  static_assert(BM % WM == 0 && BN % WN == 0, "warp grid");
  static_assert((BM * 4) % THREADS == 0, "A loader: whole rows per thread");
  static_assert(THREADS % 4 == 0, "A loader: a thread keeps one chunk column");
};

// grid: x = (sample, M tile) * (Cout / BN) with the N tile fastest (neighbours share the A rows),
//       block = THREADS, dynamic shared memory = SMEM_BYTES.
template <typename T, int KD, int KH, int KW, int BM, int BN, int WM, int WN, int STAGES, int MIN_BLOCKS>
__global__ void __launch_bounds__(TileCfg<BM, BN, WM, WN, STAGES>::THREADS, MIN_BLOCKS)
    igemm_conv_stats(const T* __restrict__ x, const T* __restrict__ w, const float* __restrict__ bias,
                     T* __restrict__ y, float2* __restrict__ partials, ConvParams p) {
  using C = TileCfg<BM, BN, WM, WN, STAGES>;
  constexpr int TAPS = KD * KH * KW;
  extern __shared__ __align__(128) unsigned char smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int warp_m = warp / C::WARPS_N, warp_n = warp % C::WARPS_N;
  const int n_tiles = p.Cout / BN;
  const int nt = blockIdx.x % n_tiles;
  const int mt_global = blockIdx.x / n_tiles;
  const int n = mt_global / p.tiles_per_sample, mt = mt_global % p.tiles_per_sample;
  const int m0 = mt * BM, n0 = nt * BN;
  const T* xs = x + (long long)n * p.P * p.Cin;

  // ---- A loader state: this thread copies chunk column (tid % 4) of rows tid / 4 + i * THREADS / 4.
  const int a_col = tid & 3;
  int a_off[C::A_ROWS_PER_THREAD];
  unsigned a_mask[C::A_ROWS_PER_THREAD];
#pragma unroll
  for (int i = 0; i < C::A_ROWS_PER_THREAD; ++i)
    row_setup<KD, KH, KW>(m0 + (tid >> 2) + i * (C::THREADS / 4), p, a_off[i], a_mask[i]);
  KWalk kw(a_col, p.Cin);  // this thread's chunk in the next stage to load

  const unsigned s_base = smem_u32(smem);
  auto load_stage = [&](int stage, int kt) {
    const unsigned sa = s_base + stage * (C::A_STAGE + C::B_STAGE);
    const unsigned sb = sa + C::A_STAGE;
    const bool k_ok = kw.k < p.K && kw.tap < TAPS;
    const int delta = k_ok ? tap_delta<KD, KH, KW>(kw.tap, p) + kw.ci : 0;
#pragma unroll
    for (int i = 0; i < C::A_ROWS_PER_THREAD; ++i) {
      const int row = (tid >> 2) + i * (C::THREADS / 4);
      const bool ok = k_ok && ((a_mask[i] >> kw.tap) & 1u);
      const T* src = ok ? xs + a_off[i] + delta : x;
      cp_async_ca16(sa + swz(row, a_col), src, ok ? 16 : 0);
    }
    for (int q = tid; q < BN * 4; q += C::THREADS) {
      const int row = q >> 2, col = q & 3;
      cp_async_cg16(sb + swz(row, col), w + (long long)(n0 + row) * p.Kp + kt * BK + col * 8);
    }
    kw.next(p.Cin);
  };

  float acc[C::MI][C::NI][4];
#pragma unroll
  for (int i = 0; i < C::MI; ++i)
#pragma unroll
    for (int j = 0; j < C::NI; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

  const int KT = p.Kp / BK;
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < KT) load_stage(s, s);
    cp_async_commit();
  }


  for (int kt = 0; kt < KT; ++kt) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();  // stage kt is visible to all; stage (kt - 1) % STAGES is free to refill
    if (kt + STAGES - 1 < KT) load_stage((kt + STAGES - 1) % STAGES, kt + STAGES - 1);
    cp_async_commit();
    const unsigned sa = s_base + (kt % STAGES) * (C::A_STAGE + C::B_STAGE);
    const unsigned sb = sa + C::A_STAGE;
#pragma unroll
    for (int ks = 0; ks < BK / 16; ++ks) {
      // all A fragments of the warp, then B one n16 pair at a time (fewer live registers)
      unsigned af[C::MI][4];
#pragma unroll
      for (int i = 0; i < C::MI; ++i) ldmatrix_x4(af[i], sa + a_frag_addr(warp_m * WM + i * 16, lane, ks));
#pragma unroll
      for (int j = 0; j < C::NI / 2; ++j) {
        unsigned b[4];  // b[0], b[1]: n block 2j; b[2], b[3]: n block 2j + 1
        ldmatrix_x4(b, sb + b_frag_addr(warp_n * WN + j * 16, lane, ks));
#pragma unroll
        for (int i = 0; i < C::MI; ++i) {
          MmaOp<T>::mma(acc[i][2 * j], af[i], b[0], b[1]);
          MmaOp<T>::mma(acc[i][2 * j + 1], af[i], b[2], b[3]);
        }
      }
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // the pipeline's shared memory is reused below

  // ---- epilogue. Fragment (i, j, e): row warp_m*WM + i*16 + g + 8*(e >> 1), column
  //      warp_n*WN + j*8 + 2*t4 + (e & 1).
  const int g = lane >> 2, t4 = lane & 3;
  const int valid_rows = min(BM, p.P - m0);
  T* so = reinterpret_cast<T*>(smem);
  float* red = reinterpret_cast<float*>(smem + C::MAIN_BYTES);  // [WARPS_M][BN]
  float* mean_s = red + C::WARPS_M * BN;                         // [BN]
#pragma unroll
  for (int j = 0; j < C::NI; ++j) {
    const int c = warp_n * WN + j * 8 + 2 * t4;
    const float b0 = __ldg(bias + n0 + c), b1 = __ldg(bias + n0 + c + 1);
#pragma unroll
    for (int i = 0; i < C::MI; ++i) {
      const int r = warp_m * WM + i * 16 + g;
      acc[i][j][0] = MmaOp<T>::round(acc[i][j][0] + b0);
      acc[i][j][1] = MmaOp<T>::round(acc[i][j][1] + b1);
      acc[i][j][2] = MmaOp<T>::round(acc[i][j][2] + b0);
      acc[i][j][3] = MmaOp<T>::round(acc[i][j][3] + b1);
      *reinterpret_cast<unsigned*>(so + r * C::OUT_LD + c) = MmaOp<T>::pack(acc[i][j][0], acc[i][j][1]);
      *reinterpret_cast<unsigned*>(so + (r + 8) * C::OUT_LD + c) = MmaOp<T>::pack(acc[i][j][2], acc[i][j][3]);
    }
  }
  bool row_ok[C::MI][2];
#pragma unroll
  for (int i = 0; i < C::MI; ++i)
#pragma unroll
    for (int h = 0; h < 2; ++h) row_ok[i][h] = warp_m * WM + i * 16 + g + 8 * h < valid_rows;

  // pass 1: column sums -> means
#pragma unroll
  for (int j = 0; j < C::NI; ++j)
#pragma unroll
    for (int odd = 0; odd < 2; ++odd) {
      float s = 0.0f;
#pragma unroll
      for (int i = 0; i < C::MI; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) s += row_ok[i][h] ? acc[i][j][2 * h + odd] : 0.0f;
      s += __shfl_xor_sync(0xffffffffu, s, 4);
      s += __shfl_xor_sync(0xffffffffu, s, 8);
      s += __shfl_xor_sync(0xffffffffu, s, 16);
      if (g == 0) red[warp_m * BN + warp_n * WN + j * 8 + 2 * t4 + odd] = s;
    }
  __syncthreads();  // also: the staged output tile is complete
  for (int c = tid; c < BN; c += C::THREADS) {
    float s = 0.0f;
    for (int wm = 0; wm < C::WARPS_M; ++wm) s += red[wm * BN + c];
    mean_s[c] = s / (float)valid_rows;
  }
  // the output tile, stored once: 16-byte chunks, rows of BN contiguous channels
  {
    constexpr int CPR = BN / 8;  // chunks per row
    T* yt = y + ((long long)n * p.P + m0) * p.Cout + n0;
    for (int q = tid; q < BM * CPR; q += C::THREADS) {
      const int r = q / CPR, ch = q % CPR;
      if (r < valid_rows)
        *reinterpret_cast<uint4*>(yt + (long long)r * p.Cout + ch * 8) =
            *reinterpret_cast<const uint4*>(so + r * C::OUT_LD + ch * 8);
    }
  }
  __syncthreads();  // means ready; red may be overwritten
  // pass 2: sums of squared deviations from the tile's mean
#pragma unroll
  for (int j = 0; j < C::NI; ++j)
#pragma unroll
    for (int odd = 0; odd < 2; ++odd) {
      const int c = warp_n * WN + j * 8 + 2 * t4 + odd;
      const float mu = mean_s[c];
      float s = 0.0f;
#pragma unroll
      for (int i = 0; i < C::MI; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const float d = acc[i][j][2 * h + odd] - mu;
          s += row_ok[i][h] ? d * d : 0.0f;
        }
      s += __shfl_xor_sync(0xffffffffu, s, 4);
      s += __shfl_xor_sync(0xffffffffu, s, 8);
      s += __shfl_xor_sync(0xffffffffu, s, 16);
      if (g == 0) red[warp_m * BN + c] = s;
    }
  __syncthreads();
  for (int c = tid; c < BN; c += C::THREADS) {
    float s = 0.0f;
    for (int wm = 0; wm < C::WARPS_M; ++wm) s += red[wm * BN + c];
    partials[((long long)n * p.tiles_per_sample + mt) * p.Cout + n0 + c] = make_float2(mean_s[c], s);
  }
}

// ------------------------------------------------------------------ reference (naive, GPU)
// One thread per output element, PyTorch layouts (input NCDHW, weight [Cout][Cin][kd][kh][kw],
// unpadded Cin), fp32 accumulation, output NCDHW fp32 with the bias added (not rounded).
template <typename T>
__global__ void reference_conv(const T* __restrict__ x, const T* __restrict__ w, const float* __restrict__ bias,
                               float* __restrict__ out, int N, int Cin, int Cout, int D, int H, int W, int KD,
                               int KH, int KW) {
  const int P = D * H * W;
  const int m = blockIdx.x * blockDim.x + threadIdx.x;
  const int co = blockIdx.y % Cout, n = blockIdx.y / Cout;
  if (m >= P) return;
  const int ow = m % W, oh = (m / W) % H, od = m / (W * H);
  float s = 0.0f;
  for (int ci = 0; ci < Cin; ++ci) {
    const T* xc = x + ((long long)n * Cin + ci) * P;
    const T* wc = w + ((long long)co * Cin + ci) * KD * KH * KW;
    for (int kd = 0; kd < KD; ++kd) {
      const int id = od + kd - KD / 2;
      if (id < 0 || id >= D) continue;
      for (int kh = 0; kh < KH; ++kh) {
        const int ih = oh + kh - KH / 2;
        if (ih < 0 || ih >= H) continue;
        for (int kw = 0; kw < KW; ++kw) {
          const int iw = ow + kw - KW / 2;
          if (iw < 0 || iw >= W) continue;
          s += (float)xc[((long long)id * H + ih) * W + iw] * (float)wc[(kd * KH + kh) * KW + kw];
        }
      }
    }
  }
  out[((long long)n * Cout + co) * P + m] = s + bias[co];
}

// ------------------------------------------------------------------ host

// float <-> storage type on the host (round to nearest even), without device intrinsics
static uint16_t f2bf(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}
static float bf2f(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
template <typename T> struct HostT;
template <> struct HostT<__nv_bfloat16> {
  static const char* name() { return "bf16"; }
  static uint16_t from(float f) { return f2bf(f); }
  static float to(uint16_t h) { return bf2f(h); }
};
template <> struct HostT<__half> {
  static const char* name() { return "f16"; }
  static uint16_t from(float f) {
    __half h = __float2half_rn(f);  // host-callable in cuda_fp16.h
    uint16_t b;
    std::memcpy(&b, &h, 2);
    return b;
  }
  static float to(uint16_t b) {
    __half h;
    std::memcpy(&h, &b, 2);
    return __half2float(h);
  }
};

struct Shape {
  const char* name;
  int N, Cin_real, Cin, Cout, D, H, W;
  int KD, KH, KW;
  double cudnn_bf16_ms;  // measured by the lead (issue 10), conv alone; < 0: not measured
};

// Pack PyTorch-layout tensors for the kernel: input NCDHW -> N D H W Cin (zero channels past
// Cin_real); weight [Cout][Cin_real][kd][kh][kw] -> [Cout][Kp] with k = tap * Cin + ci (zeros past K).
static void pack_input(const std::vector<uint16_t>& x, const Shape& s, std::vector<uint16_t>& out) {
  const long long P = (long long)s.D * s.H * s.W;
  out.assign((size_t)s.N * P * s.Cin, 0);
  for (int n = 0; n < s.N; ++n)
    for (int c = 0; c < s.Cin_real; ++c)
      for (long long m = 0; m < P; ++m) out[((size_t)n * P + m) * s.Cin + c] = x[((size_t)n * s.Cin_real + c) * P + m];
}
static void pack_weight(const std::vector<uint16_t>& w, const Shape& s, int Kp, std::vector<uint16_t>& out) {
  const int taps = s.KD * s.KH * s.KW;
  out.assign((size_t)s.Cout * Kp, 0);
  for (int co = 0; co < s.Cout; ++co)
    for (int ci = 0; ci < s.Cin_real; ++ci)
      for (int t = 0; t < taps; ++t) out[(size_t)co * Kp + t * s.Cin + ci] = w[((size_t)co * s.Cin_real + ci) * taps + t];
}
static ConvParams make_params(const Shape& s, int BM) {
  ConvParams p;
  p.N = s.N, p.D = s.D, p.H = s.H, p.W = s.W, p.Cin = s.Cin, p.Cout = s.Cout;
  p.K = s.KD * s.KH * s.KW * s.Cin;
  p.Kp = (p.K + BK - 1) / BK * BK;
  p.P = s.D * s.H * s.W;
  p.tiles_per_sample = (p.P + BM - 1) / BM;
  return p;
}

// ---- CPU self-test: the implicit GEMM computed with the kernel's own index functions (row_setup,
// tap_delta, the chunk walk of the loader, the packed layouts) against a direct conv in double.
template <int KD, int KH, int KW>
static int selftest_shape(const Shape& s, int BM) {
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> U(-1.f, 1.f);
  const ConvParams p = make_params(s, BM);
  const int taps = KD * KH * KW;
  std::vector<uint16_t> x((size_t)s.N * s.Cin_real * p.P), w((size_t)s.Cout * s.Cin_real * taps), xp, wp;
  for (auto& v : x) v = f2bf(U(rng));
  for (auto& v : w) v = f2bf(U(rng));
  pack_input(x, s, xp);
  pack_weight(w, s, p.Kp, wp);
  double max_err = 0;
  for (int n = 0; n < s.N; ++n)
    for (int m = 0; m < p.P; ++m) {
      int off;
      unsigned mask;
      row_setup<KD, KH, KW>(m, p, off, mask);
      // the loader's walk: chunk column c of K tile kt covers k = kt*32 + c*8 .. +7
      std::vector<double> a(p.Kp, 0.0);
      for (int col = 0; col < 4; ++col) {
        KWalk kw(col, p.Cin);
        for (int kt = 0; kt < p.Kp / BK; ++kt, kw.next(p.Cin)) {
          const bool ok = kw.k < p.K && kw.tap < taps && ((mask >> kw.tap) & 1u);
          if (ok) {
            const long long e = (long long)n * p.P * p.Cin + off + tap_delta<KD, KH, KW>(kw.tap, p) + kw.ci;
            for (int u = 0; u < 8; ++u) a[kt * BK + col * 8 + u] = bf2f(xp[e + u]);
          }
        }
      }
      const int ow = m % s.W, oh = (m / s.W) % s.H, od = m / (s.W * s.H);
      for (int co = 0; co < s.Cout; ++co) {
        double g = 0, ref = 0;
        for (int k = 0; k < p.Kp; ++k) g += a[k] * bf2f(wp[(size_t)co * p.Kp + k]);
        for (int ci = 0; ci < s.Cin_real; ++ci)
          for (int kd = 0; kd < KD; ++kd)
            for (int kh = 0; kh < KH; ++kh)
              for (int kw = 0; kw < KW; ++kw) {
                const int id = od + kd - KD / 2, ih = oh + kh - KH / 2, iw = ow + kw - KW / 2;
                if (id < 0 || id >= s.D || ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
                ref += (double)bf2f(x[(((size_t)n * s.Cin_real + ci) * s.D + id) * s.H * s.W + (size_t)ih * s.W + iw]) *
                       bf2f(w[(((size_t)co * s.Cin_real + ci) * KD + kd) * KH * KW + kh * KW + kw]);
              }
        max_err = std::max(max_err, std::fabs(g - ref));
      }
    }
  // swizzle: a bijection of the 4 chunks of each row, and the 8 rows an ldmatrix phase reads
  // (rows r0..r0+7, one logical chunk) land in 8 different 16-byte bank groups
  bool swz_ok = true;
  for (int r0 = 0; r0 < 64; r0 += 8)
    for (int c = 0; c < 4; ++c) {
      unsigned groups = 0;
      for (int r = r0; r < r0 + 8; ++r) groups |= 1u << ((swz(r, c) >> 4) & 7);
      swz_ok = swz_ok && groups == 0xffu;
    }
  for (int r = 0; r < 64; ++r) {
    unsigned seen = 0;
    for (int c = 0; c < 4; ++c) seen |= 1u << ((swz(r, c) - r * 64) >> 4);
    swz_ok = swz_ok && seen == 0xfu;
  }
  const bool ok = max_err < 1e-9 && swz_ok;
  std::printf("selftest %-34s K=%d Kp=%d max|gemm-direct|=%.3g swizzle %s -> %s\n", s.name, p.K, p.Kp, max_err,
              swz_ok ? "ok" : "BAD", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}

// ---- CPU self-test: one stage's tile product as the kernel computes it, emulated: the loader's
// swizzled 16-byte writes, ldmatrix.x4 (lane 8q + r gives the address of row r of matrix q; lane l
// receives the 32-bit pair at columns 2(l%4), 2(l%4)+1 of row l/4 of each matrix q into register q),
// mma.m16n8k16 with the PTX ISA's fragment layouts (g = l/4, t = l%4: a0 (g, 2t..), a1 (g+8, 2t..),
// a2 (g, 2t+8..), a3 (g+8, 2t+8..); b0 (k 2t.., n g), b1 (k 2t+8.., n g); c0 c1 (g, 2t..), c2 c3
// (g+8, 2t..)), and the epilogue's (row, column) of each accumulator; against A * B^T directly.
// Also: the 8 rows of each ldmatrix phase fall in 8 different 16-byte bank groups.
template <int BM, int BN, int WM, int WN>
static int emulate_tile() {
  using C = TileCfg<BM, BN, WM, WN, 1>;
  auto Aval = [](int r, int k) { return (float)((r * 7 + k * 3) % 11 - 5); };
  auto Bval = [](int n, int k) { return (float)((n * 5 + k * 13) % 9 - 4); };
  std::vector<uint16_t> sa(BM * 32), sb(BN * 32);  // one stage, as bytes / 2
  for (int r = 0; r < BM; ++r)
    for (int c = 0; c < 4; ++c)
      for (int u = 0; u < 8; ++u) sa[(swz(r, c) >> 1) + u] = f2bf(Aval(r, c * 8 + u));
  for (int n = 0; n < BN; ++n)
    for (int c = 0; c < 4; ++c)
      for (int u = 0; u < 8; ++u) sb[(swz(n, c) >> 1) + u] = f2bf(Bval(n, c * 8 + u));
  // ldmatrix.x4: reg[l][q] = the two elements at columns 2(l%4).. of row l/4 of matrix q
  auto ldm = [](const std::vector<uint16_t>& sm, const int (&addr)[32], float (&reg)[32][4][2], bool& conflict) {
    for (int q = 0; q < 4; ++q) {
      unsigned groups = 0;
      for (int r = 0; r < 8; ++r) groups |= 1u << ((addr[q * 8 + r] >> 4) & 7);
      if (groups != 0xffu) conflict = true;
      for (int l = 0; l < 32; ++l)
        for (int e = 0; e < 2; ++e) reg[l][q][e] = bf2f(sm[(addr[q * 8 + l / 4] >> 1) + 2 * (l % 4) + e]);
    }
  };
  double max_err = 0;
  bool conflict = false;
  for (int warp = 0; warp < C::WARPS; ++warp) {
    const int warp_m = warp / C::WARPS_N, warp_n = warp % C::WARPS_N;
    static float acc[32][C::MI][C::NI][4];
    std::memset(acc, 0, sizeof acc);
    for (int ks = 0; ks < 2; ++ks)
      for (int i = 0; i < C::MI; ++i)
        for (int j2 = 0; j2 < C::NI / 2; ++j2) {
          int aaddr[32], baddr[32];
          for (int l = 0; l < 32; ++l) {
            aaddr[l] = a_frag_addr(warp_m * WM + i * 16, l, ks);
            baddr[l] = b_frag_addr(warp_n * WN + j2 * 16, l, ks);
          }
          float ar[32][4][2], br[32][4][2];
          ldm(sa, aaddr, ar, conflict);
          ldm(sb, baddr, br, conflict);
          for (int half = 0; half < 2; ++half) {  // n block 2 j2 + half: registers b[2 half], b[2 half + 1]
            // rebuild the 16x16 A and 16x8 B the mma sees, from the lanes' registers
            float A16[16][16], B16[16][8];
            for (int l = 0; l < 32; ++l) {
              const int g = l / 4, t = l % 4;
              for (int e = 0; e < 2; ++e) {
                A16[g][2 * t + e] = ar[l][0][e];
                A16[g + 8][2 * t + e] = ar[l][1][e];
                A16[g][2 * t + 8 + e] = ar[l][2][e];
                A16[g + 8][2 * t + 8 + e] = ar[l][3][e];
                B16[2 * t + e][g] = br[l][2 * half][e];
                B16[2 * t + 8 + e][g] = br[l][2 * half + 1][e];
              }
            }
            for (int l = 0; l < 32; ++l) {
              const int g = l / 4, t = l % 4;
              for (int e = 0; e < 4; ++e) {
                const int row = g + 8 * (e >> 1), col = 2 * t + (e & 1);
                float d = 0;
                for (int k = 0; k < 16; ++k) d += A16[row][k] * B16[k][col];
                acc[l][i][2 * j2 + half][e] += d;
              }
            }
          }
        }
    // the epilogue's mapping of accumulators to tile (row, column)
    for (int l = 0; l < 32; ++l) {
      const int g = l >> 2, t4 = l & 3;
      for (int i = 0; i < C::MI; ++i)
        for (int j = 0; j < C::NI; ++j)
          for (int e = 0; e < 4; ++e) {
            const int r = warp_m * WM + i * 16 + g + 8 * (e >> 1), c = warp_n * WN + j * 8 + 2 * t4 + (e & 1);
            double ref = 0;
            for (int k = 0; k < 32; ++k) ref += (double)Aval(r, k) * Bval(c, k);
            max_err = std::max(max_err, std::fabs(acc[l][i][j][e] - ref));
          }
    }
  }
  const bool ok = max_err == 0 && !conflict;
  std::printf("selftest tile %3dx%-3d warp %2dx%-2d emulated ldmatrix + mma + epilogue map: max err %g, ldmatrix "
              "bank conflicts %s -> %s\n",
              BM, BN, WM, WN, max_err, conflict ? "YES" : "none", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}

static int selftest() {
  int fails = 0;
  fails += selftest_shape<1, 3, 3>({"conv2d N2 C16->8 5x7", 2, 16, 16, 8, 1, 5, 7, 1, 3, 3, -1}, 16);
  fails += selftest_shape<1, 3, 3>({"conv2d N1 C40->8 4x3 (Cin%32!=0)", 1, 40, 40, 8, 1, 4, 3, 1, 3, 3, -1}, 16);
  fails += selftest_shape<3, 3, 3>({"conv3d N2 C3(pad 8)->4 3x4x5", 2, 3, 8, 4, 3, 4, 5, 3, 3, 3, -1}, 16);
  fails += selftest_shape<3, 3, 3>({"conv3d N1 C5(pad 16)->4 2x3x3", 1, 5, 16, 4, 2, 3, 3, 3, 3, 3, -1}, 16);
  fails += selftest_shape<3, 3, 3>({"conv3d N1 C32->4 3x3x4", 1, 32, 32, 4, 3, 3, 4, 3, 3, 3, -1}, 16);
  fails += selftest_shape<1, 1, 3>({"conv1d N2 C16->8 W=19", 2, 16, 16, 8, 1, 1, 19, 1, 1, 3, -1}, 16);
  // every tile config the GPU run uses
  fails += emulate_tile<128, 160, 32, 80>();
  fails += emulate_tile<256, 160, 64, 80>();
  fails += emulate_tile<128, 128, 64, 32>();
  fails += emulate_tile<256, 128, 64, 64>();
  fails += emulate_tile<256, 32, 64, 32>();
  fails += emulate_tile<256, 32, 32, 32>();
  fails += emulate_tile<256, 64, 64, 32>();
  fails += emulate_tile<128, 64, 32, 32>();
  fails += emulate_tile<256, 16, 64, 16>();
  fails += emulate_tile<128, 16, 32, 16>();
  std::printf("selftest: %s\n", fails ? "FAIL" : "PASS");
  return fails ? 1 : 0;
}

// ---- GPU run of one shape with one tile config
static const char* g_only = nullptr;  // run only shapes whose name contains this (argv[2])
static float median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <typename T, int KD, int KH, int KW, int BM, int BN, int WM, int WN, int STAGES, int MIN_BLOCKS>
static bool run_shape(const Shape& s, int reps, void* flush, size_t flush_bytes) {
  if (g_only && !std::strstr(s.name, g_only)) return true;  // filtered out: the second argument
  using C = TileCfg<BM, BN, WM, WN, STAGES>;
  using H = HostT<T>;
  auto kernel = igemm_conv_stats<T, KD, KH, KW, BM, BN, WM, WN, STAGES, MIN_BLOCKS>;
  if (s.Cout % BN != 0 || s.Cin % 8 != 0 || s.KD != KD || s.KH != KH || s.KW != KW ||
      (long long)s.D * s.H * s.W * std::max(s.Cin, s.Cout) >= (1LL << 31)) {  // int offsets within a sample
    std::printf("%-44s %s: config does not fit the shape\n", s.name, H::name());
    return false;
  }
  int dev = 0, smem_optin = 0;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  if (C::SMEM_BYTES > smem_optin) {
    std::printf("%-44s %-4s %3dx%-3d skipped: %d bytes of shared memory, the device allows %d\n", s.name, H::name(),
                BM, BN, C::SMEM_BYTES, smem_optin);
    return true;
  }
  const ConvParams p = make_params(s, BM);
  const int taps = KD * KH * KW;
  const size_t x_elems = (size_t)s.N * s.Cin_real * p.P, y_elems = (size_t)s.N * p.P * s.Cout;
  const size_t n_part = (size_t)s.N * p.tiles_per_sample * s.Cout;

  std::mt19937 rng(20261130u + s.Cout * 7 + s.Cin);
  std::uniform_real_distribution<float> U(-1.f, 1.f);
  const float wscale = 1.0f / std::sqrt((float)(s.Cin_real * taps));  // PyTorch's init range
  std::vector<uint16_t> hx(x_elems), hw((size_t)s.Cout * s.Cin_real * taps), hxp, hwp;
  std::vector<float> hb(s.Cout);
  for (auto& v : hx) v = H::from(U(rng) + 0.25f);  // a DC offset: the statistics must be shifted
  for (auto& v : hw) v = H::from(U(rng) * wscale);
  for (auto& v : hb) v = U(rng) * 0.5f;
  pack_input(hx, s, hxp);
  pack_weight(hw, s, p.Kp, hwp);

  T *dx, *dw, *dxp, *dwp, *dy;
  float *db, *dref;
  float2* dpart;
  CK(cudaMalloc(&dx, x_elems * 2));
  CK(cudaMalloc(&dw, hw.size() * 2));
  CK(cudaMalloc(&dxp, hxp.size() * 2));
  CK(cudaMalloc(&dwp, hwp.size() * 2));
  CK(cudaMalloc(&dy, y_elems * 2));
  CK(cudaMalloc(&db, s.Cout * 4));
  CK(cudaMalloc(&dref, y_elems * 4));
  CK(cudaMalloc(&dpart, n_part * sizeof(float2)));
  CK(cudaMemcpy(dx, hx.data(), x_elems * 2, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dw, hw.data(), hw.size() * 2, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dxp, hxp.data(), hxp.size() * 2, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dwp, hwp.data(), hwp.size() * 2, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(db, hb.data(), s.Cout * 4, cudaMemcpyHostToDevice));
  CK(cudaMemset(dy, 0xff, y_elems * 2));  // poison: NaN in bf16 and f16
  CK(cudaMemset(dpart, 0xff, n_part * sizeof(float2)));

  CK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::SMEM_BYTES));
  const dim3 grid((unsigned)((long long)s.N * p.tiles_per_sample * (s.Cout / BN)));
  int blocks_per_sm = 0;
  CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_per_sm, kernel, C::THREADS, C::SMEM_BYTES));
  kernel<<<grid, C::THREADS, C::SMEM_BYTES>>>(dxp, dwp, db, dy, dpart, p);
  CK(cudaGetLastError());
  reference_conv<T><<<dim3((p.P + 255) / 256, s.N * s.Cout), 256>>>(dx, dw, db, dref, s.N, s.Cin_real, s.Cout, s.D,
                                                                      s.H, s.W, KD, KH, KW);
  CK(cudaGetLastError());
  CK(cudaDeviceSynchronize());

  // conv check: max |y - ref| / max |ref|, NaN fails
  std::vector<uint16_t> hy(y_elems);
  std::vector<float> href(y_elems);
  std::vector<float2> hpart(n_part);
  CK(cudaMemcpy(hy.data(), dy, y_elems * 2, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(href.data(), dref, y_elems * 4, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(hpart.data(), dpart, n_part * sizeof(float2), cudaMemcpyDeviceToHost));
  double max_abs_ref = 0, max_diff = 0;
  bool nan = false;
  for (int n = 0; n < s.N; ++n)
    for (int c = 0; c < s.Cout; ++c)
      for (int m = 0; m < p.P; ++m) {
        const double r = href[((size_t)n * s.Cout + c) * p.P + m];
        const double v = H::to(hy[((size_t)n * p.P + m) * s.Cout + c]);
        if (!(std::fabs(v) < 1e30)) nan = true;
        max_abs_ref = std::max(max_abs_ref, std::fabs(r));
        max_diff = std::max(max_diff, std::fabs(v - r));
      }
  const double rel = max_diff / std::max(max_abs_ref, 1e-30);
  const bool conv_ok = !nan && rel <= 1e-2 && max_abs_ref > 0;

  // statistics check: every (sample, tile, channel) partial against float64 over the kernel's own
  // stored (rounded) output; then the partials merged per (sample, channel) (Chan, in double)
  // against the plane's float64 mean / M2.
  double st_mean_err = 0, st_m2_err = 0, plane_err = 0;
  bool st_nan = false;
  std::vector<double> tm(s.Cout), tq(s.Cout);
  std::vector<double> pm(s.Cout), pq(s.Cout), pc(s.Cout), dm(s.Cout), dq(s.Cout);
  for (int n = 0; n < s.N; ++n) {
    std::fill(pm.begin(), pm.end(), 0.0), std::fill(pq.begin(), pq.end(), 0.0), std::fill(pc.begin(), pc.end(), 0.0);
    std::fill(dm.begin(), dm.end(), 0.0), std::fill(dq.begin(), dq.end(), 0.0);
    for (int t = 0; t < p.tiles_per_sample; ++t) {
      const int r0 = t * BM, cnt = std::min(BM, p.P - r0);
      std::fill(tm.begin(), tm.end(), 0.0), std::fill(tq.begin(), tq.end(), 0.0);
      for (int r = 0; r < cnt; ++r)
        for (int c = 0; c < s.Cout; ++c) tm[c] += H::to(hy[((size_t)n * p.P + r0 + r) * s.Cout + c]);
      for (int c = 0; c < s.Cout; ++c) tm[c] /= cnt;
      for (int r = 0; r < cnt; ++r)
        for (int c = 0; c < s.Cout; ++c) {
          const double d = H::to(hy[((size_t)n * p.P + r0 + r) * s.Cout + c]) - tm[c];
          tq[c] += d * d;
        }
      for (int c = 0; c < s.Cout; ++c) {
        const float2 k = hpart[((size_t)n * p.tiles_per_sample + t) * s.Cout + c];
        if (!(std::fabs(k.x) < 1e30f) || !(std::fabs(k.y) < 1e30f)) st_nan = true;
        const double sd = std::sqrt(tq[c] / cnt);
        st_mean_err = std::max(st_mean_err, std::fabs(k.x - tm[c]) / (std::fabs(tm[c]) + sd + 1e-30));
        st_m2_err = std::max(st_m2_err, std::fabs(k.y - tq[c]) / (tq[c] + 1e-30));
        // Chan merge of the kernel's partial into the plane's running (count, mean, M2)
        const double nb = cnt, na = pc[c], delta = k.x - pm[c];
        pm[c] += delta * nb / (na + nb);
        pq[c] += k.y + delta * delta * na * nb / (na + nb);
        pc[c] = na + nb;
        // the plane directly: sums for the mean (second loop below for M2)
        dm[c] += tm[c] * cnt;
      }
    }
    for (int c = 0; c < s.Cout; ++c) dm[c] /= p.P;
    for (int m = 0; m < p.P; ++m)
      for (int c = 0; c < s.Cout; ++c) {
        const double d = H::to(hy[((size_t)n * p.P + m) * s.Cout + c]) - dm[c];
        dq[c] += d * d;
      }
    for (int c = 0; c < s.Cout; ++c) {
      const double sd = std::sqrt(dq[c] / p.P);
      plane_err = std::max(plane_err, std::fabs(pm[c] - dm[c]) / (std::fabs(dm[c]) + sd + 1e-30));
      plane_err = std::max(plane_err, std::fabs(pq[c] - dq[c]) / (dq[c] + 1e-30));
    }
  }
  const bool stats_ok = !st_nan && st_mean_err <= 1e-4 && st_m2_err <= 1e-4 && plane_err <= 1e-4;

  // timing: L2 flushed before each rep, events around the conv alone, median
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  for (int i = 0; i < 3; ++i) kernel<<<grid, C::THREADS, C::SMEM_BYTES>>>(dxp, dwp, db, dy, dpart, p);
  std::vector<float> ms;
  for (int i = 0; i < reps; ++i) {
    CK(cudaMemsetAsync(flush, i & 0xff, flush_bytes));
    CK(cudaEventRecord(e0));
    kernel<<<grid, C::THREADS, C::SMEM_BYTES>>>(dxp, dwp, db, dy, dpart, p);
    CK(cudaEventRecord(e1));
    CK(cudaEventSynchronize(e1));
    float t;
    CK(cudaEventElapsedTime(&t, e0, e1));
    ms.push_back(t);
  }
  CK(cudaGetLastError());
  const float t = median(ms);
  const double flop = 2.0 * s.N * p.P * s.Cout * (double)s.Cin_real * taps;  // the real conv, not Cin padding
  const double tflops = flop / (t * 1e-3) / 1e12;
  char cud[32];
  if (s.cudnn_bf16_ms > 0)
    std::snprintf(cud, sizeof cud, "%.3f", s.cudnn_bf16_ms);
  else
    std::snprintf(cud, sizeof cud, "-");
  std::printf("%-42s %-4s %3dx%-3d w%dx%d %3dthr %6.1fKB %dblk/SM | %7.4f ms %6.1f TFLOP/s %5.1f%% of 793 | cuDNN bf16 "
              "%5s ms | max rel err %.2e %s | stats tile mean %.1e M2 %.1e plane %.1e %s\n",
              s.name, H::name(), BM, BN, WM, WN, C::THREADS, C::SMEM_BYTES / 1024.0, blocks_per_sm, t, tflops,
              100.0 * tflops / 793.0, cud, rel, conv_ok ? "ok" : "FAIL", st_mean_err, st_m2_err, plane_err,
              stats_ok ? "pass" : "FAIL");
  std::fflush(stdout);

  CK(cudaEventDestroy(e0));
  CK(cudaEventDestroy(e1));
  CK(cudaFree(dx));
  CK(cudaFree(dw));
  CK(cudaFree(dxp));
  CK(cudaFree(dwp));
  CK(cudaFree(dy));
  CK(cudaFree(db));
  CK(cudaFree(dref));
  CK(cudaFree(dpart));
  return conv_ok && stats_ok;
}

// Shapes (NCHW notation; laid out channels-last here). cuDNN bf16 conv alone: issue 10, H200,
// 2026-11-29 (triton do_bench medians). The MONAI stem (1->32, 1.20 ms) is not a v1 shape;
// problem 83's conv was measured in TF32 only (1.92 ms in issue 11), hence "-".
static const Shape kSD = {"SD ResBlock [8,320,64,64] 320->320 3x3", 8, 320, 320, 320, 1, 64, 64, 1, 3, 3, 0.189};
static const Shape kVAE = {"VAE [1,128,256,256] 128->128 3x3", 1, 128, 128, 128, 1, 256, 256, 1, 3, 3, 0.091};
static const Shape kMONAI = {"MONAI3D [2,32,96,96,96] 32->32 3x3x3", 2, 32, 32, 32, 96, 96, 96, 3, 3, 3, 0.813};
static const Shape kAudio = {"audio [16,64,16000] 64->64 k3 (1x3)", 16, 64, 64, 64, 1, 1, 16000, 1, 1, 3, 0.149};
static const Shape kP83 = {"p83 [128,3,16,32,32] 3(pad 8)->16 3x3x3", 128, 3, 8, 16, 16, 32, 32, 3, 3, 3, -1.0};

// Tile configs: <T, KD, KH, KW, BM, BN, WM, WN, STAGES, MIN_BLOCKS>. The first config of each shape
// runs in bf16 and f16; the alternatives (bigger tiles, one CTA per SM) in bf16 only.
template <typename T>
static int run_all(bool alternatives, int reps, void* flush, size_t flush_bytes) {
  int fails = 0;
  fails += !run_shape<T, 1, 3, 3, 128, 160, 32, 80, 4, 1>(kSD, reps, flush, flush_bytes);
  if (alternatives) fails += !run_shape<T, 1, 3, 3, 256, 160, 64, 80, 4, 1>(kSD, reps, flush, flush_bytes);
  fails += !run_shape<T, 1, 3, 3, 128, 128, 64, 32, 4, 2>(kVAE, reps, flush, flush_bytes);
  if (alternatives) fails += !run_shape<T, 1, 3, 3, 256, 128, 64, 64, 4, 1>(kVAE, reps, flush, flush_bytes);
  fails += !run_shape<T, 3, 3, 3, 256, 32, 64, 32, 4, 3>(kMONAI, reps, flush, flush_bytes);
  if (alternatives) fails += !run_shape<T, 3, 3, 3, 256, 32, 32, 32, 4, 2>(kMONAI, reps, flush, flush_bytes);
  fails += !run_shape<T, 1, 1, 3, 256, 64, 64, 32, 4, 2>(kAudio, reps, flush, flush_bytes);
  if (alternatives) fails += !run_shape<T, 1, 1, 3, 128, 64, 32, 32, 4, 2>(kAudio, reps, flush, flush_bytes);
  fails += !run_shape<T, 3, 3, 3, 256, 16, 64, 16, 4, 3>(kP83, reps, flush, flush_bytes);
  if (alternatives) fails += !run_shape<T, 3, 3, 3, 128, 16, 32, 16, 4, 4>(kP83, reps, flush, flush_bytes);
  return fails;
}

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--selftest") return selftest();
  const int reps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 20;
  if (argc > 2) g_only = argv[2];
  if (selftest() != 0) return 1;
  int dev = 0;
  CK(cudaGetDevice(&dev));
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, dev));
  std::printf("device: %s (sm_%d%d, %d SMs), median of %d reps, L2 flushed before each\n", prop.name, prop.major,
              prop.minor, prop.multiProcessorCount, reps);
  const size_t flush_bytes = 256u << 20;
  void* flush;
  CK(cudaMalloc(&flush, flush_bytes));
  int fails = run_all<__nv_bfloat16>(true, reps, flush, flush_bytes);
  fails += run_all<__half>(false, reps, flush, flush_bytes);
  CK(cudaFree(flush));
  std::printf("%s: %d shape/dtype runs failed a check\n", fails ? "FAIL" : "PASS", fails);
  return fails ? 1 : 0;
}
