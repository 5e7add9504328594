// dev/igemm v2: the Hopper version of v1's implicit-GEMM conv (Conv1d/2d/3d, stride 1, padding k/2)
// with the GroupNorm partial statistics in its epilogue.
//
//   GEMM view as in v1: M = output pixels of one sample (tiles never cross a sample), N = Cout,
//   K = taps * Cin in the order (kd, kh, kw, ci) (the packed weights [Cout][Kp], Kp = K rounded up to 64).
//   CTA = 3 warpgroups (384 threads), persistent (grid = #SMs, tiles walked with stride gridDim.x,
//   the N tile fastest):
//     warpgroup 0, the producer (setmaxnreg.dec): per stage, thread 0 loads the BN x 64 weight tile
//       by TMA (2-D tensor map, 128-byte swizzle, mbarrier complete_tx); all 128 threads gather the
//       BM x 64 im2col tile of A with 16-byte cp.async (zero fill at the padding, past the sample and
//       past K), into the same 128-byte-swizzled layout; a thread's copies of stage j are waited for
//       (cp.async.wait_group) LAG = STAGES - 2 stages later, then fence.proxy.async (wgmma reads
//       through the async proxy) and an arrive on the stage's `full` mbarrier (count 128 + 1 for
//       the TMA's expect_tx arrive).
//     warpgroups 1 and 2, the consumers (setmaxnreg.inc): rows [wg * BM/2, (wg+1) * BM/2) of the tile
//       (MW = BM / 128 m64 blocks each), all BN columns: wgmma.mma_async m64nBNk16 with A and B from
//       shared memory (K-major, 128-byte swizzle descriptors), fp32 accumulators in registers; a
//       stage is released (the `empty` mbarrier, one arrive per consumer warp) once the wgmmas of
//       the next stage are issued and wgmma.wait_group 1 says the stage's own are done.
//   Epilogue (consumers, as v1): + bias, rounded to bf16/f16, stored once from registers (4-byte
//   stores; the producer is meanwhile loading the next tile's stages); per (sample, channel, M tile)
//   (mean, M2) from the rounded values in two passes (lane butterfly, then the 8 consumer warps in
//   index order through shared memory): deterministic, no atomics.
//   partials[(n * tiles_per_sample + tile) * Cout + c] = (mean, M2); count = min(BM, P - tile * BM).
//
// Build and run: bash dev/igemm/run_v2.sh   (see dev/igemm/README.md). Needs sm_90a.
//   igemm_v2 [reps [name [gather|tma]]]  CPU self-test; without `name`: the GPU unit checks (one TMA box of
//                       the weights, one 4-D TMA box of an input, one wgmma tile per N on known data),
//                       then every shape whose name contains `name` (SD, VAE, MONAI, audio, p83; all
//                       without it), bf16 (+ f16 for the first config), the A-by-gather configs, the
//                       A-by-TMA configs last (the third argument picks one kind): check against a naive
//                       GPU conv, statistics against float64, a bit-identical rerun, timing (median of
//                       reps, default 20, L2 flushed)
//   igemm_v2 --selftest CPU only
//   igemm_v2 --unit     CPU self-test + GPU unit checks only
//   run_v2.sh runs the unit checks and each (shape, A kind) in its own process, so that a trap (a
//   pipeline hang becomes a trap after 20 s) costs only that process's lines.
#include <cuda.h>
#include <cudaTypedefs.h>
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
#include <type_traits>
#include <vector>

#define CK(call)                                                                              \
  do {                                                                                        \
    cudaError_t e_ = (call);                                                                  \
    if (e_ != cudaSuccess) {                                                                  \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      std::fflush(stdout);                                                                    \
      std::exit(2);                                                                           \
    }                                                                                         \
  } while (0)

constexpr int BK = 64;  // K elements per stage: one 128-byte shared-memory row (the 128B swizzle span)

// ------------------------------------------------------------------ index math (host and device)
// As v1 (row_setup, tap_delta, KWalk), with BK = 64: a stage row has 8 16-byte chunks.

struct ConvParams {
  int N, D, H, W;         // input = output spatial size (stride 1, padding k/2); D = H = 1 allowed
  int Cin;                // channels in the stored layout (a multiple of 8; padded with zeros)
  int Cout;               // a multiple of the tile's BN
  int K, Kp;              // taps * Cin, and K rounded up to BK
  int P;                  // D * H * W
  int tiles_per_sample;   // ceil(P / BM)
};

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

template <int KD, int KH, int KW>
__host__ __device__ inline int tap_delta(int t, const ConvParams& p) {
  const int kd = t / (KH * KW), kh = (t / KW) % KH, kw = t % KW;
  return (((kd - KD / 2) * p.H + (kh - KH / 2)) * p.W + (kw - KW / 2)) * p.Cin;
}

// The loader's walk along K for one 16-byte chunk column (0..7): k = col * 8 + 64 * (stages so far).
struct KWalk {
  int k, tap, ci;
  __host__ __device__ KWalk(int col, int Cin) : k(col * 8), tap(col * 8 / Cin), ci(col * 8 - tap * Cin) {}
  __host__ __device__ void next(int Cin) {
    k += BK;
    ci += BK;
    while (ci >= Cin) ci -= Cin, ++tap;
  }
};

// A by TMA (ATMA configs: 2-D/1-D convs, KD = 1, Cin % 64 == 0, tiles of whole image rows or H = 1):
// a 4-D tiled tensor map over the channels-last input, dims {C, W, H, N}, box {64, BW, BH, 1} with
// BW * BH = BM (BW = W, BH = BM / W when BM >= W; BW = BM, BH = 1 when H = 1). Stage kt of the tile
// starting at output pixel m0 is tap t = 64 kt / Cin, channels ci0 = 64 kt % Cin, and the box starts at
// (ci0, w0 + kw - KW/2, h0 + kh - KH/2, n) with (h0, w0) = (m0 / W, m0 % W): the box's element
// (c, w, h) is the input pixel of output pixel m0 + h W + w (or m0 + w) at tap t; coordinates outside
// the tensor (the padding, past the sample's last row) are zero-filled by TMA. The box lands as BM
// rows of 128 bytes in the 128B swizzle, row = h * BW + w = m - m0: the layout of the cp.async gather.
template <int KH, int KW>
__host__ __device__ inline void atma_coords(int m0, int kt, const ConvParams& p, int n, int (&c)[4]) {
  const int tap = kt * BK / p.Cin, ci0 = kt * BK - tap * p.Cin;
  const int kh = tap / KW, kw = tap % KW;
  c[0] = ci0;
  c[1] = m0 % p.W + kw - KW / 2;
  c[2] = m0 / p.W + kh - KH / 2;
  c[3] = n;
}
// Whether a shape fits the ATMA path with tile height BM.
inline bool atma_fits(const ConvParams& p, int KD, int BM) {
  return KD == 1 && p.Cin % BK == 0 && ((p.H == 1 && BM <= 256) || (BM % p.W == 0 && p.W <= 256 && BM / p.W <= 256));
}

// The 128-byte swizzle (TMA's CU_TENSOR_MAP_SWIZZLE_128B and wgmma's layout type 1): in a 1024-byte
// aligned atom of 8 rows of 128 bytes, 16-byte chunk c of row r sits at chunk c ^ (r % 8).
__host__ __device__ inline int swz128(int row, int chunk) { return row * 128 + ((chunk ^ (row & 7)) << 4); }

// wgmma shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor Format"):
//   bits  0-13: start address >> 4          bits 16-29: leading-dimension byte offset >> 4
//   bits 32-45: stride-dimension byte offset >> 4   bits 49-51: base offset (0: atoms 1024-aligned)
//   bits 62-63: swizzle mode (0 none, 1 128B, 2 64B, 3 32B)
// K-major operand, 128B swizzle: rows of 64 K elements (128 bytes), 8-row groups 1024 bytes apart
// (SBO = 1024); LBO is not used for a K-major swizzled operand whose K extent (16) lies within the
// 128-byte row (set to 1, i.e. 16 bytes); the k16 step ks within the row: start address + 32 * ks.
constexpr uint64_t kDescLBO = 16, kDescSBO = 1024;
__host__ __device__ inline uint64_t gmma_desc(uint32_t smem_addr) {
  return (uint64_t)((smem_addr & 0x3FFFFu) >> 4) | ((kDescLBO >> 4) << 16) | ((kDescSBO >> 4) << 32) | (1ull << 62);
}
// What the hardware reads, as modelled by the CPU self-test: the byte address of element (row, k)
// (k < 16) of the 64 x 16 (A) or N x 16 (B) operand of a descriptor with 128B swizzle: the unswizzled
// address start + (row / 8) * SBO + (row % 8) * 128 + 2k, then address bits [4,7) ^= bits [7,10).
inline uint32_t desc_model_addr(uint64_t desc, int row, int k) {
  const uint32_t start = (uint32_t)(desc & 0x3FFF) << 4;
  const uint32_t sbo = (uint32_t)((desc >> 32) & 0x3FFF) << 4;
  const int mode = (int)(desc >> 62);
  if (mode != 1) return 0xFFFFFFFFu;  // only the 128B mode is modelled
  const uint32_t a = start + (row / 8) * sbo + (row % 8) * 128 + 2 * k;
  return a ^ (((a >> 7) & 7) << 4);
}

// The wgmma accumulator layout (PTX ISA, "Register Fragments and Shared Memory Matrix Layouts",
// wgmma .m64nNk16 D, f32): thread t of the warpgroup, register i: warp w = t / 32, lane l,
// g = l / 4, t4 = l % 4, n8 block j = i / 4, e = i % 4: row 16w + g + 8 (e / 2), column 8j + 2 t4 + e % 2.
__host__ __device__ inline void acc_rc(int t, int i, int& row, int& col) {
  const int w = t >> 5, l = t & 31, g = l >> 2, t4 = l & 3, j = i >> 2, e = i & 3;
  row = 16 * w + g + 8 * (e >> 1);
  col = 8 * j + 2 * t4 + (e & 1);
}

// ------------------------------------------------------------------ device helpers

template <typename T> struct Cvt;
template <> struct Cvt<__nv_bfloat16> {
  __device__ static float round(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }
  __device__ static unsigned pack(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&h);
  }
};
template <> struct Cvt<__half> {
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
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

__device__ __forceinline__ void mbar_init(unsigned bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive(unsigned bar) {
  asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.shared::cta.b64 st, [%0];\n}\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_arrive_expect_tx(unsigned bar, unsigned bytes) {
  asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.expect_tx.shared::cta.b64 st, [%0], %1;\n}\n" ::"r"(bar), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ bool mbar_try_wait(unsigned bar, unsigned parity) {
  unsigned ok;
  asm volatile(
      "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
      : "=r"(ok)
      : "r"(bar), "r"(parity)
      : "memory");
  return ok != 0;
}
// Waits for the phase with the given parity to complete. A hang (a pipeline bug) becomes a trap after
// 20 s (%globaltimer), so that a run reports ("unspecified launch failure" / illegal instruction)
// instead of hanging. No printf here: any call in the kernel serializes its wgmmas (ptxas C7510).
__device__ __forceinline__ unsigned long long globaltimer_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
__device__ __forceinline__ void mbar_wait(unsigned bar, unsigned parity) {
  if (mbar_try_wait(bar, parity)) return;
  const unsigned long long t0 = globaltimer_ns();
  for (unsigned n = 1;; ++n) {
    if (mbar_try_wait(bar, parity)) return;
    if ((n & 1023) == 0 && globaltimer_ns() - t0 > 20000000000ull) __trap();
  }
}
// 2-D TMA tile load into shared memory, completing on an mbarrier (bytes counted by expect_tx).
__device__ __forceinline__ void tma_load_2d(unsigned dst, const CUtensorMap* map, int c0, int c1, unsigned bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
      : "memory");
}
__device__ __forceinline__ void tma_load_4d(unsigned dst, const CUtensorMap* map, const int (&c)[4], unsigned bar) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], "
      "[%6];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c[0]), "r"(c[1]), "r"(c[2]), "r"(c[3]), "r"(bar)
      : "memory");
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Keeps the compiler from moving accumulator reads/writes across the asynchronous wgmma region.
template <int R> __device__ __forceinline__ void fence_regs(float (&d)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
template <int REGS> __device__ __forceinline__ void setmaxnreg_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(REGS));
}
template <int REGS> __device__ __forceinline__ void setmaxnreg_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(REGS));
}
__device__ __forceinline__ void consumer_bar() { asm volatile("bar.sync 1, 256;\n" ::: "memory"); }

// ---- wgmma wrappers (generated by dev/igemm/gen_wgmma.py)
// GEN BEGIN
template <typename T, int N> struct Wgmma;
template <> struct Wgmma<__nv_bfloat16, 16> {
  // D[64 x 16] (+)= A[64 x 16] * B[16 x 16]^T, both K-major in shared memory (descriptors)
  __device__ __forceinline__ static void mma(float (&d)[8], uint64_t da, uint64_t db, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %10, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7}, %8, %9, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
        : "l"(da), "l"(db), "r"(scale_d));
  }
};
template <> struct Wgmma<__nv_bfloat16, 32> {
  // D[64 x 32] (+)= A[64 x 16] * B[32 x 16]^T, both K-major in shared memory (descriptors)
  __device__ __forceinline__ static void mma(float (&d)[16], uint64_t da, uint64_t db, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, %16, %17, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
        : "l"(da), "l"(db), "r"(scale_d));
  }
};
template <> struct Wgmma<__nv_bfloat16, 64> {
  // D[64 x 64] (+)= A[64 x 16] * B[64 x 16]^T, both K-major in shared memory (descriptors)
  __device__ __forceinline__ static void mma(float (&d)[32], uint64_t da, uint64_t db, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(da), "l"(db), "r"(scale_d));
  }
};
template <> struct Wgmma<__nv_bfloat16, 128> {
  // D[64 x 128] (+)= A[64 x 16] * B[128 x 16]^T, both K-major in shared memory (descriptors)
  __device__ __forceinline__ static void mma(float (&d)[64], uint64_t da, uint64_t db, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(da), "l"(db), "r"(scale_d));
  }
};
template <> struct Wgmma<__nv_bfloat16, 160> {
  // D[64 x 160] (+)= A[64 x 16] * B[160 x 16]^T, both K-major in shared memory (descriptors)
  __device__ __forceinline__ static void mma(float (&d)[80], uint64_t da, uint64_t db, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %82, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n160k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79}, %80, %81, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79])
        : "l"(da), "l"(db), "r"(scale_d));
  }
};
template <> struct Wgmma<__half, 16> {
  // D[64 x 16] (+)= A[64 x 16] * B[16 x 16]^T, both K-major in shared memory (descriptors)
  __device__ __forceinline__ static void mma(float (&d)[8], uint64_t da, uint64_t db, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %10, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n16k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7}, %8, %9, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
        : "l"(da), "l"(db), "r"(scale_d));
  }
};
template <> struct Wgmma<__half, 32> {
  // D[64 x 32] (+)= A[64 x 16] * B[32 x 16]^T, both K-major in shared memory (descriptors)
  __device__ __forceinline__ static void mma(float (&d)[16], uint64_t da, uint64_t db, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n32k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, %16, %17, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
        : "l"(da), "l"(db), "r"(scale_d));
  }
};
template <> struct Wgmma<__half, 64> {
  // D[64 x 64] (+)= A[64 x 16] * B[64 x 16]^T, both K-major in shared memory (descriptors)
  __device__ __forceinline__ static void mma(float (&d)[32], uint64_t da, uint64_t db, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(da), "l"(db), "r"(scale_d));
  }
};
template <> struct Wgmma<__half, 128> {
  // D[64 x 128] (+)= A[64 x 16] * B[128 x 16]^T, both K-major in shared memory (descriptors)
  __device__ __forceinline__ static void mma(float (&d)[64], uint64_t da, uint64_t db, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(da), "l"(db), "r"(scale_d));
  }
};
template <> struct Wgmma<__half, 160> {
  // D[64 x 160] (+)= A[64 x 16] * B[160 x 16]^T, both K-major in shared memory (descriptors)
  __device__ __forceinline__ static void mma(float (&d)[80], uint64_t da, uint64_t db, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %82, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n160k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79}, %80, %81, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79])
        : "l"(da), "l"(db), "r"(scale_d));
  }
};
// GEN END

// ------------------------------------------------------------------ the conv kernel

template <int MW, int BN, int STAGES>
struct Cfg {
  static constexpr int BM = 128 * MW;                        // two consumer warpgroups x MW m64 blocks
  static constexpr int THREADS = 384;                        // producer warpgroup + 2 consumer warpgroups
  static constexpr int LAG = STAGES - 2;                     // producer: stages between issue and arrive
  static constexpr int A_STAGE = BM * 128, B_STAGE = BN * 128;  // bytes (1024-aligned: BN % 8 == 0)
  static constexpr int PIPE = STAGES * (A_STAGE + B_STAGE);
  static constexpr int RED_FLOATS = 2 * 8 * BN + BN;          // red1, red2 [8 warps][BN], mean [BN]
  static constexpr int ROWTAB_OFF = PIPE + RED_FLOATS * 4;     // producer's per-row (offset, tap mask) [BM]
  static constexpr int BAR_OFF = ROWTAB_OFF + BM * 8;
  static constexpr int SMEM_BYTES = 1024 + BAR_OFF + 2 * STAGES * 8;  // + alignment slack
  static constexpr int A_ROWS_PER_THREAD = BM / 16;           // 128 producer threads, 8 chunks per row
  static constexpr int ACC = MW * BN / 2;                      // accumulator registers per consumer thread
  // register split (setmaxnreg): 128 * PROD + 256 * CONS <= 65536
  // (the producer keeps its rows' offsets and tap masks in shared memory, not in registers)
  static constexpr int PROD_REGS = 40, CONS_REGS = 232;
  static_assert(BN % 16 == 0 && BN <= 256, "wgmma N");
  static_assert(STAGES >= 3, "LAG >= 1");
  static_assert(128 * PROD_REGS + 256 * CONS_REGS <= 65536, "register split");
};

// grid: persistent, min(#tiles, #SMs) CTAs; tile t = (sample, M tile) * (Cout / BN) + N tile.
// ATMA: A by a 4-D TMA box per stage (amap) instead of the cp.async gather (see atma_coords).
template <typename T, int KD, int KH, int KW, int MW, int BN, int STAGES, bool ATMA>
__global__ void __launch_bounds__(384, 1)
    igemm2_conv_stats(const T* __restrict__ x, const float* __restrict__ bias, T* __restrict__ y,
                      float2* __restrict__ partials, ConvParams p, const __grid_constant__ CUtensorMap wmap,
                      const __grid_constant__ CUtensorMap amap) {
  using C = Cfg<MW, BN, STAGES>;
  constexpr int BM = C::BM;
  constexpr int TAPS = KD * KH * KW;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);  // 1024-aligned
  const unsigned sA = smem_u32(smem), sB = sA + STAGES * C::A_STAGE;
  float* red1 = reinterpret_cast<float*>(smem + C::PIPE);
  float* red2 = red1 + 8 * BN;
  float* mean_s = red2 + 8 * BN;
  int2* rowtab = reinterpret_cast<int2*>(smem + C::ROWTAB_OFF);
  const unsigned bar_full = sA + C::BAR_OFF, bar_empty = bar_full + STAGES * 8;
  const int tid = threadIdx.x;
  const int n_tiles = p.Cout / BN;
  const int num_tiles = p.N * p.tiles_per_sample * n_tiles;
  const int KT = p.Kp / BK;

  if (tid == 0) {
    for (int s = 0; s < STAGES; ++s) {
      // gather: 128 producer arrives + thread 0's expect_tx arrive; ATMA: thread 0's expect_tx arrive
      mbar_init(bar_full + 8 * s, ATMA ? 1 : 128 + 1);
      mbar_init(bar_empty + 8 * s, 8);       // lane 0 of each consumer warp
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(&wmap)) : "memory");
    if (ATMA) asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(&amap)) : "memory");
  }
  __syncthreads();

  if (tid < 128) {
    // ================= producer warpgroup
    setmaxnreg_dec<C::PROD_REGS>();
    if (ATMA) {  // one thread issues both boxes per stage; the stage completes on their bytes
      if (tid == 0) {
        int it = 0;
        for (int tile = blockIdx.x; tile < num_tiles; tile += gridDim.x) {
          const int nt = tile % n_tiles, mtg = tile / n_tiles;
          const int n = mtg / p.tiles_per_sample, mt = mtg % p.tiles_per_sample;
          const int m0 = mt * BM, n0 = nt * BN;
          for (int kt = 0; kt < KT; ++kt, ++it) {
            const int s = it % STAGES;
            mbar_wait(bar_empty + 8 * s, ((it / STAGES) & 1) ^ 1);
            mbar_arrive_expect_tx(bar_full + 8 * s, C::A_STAGE + C::B_STAGE);
            int c[4];
            atma_coords<KH, KW>(m0, kt, p, n, c);
            tma_load_4d(sA + s * C::A_STAGE, &amap, c, bar_full + 8 * s);
            tma_load_2d(sB + s * C::B_STAGE, &wmap, kt * BK, n0, bar_full + 8 * s);
          }
        }
      }
      return;
    }
    const int col = tid & 7, rbase = tid >> 3;
    int it = 0;  // stages issued so far (over all tiles)
    for (int tile = blockIdx.x; tile < num_tiles; tile += gridDim.x) {
      const int nt = tile % n_tiles, mtg = tile / n_tiles;
      const int n = mtg / p.tiles_per_sample, mt = mtg % p.tiles_per_sample;
      const int m0 = mt * BM, n0 = nt * BN;
      const T* xs = x + (long long)n * p.P * p.Cin;
      // this thread's rows rbase + 16 i: (offset, tap mask) into rowtab (only this thread reads them)
#pragma unroll 1
      for (int i = 0; i < C::A_ROWS_PER_THREAD; ++i) {
        int off;
        unsigned mask;
        row_setup<KD, KH, KW>(m0 + rbase + 16 * i, p, off, mask);
        rowtab[rbase + 16 * i] = make_int2(off, (int)mask);
      }
      KWalk kw(col, p.Cin);
      for (int kt = 0; kt < KT; ++kt) {
        const int s = it % STAGES;
        mbar_wait(bar_empty + 8 * s, ((it / STAGES) & 1) ^ 1);
        if (tid == 0) {
          mbar_arrive_expect_tx(bar_full + 8 * s, C::B_STAGE);
          tma_load_2d(sB + s * C::B_STAGE, &wmap, kt * BK, n0, bar_full + 8 * s);
        }
        const unsigned sa = sA + s * C::A_STAGE;
        const bool k_ok = kw.k < p.K && kw.tap < TAPS;
        const int delta = k_ok ? tap_delta<KD, KH, KW>(kw.tap, p) + kw.ci : 0;
#pragma unroll
        for (int i = 0; i < C::A_ROWS_PER_THREAD; ++i) {
          const int2 rt = rowtab[rbase + 16 * i];
          const bool ok = k_ok && (((unsigned)rt.y >> kw.tap) & 1u);
          const T* src = ok ? xs + rt.x + delta : x;
          cp_async_ca16(sa + swz128(rbase + 16 * i, col), src, ok ? 16 : 0);
        }
        cp_async_commit();
        kw.next(p.Cin);
        if (it >= C::LAG) {  // stage it - LAG: this thread's copies done -> visible to wgmma -> arrive
          cp_async_wait<C::LAG>();
          fence_proxy_async();
          mbar_arrive(bar_full + 8 * ((it - C::LAG) % STAGES));
        }
        ++it;
      }
    }
    cp_async_wait<0>();
    fence_proxy_async();
    for (int q = max(0, it - C::LAG); q < it; ++q) mbar_arrive(bar_full + 8 * (q % STAGES));
    return;
  }

  // ================= consumer warpgroups
  setmaxnreg_inc<C::CONS_REGS>();
  const int ctid = tid - 128;        // 0..255
  const int wg = ctid >> 7;          // 0, 1: rows [wg * BM/2, (wg + 1) * BM/2)
  const int cw = ctid >> 5;          // consumer warp 0..7
  const int lane = tid & 31, g = lane >> 2, t4 = lane & 3, wq = cw & 3;
  float acc[MW][BN / 2];
#pragma unroll
  for (int mi = 0; mi < MW; ++mi)
#pragma unroll
    for (int i = 0; i < BN / 2; ++i) acc[mi][i] = 0.0f;
  const uint64_t dA0 = gmma_desc(sA + wg * MW * 64 * 128), dB0 = gmma_desc(sB);
  int it = 0;  // stages consumed so far
  for (int tile = blockIdx.x; tile < num_tiles; tile += gridDim.x) {
    const int nt = tile % n_tiles, mtg = tile / n_tiles;
    const int n = mtg / p.tiles_per_sample, mt = mtg % p.tiles_per_sample;
    const int m0 = mt * BM, n0 = nt * BN;
    for (int kt = 0; kt < KT; ++kt) {
      const int s = it % STAGES;
      mbar_wait(bar_full + 8 * s, (it / STAGES) & 1);
#pragma unroll
      for (int mi = 0; mi < MW; ++mi) fence_regs(acc[mi]);
      wgmma_fence();
#pragma unroll
      for (int ks = 0; ks < BK / 16; ++ks) {
        // descriptor units are 16 bytes: stage s, m64 block mi (8 KB), k16 step ks (32 bytes)
        const uint64_t db = dB0 + (uint64_t)((s * C::B_STAGE + ks * 32) >> 4);
#pragma unroll
        for (int mi = 0; mi < MW; ++mi) {
          const uint64_t da = dA0 + (uint64_t)((s * C::A_STAGE + mi * 8192 + ks * 32) >> 4);
          Wgmma<T, BN>::mma(acc[mi], da, db, (kt | ks) != 0);
        }
      }
      wgmma_commit();
      wgmma_wait<1>();  // the previous stage's wgmmas are done: release it
      if (kt > 0 && lane == 0) mbar_arrive(bar_empty + 8 * ((it + STAGES - 1) % STAGES));
      ++it;
    }
    wgmma_wait<0>();
#pragma unroll
    for (int mi = 0; mi < MW; ++mi) fence_regs(acc[mi]);
    if (lane == 0) mbar_arrive(bar_empty + 8 * ((it + STAGES - 1) % STAGES));

    // ---- epilogue. acc[mi][4j + e]: tile row wg*64*MW + mi*64 + 16*wq + g + 8*(e/2), column 8j + 2*t4 + e%2
    const int valid_rows = min(BM, p.P - m0);
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) {
      const int c = 8 * j + 2 * t4;
      const float b0 = __ldg(bias + n0 + c), b1 = __ldg(bias + n0 + c + 1);
#pragma unroll
      for (int mi = 0; mi < MW; ++mi) {
        acc[mi][4 * j + 0] = Cvt<T>::round(acc[mi][4 * j + 0] + b0);
        acc[mi][4 * j + 1] = Cvt<T>::round(acc[mi][4 * j + 1] + b1);
        acc[mi][4 * j + 2] = Cvt<T>::round(acc[mi][4 * j + 2] + b0);
        acc[mi][4 * j + 3] = Cvt<T>::round(acc[mi][4 * j + 3] + b1);
      }
    }
    bool row_ok[MW][2];
#pragma unroll
    for (int mi = 0; mi < MW; ++mi)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = wg * 64 * MW + mi * 64 + 16 * wq + g + 8 * h;
        row_ok[mi][h] = r < valid_rows;
        if (row_ok[mi][h]) {
          T* yr = y + ((long long)n * p.P + m0 + r) * p.Cout + n0 + 2 * t4;
#pragma unroll
          for (int j = 0; j < BN / 8; ++j)
            *reinterpret_cast<unsigned*>(yr + 8 * j) = Cvt<T>::pack(acc[mi][4 * j + 2 * h], acc[mi][4 * j + 2 * h + 1]);
        }
      }
    // pass 1: column sums -> means
#pragma unroll
    for (int j = 0; j < BN / 8; ++j)
#pragma unroll
      for (int odd = 0; odd < 2; ++odd) {
        float sm = 0.0f;
#pragma unroll
        for (int mi = 0; mi < MW; ++mi)
#pragma unroll
          for (int h = 0; h < 2; ++h) sm += row_ok[mi][h] ? acc[mi][4 * j + 2 * h + odd] : 0.0f;
        sm += __shfl_xor_sync(0xffffffffu, sm, 4);
        sm += __shfl_xor_sync(0xffffffffu, sm, 8);
        sm += __shfl_xor_sync(0xffffffffu, sm, 16);
        if (g == 0) red1[cw * BN + 8 * j + 2 * t4 + odd] = sm;
      }
    consumer_bar();
    for (int c = ctid; c < BN; c += 256) {
      float sm = 0.0f;
      for (int w = 0; w < 8; ++w) sm += red1[w * BN + c];
      mean_s[c] = sm / (float)valid_rows;
    }
    consumer_bar();
    // pass 2: sums of squared deviations from the tile's mean
#pragma unroll
    for (int j = 0; j < BN / 8; ++j)
#pragma unroll
      for (int odd = 0; odd < 2; ++odd) {
        const int c = 8 * j + 2 * t4 + odd;
        const float mu = mean_s[c];
        float sm = 0.0f;
#pragma unroll
        for (int mi = 0; mi < MW; ++mi)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const float d = acc[mi][4 * j + 2 * h + odd] - mu;
            sm += row_ok[mi][h] ? d * d : 0.0f;
          }
        sm += __shfl_xor_sync(0xffffffffu, sm, 4);
        sm += __shfl_xor_sync(0xffffffffu, sm, 8);
        sm += __shfl_xor_sync(0xffffffffu, sm, 16);
        if (g == 0) red2[cw * BN + c] = sm;
      }
    consumer_bar();
    for (int c = ctid; c < BN; c += 256) {
      float sm = 0.0f;
      for (int w = 0; w < 8; ++w) sm += red2[w * BN + c];
      partials[((long long)n * p.tiles_per_sample + mt) * p.Cout + n0 + c] = make_float2(mean_s[c], sm);
    }
    // (next tile: red1 is written after this tile's third barrier, mean_s after the next tile's first,
    //  red2 after the next tile's second: no reader of this tile is still behind)
  }
}

// ------------------------------------------------------------------ GPU unit checks

// One wgmma tile: A [64][64] and B [N][64] (K-major, global) written into shared memory by plain
// stores in the swizzled layout (swz128), then 4 x wgmma m64nNk16 with the kernel's descriptors;
// D written out twice: by the assumed fragment map (acc_rc) into d[64][N], and raw (thread, register)
// into raw[128][N/2] so the host can say which fragment element went wrong.
template <typename T, int N>
__global__ void __launch_bounds__(128) unit_wgmma(const uint16_t* __restrict__ a, const uint16_t* __restrict__ b,
                                                  float* __restrict__ d, float* __restrict__ raw) {
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);
  const unsigned sA = smem_u32(smem), sB = sA + 64 * 128;
  const int tid = threadIdx.x;
  for (int q = tid; q < 64 * 8; q += 128)
    *reinterpret_cast<uint4*>(smem + swz128(q / 8, q % 8)) = *reinterpret_cast<const uint4*>(a + q * 8);
  for (int q = tid; q < N * 8; q += 128)
    *reinterpret_cast<uint4*>(smem + 64 * 128 + swz128(q / 8, q % 8)) = *reinterpret_cast<const uint4*>(b + q * 8);
  fence_proxy_async();
  __syncthreads();
  float acc[N / 2];
#pragma unroll
  for (int i = 0; i < N / 2; ++i) acc[i] = 0.0f;
  fence_regs(acc);
  wgmma_fence();
#pragma unroll
  for (int ks = 0; ks < 4; ++ks) Wgmma<T, N>::mma(acc, gmma_desc(sA + 32 * ks), gmma_desc(sB + 32 * ks), ks != 0);
  wgmma_commit();
  wgmma_wait<0>();
  fence_regs(acc);
#pragma unroll
  for (int i = 0; i < N / 2; ++i) {
    int r, c;
    acc_rc(tid, i, r, c);
    d[r * N + c] = acc[i];
    raw[tid * (N / 2) + i] = acc[i];
  }
}

// One TMA box of the weight tensor map (box {64, BN} at K coordinate k0, row 0), through an mbarrier;
// the shared-memory bytes copied out as they landed.
template <int BN>
__global__ void unit_tma(const __grid_constant__ CUtensorMap wmap, int k0, uint16_t* __restrict__ out) {
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);
  __shared__ __align__(8) unsigned long long bar;
  const unsigned sb = smem_u32(smem), b = smem_u32(&bar);
  if (threadIdx.x == 0) {
    mbar_init(b, 1);
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    mbar_arrive_expect_tx(b, BN * 128);
    tma_load_2d(sb, &wmap, k0, 0, b);
  }
  mbar_wait(b, 0);
  for (int q = threadIdx.x; q < BN * 64; q += blockDim.x) out[q] = reinterpret_cast<const uint16_t*>(smem)[q];
}
// One 4-D TMA box of an input tensor map (the ATMA path) at coordinates c (negative ones included),
// the shared-memory bytes copied out as they landed.
__global__ void unit_tma4(const __grid_constant__ CUtensorMap amap, int c0, int c1, int c2, int c3, int bytes,
                          uint16_t* __restrict__ out) {
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);
  __shared__ __align__(8) unsigned long long bar;
  const unsigned sb = smem_u32(smem), b = smem_u32(&bar);
  if (threadIdx.x == 0) {
    mbar_init(b, 1);
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    const int c[4] = {c0, c1, c2, c3};
    mbar_arrive_expect_tx(b, bytes);
    tma_load_4d(sb, &amap, c, b);
  }
  mbar_wait(b, 0);
  for (int q = threadIdx.x; q < bytes / 2; q += blockDim.x) out[q] = reinterpret_cast<const uint16_t*>(smem)[q];
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
  double v1_bf16_ms, v1_f16_ms;  // v1 on the H200, 2026-11-30 (best config; f16: its one config)
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

// ---- the weight tensor map: [rows][Kp] elements of 2 bytes, box {64 (128 bytes), box_rows}, 128B swizzle
static PFN_cuTensorMapEncodeTiled_v12000 encode_fn() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = nullptr;
  if (!fn) {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q;
    CK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q));
    if (q != cudaDriverEntryPointSuccess || !f) {
      std::printf("cuTensorMapEncodeTiled not found (driver entry point query %d)\n", (int)q);
      std::exit(2);
    }
    fn = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }
  return fn;
}
static CUtensorMap make_wmap(const void* ptr, int rows, int Kp, int box_rows, bool f16) {
  CUtensorMap m;
  const cuuint64_t dims[2] = {(cuuint64_t)Kp, (cuuint64_t)rows};
  const cuuint64_t strides[1] = {(cuuint64_t)Kp * 2};
  const cuuint32_t box[2] = {(cuuint32_t)BK, (cuuint32_t)box_rows};
  const cuuint32_t estr[2] = {1, 1};
  const CUresult r = encode_fn()(&m, f16 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2,
                                 const_cast<void*>(ptr), dims, strides, box, estr, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                 CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                 CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) {
    std::printf("cuTensorMapEncodeTiled failed: %d (rows %d Kp %d box_rows %d)\n", (int)r, rows, Kp, box_rows);
    std::exit(2);
  }
  return m;
}

// ---- the input tensor map of the ATMA configs: channels-last [N][H][W][C] as 4-D {C, W, H, N}, box
// {64, BW, BH, 1} (see atma_coords), 128B swizzle, out-of-bounds elements zero
static CUtensorMap make_amap(const void* ptr, const ConvParams& p, int BM, bool f16) {
  CUtensorMap m;
  const int BW = p.H == 1 ? BM : p.W, BH = p.H == 1 ? 1 : BM / p.W;
  const cuuint64_t dims[4] = {(cuuint64_t)p.Cin, (cuuint64_t)p.W, (cuuint64_t)p.H, (cuuint64_t)p.N};
  const cuuint64_t strides[3] = {(cuuint64_t)p.Cin * 2, (cuuint64_t)p.W * p.Cin * 2, (cuuint64_t)p.H * p.W * p.Cin * 2};
  const cuuint32_t box[4] = {(cuuint32_t)BK, (cuuint32_t)BW, (cuuint32_t)BH, 1};
  const cuuint32_t estr[4] = {1, 1, 1, 1};
  const CUresult r = encode_fn()(&m, f16 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 4,
                                 const_cast<void*>(ptr), dims, strides, box, estr, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                 CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                 CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) {
    std::printf("cuTensorMapEncodeTiled (input) failed: %d (C %d W %d H %d N %d box %d x %d x %d)\n", (int)r, p.Cin, p.W,
                p.H, p.N, BK, BW, BH);
    std::exit(2);
  }
  return m;
}

// ---- CPU self-test 1: the implicit GEMM with the kernel's index functions (row_setup, tap_delta, the
// 8-column chunk walk with BK = 64, the packed layouts) against a direct conv in double (as v1).
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
  double max_err = 0, atma_err = 0;
  const bool atma = atma_fits(p, KD, BM);
  const int BW = p.H == 1 ? BM : p.W;
  for (int n = 0; n < s.N; ++n)
    for (int m = 0; m < p.P; ++m) {
      int off;
      unsigned mask;
      row_setup<KD, KH, KW>(m, p, off, mask);
      std::vector<double> a(p.Kp, 0.0), ab(p.Kp, 0.0);
      for (int col = 0; col < 8; ++col) {
        KWalk kw(col, p.Cin);
        for (int kt = 0; kt < p.Kp / BK; ++kt, kw.next(p.Cin)) {
          const bool ok = kw.k < p.K && kw.tap < taps && ((mask >> kw.tap) & 1u);
          if (ok) {
            const long long e = (long long)n * p.P * p.Cin + off + tap_delta<KD, KH, KW>(kw.tap, p) + kw.ci;
            for (int u = 0; u < 8; ++u) a[kt * BK + col * 8 + u] = bf2f(xp[e + u]);
          }
        }
      }
      if (atma) {  // the A row as the TMA box delivers it: box element (u, r % BW, r / BW) of stage kt
        const int m0 = m / BM * BM, r = m - m0;
        for (int kt = 0; kt < p.Kp / BK; ++kt) {
          int c[4];
          atma_coords<KH, KW>(m0, kt, p, n, c);
          const int w = c[1] + r % BW, h = c[2] + r / BW;
          for (int u = 0; u < BK; ++u)
            if (w >= 0 && w < p.W && h >= 0 && h < p.H)
              ab[kt * BK + u] = bf2f(xp[(((size_t)c[3] * p.H + h) * p.W + w) * p.Cin + c[0] + u]);
        }
        for (int k = 0; k < p.Kp; ++k) atma_err = std::max(atma_err, std::fabs(ab[k] - a[k]));
      }
      const int ow = m % s.W, oh = (m / s.W) % s.H, od = m / (s.W * s.H);
      for (int co = 0; co < s.Cout; ++co) {
        double gg = 0, ref = 0;
        for (int k = 0; k < p.Kp; ++k) gg += a[k] * bf2f(wp[(size_t)co * p.Kp + k]);
        for (int ci = 0; ci < s.Cin_real; ++ci)
          for (int kd = 0; kd < KD; ++kd)
            for (int kh = 0; kh < KH; ++kh)
              for (int kw = 0; kw < KW; ++kw) {
                const int id = od + kd - KD / 2, ih = oh + kh - KH / 2, iw = ow + kw - KW / 2;
                if (id < 0 || id >= s.D || ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
                ref += (double)bf2f(x[(((size_t)n * s.Cin_real + ci) * s.D + id) * s.H * s.W + (size_t)ih * s.W + iw]) *
                       bf2f(w[(((size_t)co * s.Cin_real + ci) * KD + kd) * KH * KW + kh * KW + kw]);
              }
        max_err = std::max(max_err, std::fabs(gg - ref));
      }
    }
  const bool ok = max_err < 1e-9 && atma_err == 0;
  char at[64] = "";
  if (atma) std::snprintf(at, sizeof at, ", A by TMA box (BM %d) vs gather %.3g", BM, atma_err);
  std::printf("selftest %-34s K=%d Kp=%d max|gemm-direct|=%.3g%s -> %s\n", s.name, p.K, p.Kp, max_err, at,
              ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}

// ---- CPU self-test 2: one stage of a tile config as the kernel computes it: the producer's swizzled
// writes (A by cp.async at swz128; B as TMA's 128B swizzle lays a box row n, K chunk c: also swz128),
// the consumers' descriptors exactly as the kernel builds them (dA0 + stage/m64/k16 offsets in 16-byte
// units) read through the descriptor model (desc_model_addr), wgmma m64nNk16 semantics, and the
// epilogue's accumulator -> (row, column) map; against A * B^T. Stage 1 of STAGES, at a 1024-aligned
// base that is not 0, so stage and base offsets are exercised. Also: descriptor fields in range, the
// swizzle a bijection per row, and a k16 step never leaves its 128-byte row.
template <int MW, int BN, int STAGES>
static int emulate_tile() {
  using C = Cfg<MW, BN, STAGES>;
  constexpr int BM = C::BM;
  auto Aval = [](int r, int k) { return (float)((r * 7 + k * 3) % 11 - 5); };
  auto Bval = [](int n, int k) { return (float)((n * 5 + k * 13) % 9 - 4); };
  const uint32_t base = 3 * 1024;  // sA (1024-aligned, as the kernel's aligned smem pointer)
  const uint32_t sA = base, sB = sA + STAGES * C::A_STAGE;
  const int s = 1;
  std::vector<float> mem((base + C::PIPE) / 2 + 64, NAN);  // shared memory as 2-byte cells
  for (int r = 0; r < BM; ++r)
    for (int c = 0; c < 8; ++c)
      for (int u = 0; u < 8; ++u) mem[(sA + s * C::A_STAGE + swz128(r, c)) / 2 + u] = Aval(r, c * 8 + u);
  for (int n = 0; n < BN; ++n)
    for (int c = 0; c < 8; ++c)
      for (int u = 0; u < 8; ++u) mem[(sB + s * C::B_STAGE + swz128(n, c)) / 2 + u] = Bval(n, c * 8 + u);
  bool fields_ok = true, swz_ok = true;
  for (int r = 0; r < 8; ++r) {
    unsigned seen = 0;
    for (int c = 0; c < 8; ++c) seen |= 1u << ((swz128(r, c) - r * 128) >> 4);
    swz_ok = swz_ok && seen == 0xffu;
  }
  double max_err = 0;
  int bad = 0;
  for (int wg = 0; wg < 2; ++wg) {
    const uint64_t dA0 = gmma_desc(sA + wg * MW * 64 * 128), dB0 = gmma_desc(sB);
    std::vector<double> acc((size_t)MW * 128 * (BN / 2), 0.0);  // [mi][thread][reg]
    for (int ks = 0; ks < BK / 16; ++ks) {
      const uint64_t db = dB0 + (uint64_t)((s * C::B_STAGE + ks * 32) >> 4);
      for (int mi = 0; mi < MW; ++mi) {
        const uint64_t da = dA0 + (uint64_t)((s * C::A_STAGE + mi * 8192 + ks * 32) >> 4);
        // start addresses inside row 0 of a 1024-byte atom (base offset 0 is then right), fields in range
        fields_ok = fields_ok && ((da >> 3) & 7) == 0 && ((db >> 3) & 7) == 0;
        fields_ok = fields_ok && ((da >> 14) & 3) == 0 && ((db >> 14) & 3) == 0 && (da >> 62) == 1 && (db >> 62) == 1;
        // D[row][col] += sum_k A(desc a)[row][k] * B(desc b)[col][k]
        for (int t = 0; t < 128; ++t)
          for (int i = 0; i < BN / 2; ++i) {
            int row, col;
            acc_rc(t, i, row, col);
            double d = 0;
            for (int k = 0; k < 16; ++k) {
              const uint32_t aa = desc_model_addr(da, row, k), ab = desc_model_addr(db, col, k);
              if (aa / 2 >= mem.size() || ab / 2 >= mem.size()) {
                fields_ok = false;
                continue;
              }
              d += (double)mem[aa / 2] * mem[ab / 2];
            }
            acc[((size_t)mi * 128 + t) * (BN / 2) + i] += d;
          }
      }
    }
    for (int mi = 0; mi < MW; ++mi)
      for (int t = 0; t < 128; ++t)
        for (int i = 0; i < BN / 2; ++i) {
          int row, col;
          acc_rc(t, i, row, col);
          const int r = wg * 64 * MW + mi * 64 + row;  // the epilogue's tile row
          double ref = 0;
          for (int k = 0; k < BK; ++k) ref += (double)Aval(r, k) * Bval(col, k);
          const double v = acc[((size_t)mi * 128 + t) * (BN / 2) + i];
          const double e = std::isnan(v) ? 1e30 : std::fabs(v - ref);
          if (e > 0 && bad++ < 3)
            std::printf("  tile %dx%d wg %d mi %d thread %d reg %d (row %d col %d): %g, expected %g\n", BM, BN, wg, mi, t,
                        i, r, col, v, ref);
          max_err = std::max(max_err, e);
        }
  }
  const bool ok = max_err == 0 && fields_ok && swz_ok;
  std::printf("selftest tile %3dx%-3d (MW %d, %d stages, %6d B smem) emulated producer layout + descriptors + wgmma + "
              "epilogue map: max err %g, descriptor fields %s, swizzle %s -> %s\n",
              BM, BN, MW, STAGES, C::SMEM_BYTES, max_err, fields_ok ? "ok" : "BAD", swz_ok ? "ok" : "BAD",
              ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}

// ---- GPU unit checks (before the big shapes): one wgmma tile per N, and one TMA box.
template <typename T>
static const char* tname();
template <> const char* tname<__nv_bfloat16>() { return "bf16"; }
template <> const char* tname<__half>() { return "f16"; }

template <typename T, int N>
static int unit_wgmma_check() {
  using H = HostT<T>;
  const char* cases[3] = {"A=I, B[c][k]=k (expect D[r][c]=r: a wrong value names the A row/k read)",
                          "A=I, B[c][k]=c (expect D[r][c]=c: a wrong value names the B row read)",
                          "random integers in [-3,3] (exact)"};
  uint16_t *da, *db;
  float *dd, *draw;
  CK(cudaMalloc(&da, 64 * 64 * 2));
  CK(cudaMalloc(&db, N * 64 * 2));
  CK(cudaMalloc(&dd, 64 * N * 4));
  CK(cudaMalloc(&draw, 64 * N * 4));
  const int smem = 1024 + 64 * 128 + N * 128;
  int fails = 0;
  std::mt19937 rng(7);
  for (int cs = 0; cs < 3; ++cs) {
    std::vector<float> A(64 * 64), B(N * 64);
    for (int r = 0; r < 64; ++r)
      for (int k = 0; k < 64; ++k) A[r * 64 + k] = cs < 2 ? (r == k ? 1.f : 0.f) : (float)((int)(rng() % 7) - 3);
    for (int c = 0; c < N; ++c)
      for (int k = 0; k < 64; ++k) B[c * 64 + k] = cs == 0 ? (float)k : cs == 1 ? (float)c : (float)((int)(rng() % 7) - 3);
    std::vector<uint16_t> ha(64 * 64), hb(N * 64);
    for (size_t i = 0; i < ha.size(); ++i) ha[i] = H::from(A[i]);
    for (size_t i = 0; i < hb.size(); ++i) hb[i] = H::from(B[i]);
    CK(cudaMemcpy(da, ha.data(), ha.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(db, hb.data(), hb.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemset(dd, 0xff, 64 * N * 4));
    unit_wgmma<T, N><<<1, 128, smem>>>(da, db, dd, draw);
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    std::vector<float> hd(64 * N), hraw(64 * N);
    CK(cudaMemcpy(hd.data(), dd, hd.size() * 4, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(hraw.data(), draw, hraw.size() * 4, cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int t = 0; t < 128; ++t)
      for (int i = 0; i < N / 2; ++i) {
        int r, c;
        acc_rc(t, i, r, c);
        double ref = 0;
        for (int k = 0; k < 64; ++k) ref += (double)A[r * 64 + k] * B[c * 64 + k];
        const float got = hraw[t * (N / 2) + i];
        if (!(got == (float)ref)) {
          if (bad < 6)
            std::printf("  unit wgmma m64n%dk16 %s case %d: thread %d (warp %d lane %d) reg %d (n8 block %d, elem %d) "
                        "assumed D[%d][%d]: got %g expected %g\n",
                        N, tname<T>(), cs, t, t / 32, t % 32, i, i / 4, i % 4, r, c, got, ref);
          ++bad;
        }
      }
    std::printf("unit wgmma m64n%-3dk16 %-4s case %d %-72s %s", N, tname<T>(), cs, cases[cs], bad ? "FAIL" : "ok");
    if (bad) std::printf(" (%d of %d wrong)", bad, 64 * N);
    std::printf("\n");
    fails += bad != 0;
  }
  CK(cudaFree(da));
  CK(cudaFree(db));
  CK(cudaFree(dd));
  CK(cudaFree(draw));
  std::fflush(stdout);
  return fails;
}

template <int BN>
static int unit_tma_check() {
  // weight-like tensor [BN][128] of distinct 16-bit patterns v(n, k) = n * 128 + k; box at K = 64
  std::vector<uint16_t> hw(BN * 128);
  for (int n = 0; n < BN; ++n)
    for (int k = 0; k < 128; ++k) hw[n * 128 + k] = (uint16_t)(n * 128 + k);
  uint16_t *dw, *dout;
  CK(cudaMalloc(&dw, hw.size() * 2));
  CK(cudaMalloc(&dout, BN * 64 * 2));
  CK(cudaMemcpy(dw, hw.data(), hw.size() * 2, cudaMemcpyHostToDevice));
  CK(cudaMemset(dout, 0xff, BN * 64 * 2));
  const CUtensorMap m = make_wmap(dw, BN, 128, BN, false);
  unit_tma<BN><<<1, 128, 1024 + BN * 128>>>(m, 64, dout);
  CK(cudaGetLastError());
  CK(cudaDeviceSynchronize());
  std::vector<uint16_t> out(BN * 64);
  CK(cudaMemcpy(out.data(), dout, out.size() * 2, cudaMemcpyDeviceToHost));
  int bad = 0;
  for (int n = 0; n < BN; ++n)
    for (int c = 0; c < 8; ++c)
      for (int u = 0; u < 8; ++u) {
        const int k = 64 + c * 8 + u;
        const uint16_t got = out[swz128(n, c) / 2 + u], want = (uint16_t)(n * 128 + k);
        if (got != want) {
          if (bad < 6)
            std::printf("  unit TMA box %dx64: smem row %d chunk %d (swizzled chunk %d) elem %d holds (n %d, k %d), "
                        "expected (n %d, k %d)\n",
                        BN, n, c, c ^ (n & 7), u, got / 128, got % 128, n, k);
          ++bad;
        }
      }
  std::printf("unit TMA 2-D box {64, %d}, 128B swizzle, at K 64: smem layout %s", BN, bad ? "FAIL" : "ok (= swz128)");
  if (bad) std::printf(" (%d of %d wrong)", bad, BN * 64);
  std::printf("\n");
  std::fflush(stdout);
  CK(cudaFree(dw));
  CK(cudaFree(dout));
  return bad != 0;
}

// The ATMA input box: tensor [N 2][H 6][W 8][C 128] of patterns 1 + linear index (0 = zero fill), box
// {64, 8, 4, 1} (BM 32) at (64, -1, -1, 1) and at (0, 1, 4, 0): rows h*8 + w, out-of-bounds rows zero.
static int unit_tma4_check() {
  ConvParams p{};
  p.N = 2, p.D = 1, p.H = 6, p.W = 8, p.Cin = 128;
  std::vector<uint16_t> hx((size_t)p.N * p.H * p.W * p.Cin);
  for (size_t i = 0; i < hx.size(); ++i) hx[i] = (uint16_t)(1 + i);
  const int BM = 32, bytes = BM * 128;
  uint16_t *dx, *dout;
  CK(cudaMalloc(&dx, hx.size() * 2));
  CK(cudaMalloc(&dout, bytes));
  CK(cudaMemcpy(dx, hx.data(), hx.size() * 2, cudaMemcpyHostToDevice));
  const CUtensorMap m = make_amap(dx, p, BM, false);
  const int coords[2][4] = {{64, -1, -1, 1}, {0, 1, 4, 0}};
  int bad = 0;
  for (int t = 0; t < 2; ++t) {
    const int* c = coords[t];
    CK(cudaMemset(dout, 0xff, bytes));
    unit_tma4<<<1, 128, 1024 + bytes>>>(m, c[0], c[1], c[2], c[3], bytes, dout);
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    std::vector<uint16_t> out(bytes / 2);
    CK(cudaMemcpy(out.data(), dout, bytes, cudaMemcpyDeviceToHost));
    for (int r = 0; r < BM; ++r)
      for (int ch = 0; ch < 8; ++ch)
        for (int u = 0; u < 8; ++u) {
          const int w = c[1] + r % 8, h = c[2] + r / 8, ci = c[0] + ch * 8 + u;
          const bool in = w >= 0 && w < p.W && h >= 0 && h < p.H;
          const uint16_t want = in ? hx[(((size_t)c[3] * p.H + h) * p.W + w) * p.Cin + ci] : 0;
          const uint16_t got = out[swz128(r, ch) / 2 + u];
          if (got != want) {
            if (bad < 6)
              std::printf("  unit TMA 4-D box at (%d,%d,%d,%d): row %d (h %d w %d) chunk %d elem %d: got pattern %u, "
                          "expected %u%s\n",
                          c[0], c[1], c[2], c[3], r, h, w, ch, u, got, want, in ? "" : " (out of bounds: zero)");
            ++bad;
          }
        }
  }
  std::printf("unit TMA 4-D input box {64, 8, 4, 1}, 128B swizzle, negative and past-the-end coordinates: %s\n",
              bad ? "FAIL" : "ok (= swz128 rows h*8+w, zero fill)");
  std::fflush(stdout);
  CK(cudaFree(dx));
  CK(cudaFree(dout));
  return bad != 0;
}

static int unit_checks() {
#ifdef IGEMM_KERNEL_TEST
  return 0;
#endif
  int f = 0;
  f += unit_tma_check<160>();
  f += unit_tma_check<16>();
  f += unit_tma4_check();
  f += unit_wgmma_check<__nv_bfloat16, 16>();
  f += unit_wgmma_check<__nv_bfloat16, 32>();
  f += unit_wgmma_check<__nv_bfloat16, 64>();
  f += unit_wgmma_check<__nv_bfloat16, 128>();
  f += unit_wgmma_check<__nv_bfloat16, 160>();
  f += unit_wgmma_check<__half, 160>();
  f += unit_wgmma_check<__half, 32>();
  std::printf("unit checks: %s\n", f ? "FAIL" : "PASS");
  std::fflush(stdout);
  return f;
}

#ifndef IGEMM_KERNEL_TEST  // (a kernel-only build for register experiments)
// ---- GPU run of one shape with one tile config
static const char* g_only = nullptr;  // run only shapes whose name contains this (argv[2])
static int g_mode = 0;                 // argv[3]: 0 all configs, 1 "gather" (A by cp.async) only, 2 "tma" (A by TMA) only
static float median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <typename T, int KD, int KH, int KW, int MW, int BN, int STAGES, bool ATMA = false>
static bool run_shape(const Shape& s, int reps, void* flush, size_t flush_bytes) {
  if (g_only && !std::strstr(s.name, g_only)) return true;  // filtered out: the second argument
  if ((g_mode == 1 && ATMA) || (g_mode == 2 && !ATMA)) return true;  // filtered out: the third argument
  using C = Cfg<MW, BN, STAGES>;
  constexpr int BM = C::BM;
  using H = HostT<T>;
  auto kernel = igemm2_conv_stats<T, KD, KH, KW, MW, BN, STAGES, ATMA>;
  if (s.Cout % BN != 0 || s.Cin % 8 != 0 || s.KD != KD || s.KH != KH || s.KW != KW ||
      (long long)s.D * s.H * s.W * std::max(s.Cin, s.Cout) >= (1LL << 31)) {
    std::printf("%-44s %s: config does not fit the shape\n", s.name, H::name());
    return false;
  }
  int dev = 0, smem_optin = 0, sms = 0;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  if (C::SMEM_BYTES > smem_optin) {
    std::printf("%-44s %-4s %3dx%-3d skipped: %d bytes of shared memory, the device allows %d\n", s.name, H::name(),
                BM, BN, C::SMEM_BYTES, smem_optin);
    return true;
  }
  const ConvParams p = make_params(s, BM);
  if (ATMA && !atma_fits(p, KD, BM)) {
    std::printf("%-44s %s: the A-by-TMA config does not fit the shape\n", s.name, H::name());
    return false;
  }
  const int taps = KD * KH * KW;
  const size_t x_elems = (size_t)s.N * s.Cin_real * p.P, y_elems = (size_t)s.N * p.P * s.Cout;
  const size_t n_part = (size_t)s.N * p.tiles_per_sample * s.Cout;
  const int num_tiles = s.N * p.tiles_per_sample * (s.Cout / BN);

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
  const CUtensorMap wmap = make_wmap(dwp, s.Cout, p.Kp, BN, std::is_same<T, __half>::value);
  const CUtensorMap amap = ATMA ? make_amap(dxp, p, BM, std::is_same<T, __half>::value) : wmap;

  CK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::SMEM_BYTES));
  const dim3 grid((unsigned)std::min(num_tiles, sms));
  kernel<<<grid, C::THREADS, C::SMEM_BYTES>>>(dxp, db, dy, dpart, p, wmap, amap);
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
  long long first_bad = -1;
  for (int n = 0; n < s.N; ++n)
    for (int c = 0; c < s.Cout; ++c)
      for (int m = 0; m < p.P; ++m) {
        const double r = href[((size_t)n * s.Cout + c) * p.P + m];
        const double v = H::to(hy[((size_t)n * p.P + m) * s.Cout + c]);
        if (!(std::fabs(v) < 1e30)) nan = true;
        max_abs_ref = std::max(max_abs_ref, std::fabs(r));
        const double d = std::fabs(v - r);
        if (!(d <= 0.05) && first_bad < 0) {
          first_bad = 0;
          std::printf("  first bad output: sample %d pixel %d (tile %d row %d) channel %d: %g, reference %g\n", n, m,
                      m / BM, m % BM, c, v, r);
        }
        if (d > max_diff || d != d) max_diff = d != d ? 1e30 : d;
      }
  const double rel = max_diff / std::max(max_abs_ref, 1e-30);
  const bool conv_ok = !nan && rel <= 1e-2 && max_abs_ref > 0;

  // statistics check (as v1): every (sample, tile, channel) partial against float64 over the kernel's
  // stored (rounded) output; the partials merged per (sample, channel) (Chan, in double) against the
  // plane's float64 mean / M2.
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
        const double nb = cnt, na = pc[c], delta = k.x - pm[c];
        pm[c] += delta * nb / (na + nb);
        pq[c] += k.y + delta * delta * na * nb / (na + nb);
        pc[c] = na + nb;
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

  // determinism: a second launch gives bit-identical outputs and partials
  CK(cudaMemset(dy, 0xff, y_elems * 2));
  CK(cudaMemset(dpart, 0xff, n_part * sizeof(float2)));
  kernel<<<grid, C::THREADS, C::SMEM_BYTES>>>(dxp, db, dy, dpart, p, wmap, amap);
  CK(cudaGetLastError());
  CK(cudaDeviceSynchronize());
  std::vector<uint16_t> hy2(y_elems);
  std::vector<float2> hpart2(n_part);
  CK(cudaMemcpy(hy2.data(), dy, y_elems * 2, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(hpart2.data(), dpart, n_part * sizeof(float2), cudaMemcpyDeviceToHost));
  const bool det = std::memcmp(hy.data(), hy2.data(), y_elems * 2) == 0 &&
                   std::memcmp(hpart.data(), hpart2.data(), n_part * sizeof(float2)) == 0;

  // timing: L2 flushed before each rep, events around the conv alone, median
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  for (int i = 0; i < 3; ++i) kernel<<<grid, C::THREADS, C::SMEM_BYTES>>>(dxp, db, dy, dpart, p, wmap, amap);
  std::vector<float> ms;
  for (int i = 0; i < reps; ++i) {
    CK(cudaMemsetAsync(flush, i & 0xff, flush_bytes));
    CK(cudaEventRecord(e0));
    kernel<<<grid, C::THREADS, C::SMEM_BYTES>>>(dxp, db, dy, dpart, p, wmap, amap);
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
  char cud[32], v1s[32];
  if (s.cudnn_bf16_ms > 0)
    std::snprintf(cud, sizeof cud, "%.3f (x%.2f)", s.cudnn_bf16_ms, s.cudnn_bf16_ms / t);
  else
    std::snprintf(cud, sizeof cud, "-");
  const double v1ms = std::is_same<T, __half>::value ? s.v1_f16_ms : s.v1_bf16_ms;
  std::snprintf(v1s, sizeof v1s, "%.4f", v1ms);
  std::printf("%-42s %-4s %3dx%-3d %s %dst %3dthr %6.1fKB grid %3d tiles %5d | %7.4f ms %6.1f TFLOP/s %5.1f%% of 793 | "
              "v1 %s ms (x%.2f) | cuDNN bf16 %s ms | max rel err %.2e %s | stats tile mean %.1e M2 %.1e plane %.1e "
              "%s | rerun bit-identical %s\n",
              s.name, H::name(), BM, BN, ATMA ? "A:TMA   " : "A:gather", STAGES, C::THREADS, C::SMEM_BYTES / 1024.0, grid.x, num_tiles, t, tflops,
              100.0 * tflops / 793.0, v1s, v1ms / t, cud, rel, conv_ok ? "ok" : "FAIL", st_mean_err, st_m2_err,
              plane_err, stats_ok ? "pass" : "FAIL", det ? "yes" : "NO");
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
  return conv_ok && stats_ok && det;
}

// Shapes as v1; cuDNN's bf16 conv alone (issue 10, H200, 2026-11-29); v1 on the H200 (2026-11-30,
// dev/igemm/h200-2026-11-30-v1.txt): the best bf16 config, and f16's one config.
static const Shape kSD = {"SD ResBlock [8,320,64,64] 320->320 3x3", 8, 320, 320, 320, 1, 64, 64, 1, 3, 3, 0.189,
                          0.2309, 0.2996};
static const Shape kVAE = {"VAE [1,128,256,256] 128->128 3x3", 1, 128, 128, 128, 1, 256, 256, 1, 3, 3, 0.091,
                           0.0913, 0.0905};
static const Shape kMONAI = {"MONAI3D [2,32,96,96,96] 32->32 3x3x3", 2, 32, 32, 32, 96, 96, 96, 3, 3, 3, 0.813,
                             0.5978, 0.5979};
static const Shape kAudio = {"audio [16,64,16000] 64->64 k3 (1x3)", 16, 64, 64, 64, 1, 1, 16000, 1, 1, 3, 0.149,
                             0.0546, 0.0544};
static const Shape kP83 = {"p83 [128,3,16,32,32] 3(pad 8)->16 3x3x3", 128, 3, 8, 16, 16, 32, 32, 3, 3, 3, -1.0,
                           0.2596, 0.2591};

// Tile configs: <T, KD, KH, KW, MW, BN, STAGES> (BM = 128 * MW). The first config of each shape runs
// in bf16 and f16; the alternatives in bf16 only. Cheapest-to-check shapes first.
template <typename T>
static int run_all(bool alternatives, int reps, void* flush, size_t flush_bytes) {
  int fails = 0;
  fails += !run_shape<T, 1, 1, 3, 2, 64, 5>(kAudio, reps, flush, flush_bytes);
  if (alternatives) fails += !run_shape<T, 1, 1, 3, 1, 64, 6>(kAudio, reps, flush, flush_bytes);
  fails += !run_shape<T, 1, 3, 3, 2, 160, 4>(kSD, reps, flush, flush_bytes);
  if (alternatives) fails += !run_shape<T, 1, 3, 3, 1, 160, 5>(kSD, reps, flush, flush_bytes);
  fails += !run_shape<T, 1, 3, 3, 2, 128, 4>(kVAE, reps, flush, flush_bytes);
  if (alternatives) fails += !run_shape<T, 1, 3, 3, 1, 128, 6>(kVAE, reps, flush, flush_bytes);
  fails += !run_shape<T, 3, 3, 3, 2, 32, 6>(kMONAI, reps, flush, flush_bytes);
  if (alternatives) fails += !run_shape<T, 3, 3, 3, 1, 32, 8>(kMONAI, reps, flush, flush_bytes);
  fails += !run_shape<T, 3, 3, 3, 2, 16, 6>(kP83, reps, flush, flush_bytes);
  if (alternatives) fails += !run_shape<T, 3, 3, 3, 1, 16, 8>(kP83, reps, flush, flush_bytes);
  return fails;
}

static int selftest() {
  int fails = 0;
  fails += selftest_shape<1, 3, 3>({"conv2d N2 C16->8 5x7", 2, 16, 16, 8, 1, 5, 7, 1, 3, 3, -1, 0, 0}, 256);
  fails += selftest_shape<1, 3, 3>({"conv2d N1 C40->8 4x3 (Cin%64!=0)", 1, 40, 40, 8, 1, 4, 3, 1, 3, 3, -1, 0, 0}, 128);
  fails += selftest_shape<3, 3, 3>({"conv3d N2 C3(pad 8)->4 3x4x5", 2, 3, 8, 4, 3, 4, 5, 3, 3, 3, -1, 0, 0}, 256);
  fails += selftest_shape<3, 3, 3>({"conv3d N1 C5(pad 16)->4 2x3x3", 1, 5, 16, 4, 2, 3, 3, 3, 3, 3, -1, 0, 0}, 256);
  fails += selftest_shape<3, 3, 3>({"conv3d N1 C32->4 3x3x4", 1, 32, 32, 4, 3, 3, 4, 3, 3, 3, -1, 0, 0}, 256);
  fails += selftest_shape<1, 1, 3>({"conv1d N2 C16->8 W=19", 2, 16, 16, 8, 1, 1, 19, 1, 1, 3, -1, 0, 0}, 256);
  fails += selftest_shape<1, 3, 3>({"conv2d N1 C64->8 3x5", 1, 64, 64, 8, 1, 3, 5, 1, 3, 3, -1, 0, 0}, 128);
  // A by TMA box (the ATMA configs' coordinates): whole-row tiles with a partial last one, H = 1, Cin 128
  fails += selftest_shape<1, 3, 3>({"conv2d N2 C64->8 40x8 (TMA A)", 2, 64, 64, 8, 1, 40, 8, 1, 3, 3, -1, 0, 0}, 128);
  fails += selftest_shape<1, 3, 3>({"conv2d N1 C128->8 20x16 (TMA A)", 1, 128, 128, 8, 1, 20, 16, 1, 3, 3, -1, 0, 0}, 128);
  fails += selftest_shape<1, 1, 3>({"conv1d N2 C64->8 W=300 (TMA A)", 2, 64, 64, 8, 1, 1, 300, 1, 1, 3, -1, 0, 0}, 128);
  // every tile config the GPU run uses
  fails += emulate_tile<2, 64, 5>();
  fails += emulate_tile<1, 64, 6>();
  fails += emulate_tile<2, 160, 4>();
  fails += emulate_tile<1, 160, 5>();
  fails += emulate_tile<2, 128, 4>();
  fails += emulate_tile<1, 128, 6>();
  fails += emulate_tile<2, 32, 6>();
  fails += emulate_tile<1, 32, 8>();
  fails += emulate_tile<2, 16, 6>();
  fails += emulate_tile<1, 16, 8>();
  std::printf("selftest: %s\n", fails ? "FAIL" : "PASS");
  std::fflush(stdout);
  return fails ? 1 : 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--selftest") return selftest();
  const bool unit_only = argc > 1 && std::string(argv[1]) == "--unit";
  const int reps = argc > 1 && !unit_only ? std::max(1, std::atoi(argv[1])) : 20;
  if (argc > 2) g_only = argv[2];
  if (argc > 3) g_mode = std::string(argv[3]) == "gather" ? 1 : std::string(argv[3]) == "tma" ? 2 : 0;
  if (selftest() != 0) return 1;
  int dev = 0;
  CK(cudaGetDevice(&dev));
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, dev));
  std::printf("device: %s (sm_%d%d, %d SMs), median of %d reps, L2 flushed before each\n", prop.name, prop.major,
              prop.minor, prop.multiProcessorCount, reps);
  if (prop.major != 9) {
    std::printf("v2 needs sm_90 (wgmma, TMA, setmaxnreg)\n");
    return 1;
  }
  // the unit checks first (unless a shape filter is given); the shapes run even if they fail
  const int unit_fails = g_only && !unit_only ? 0 : unit_checks();
  if (unit_only) return unit_fails ? 1 : 0;
  const size_t flush_bytes = 256u << 20;
  void* flush;
  CK(cudaMalloc(&flush, flush_bytes));
  int fails = run_all<__nv_bfloat16>(true, reps, flush, flush_bytes);
  fails += run_all<__half>(false, reps, flush, flush_bytes);
  // A by TMA (4-D box per stage, no gather): last, so that a failure here costs nothing else
  fails += !run_shape<__nv_bfloat16, 1, 1, 3, 2, 64, 5, true>(kAudio, reps, flush, flush_bytes);
  fails += !run_shape<__nv_bfloat16, 1, 3, 3, 2, 160, 4, true>(kSD, reps, flush, flush_bytes);
  fails += !run_shape<__nv_bfloat16, 1, 3, 3, 1, 160, 5, true>(kSD, reps, flush, flush_bytes);
  fails += !run_shape<__nv_bfloat16, 1, 3, 3, 2, 128, 4, true>(kVAE, reps, flush, flush_bytes);
  fails += !run_shape<__half, 1, 3, 3, 2, 160, 4, true>(kSD, reps, flush, flush_bytes);
  CK(cudaFree(flush));
  std::printf("%s: %d shape/dtype runs failed a check%s\n", fails || unit_fails ? "FAIL" : "PASS", fails,
              unit_fails ? ", and the unit checks failed" : "");
  return fails || unit_fails ? 1 : 0;
}
#endif  // IGEMM_KERNEL_TEST
