// dev: kernels of the general path's v7 and v8 (see dev/general_lean.cpp), appended as text to
// the program the emitter writes for problem 83 + SiLU (so fbc::, fb_finish, fb_dropout_bits,
// fb_mma_tf32, fb_tf32, fb_k_offset and fb_chan_merge are the emitted ones). Specialised on that
// geometry; the static_asserts say which facts of it these kernels rely on.
//
// v7 "lean recompute": the two-pass design of src/ with its overheads cut:
//   - a block owns one sample's contiguous run of tiles (grid = samples x BPS, one wave), so
//     its statistics stay in registers across tiles: per warp and channel, sums of (v - K) and
//     (v - K)^2 with a shift K from the warp's first tile; one partial per (block, warp,
//     channel) instead of a three-barrier reduction per tile;
//   - each thread copies the same window chunks for every tile (no index arithmetic per tile),
//     16-byte cp.async with zero-fill for rows outside the input;
//   - staging stores without branches (positions past the output row go to a junk slot);
//   - the epilogue reads staging as float4, normalises with one fma (a v + b, as PyTorch's
//     GroupNorm kernel), one Philox call per 4 outputs, float4 streaming stores.
// v8 "sample-resident": one persistent cooperative kernel; a wave of S samples' conv outputs is
//   kept in shared memory (R tile slots per block), per-tile statistics go to global memory, a
//   grid barrier, each block merges the statistics of the samples it holds, normalises from
//   shared memory and writes; the conv is computed once.

namespace f7 {
constexpr int IHW = fbc::IH * fbc::IW;
constexpr int CH_STRIDE = fbc::ID * IHW;
constexpr int ROWS = fbc::CIN * fbc::XD * fbc::XH;  // window rows
constexpr int CPR = fbc::IW / 4;                    // 16-byte chunks per window row
constexpr int CHUNKS = ROWS * CPR;
constexpr int RPI = fbc::THREADS / CPR;             // rows per pass of the block
constexpr int CPT = (CHUNKS + fbc::THREADS - 1) / fbc::THREADS;  // chunks per thread
constexpr int WIN = fbc::CIN * fbc::XCP;            // floats per window buffer
constexpr int SRP = fbc::OW, SPP = fbc::TH * fbc::OW, SCP = 500;  // staging pitches (compact rows)
constexpr int STAGE_FLOATS = fbc::COUT * SCP;
constexpr int STAGE = 2 * WIN;                      // first staging slot
constexpr int JUNK_FLOATS = 64;
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
}  // namespace f7

__device__ __forceinline__ void f7_cp16(float* dst, const float* src, bool valid) {
  const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 16 : 0) : "memory");
}

// Starts the copy of tile t's window of sample xn: this thread's chunks (the same ones for every
// tile), rows outside the input zero-filled. Columns IW.. of every row are zeroed once (f7_zero_pads).
__device__ __forceinline__ void f7_issue(float* xs, const float* __restrict__ xn, int t) {
  const int oh0 = (t % fbc::TILES_H) * fbc::TH, od0 = (t / fbc::TILES_H) * fbc::TD;
  const float* base = xn + od0 * f7::IHW + oh0 * fbc::IW + 4 * (threadIdx.x % f7::CPR);
#pragma unroll
  for (int k = 0; k < f7::CPT; ++k) {
    const int row = threadIdx.x / f7::CPR + k * f7::RPI;
    if (f7::CHUNKS % fbc::THREADS == 0 || row < f7::ROWS) {
      const int xh = row % fbc::XH, xd = (row / fbc::XH) % fbc::XD, ci = row / (fbc::XH * fbc::XD);
      const bool in = oh0 + xh < fbc::IH;
      const float* src = base + ci * f7::CH_STRIDE + xd * f7::IHW + xh * fbc::IW;
      f7_cp16(xs + ci * fbc::XCP + xd * fbc::XPP + xh * fbc::XWP + 4 * (threadIdx.x % f7::CPR), in ? src : xn, in);
    }
  }
}

// After the copies landed: rounds this thread's own chunks to tf32 (no barrier needed before).
__device__ __forceinline__ void f7_round(float* xs) {
#pragma unroll
  for (int k = 0; k < f7::CPT; ++k) {
    const int row = threadIdx.x / f7::CPR + k * f7::RPI;
    if (f7::CHUNKS % fbc::THREADS == 0 || row < f7::ROWS) {
      const int xh = row % fbc::XH, xd = (row / fbc::XH) % fbc::XD, ci = row / (fbc::XH * fbc::XD);
      float4* p = reinterpret_cast<float4*>(xs + ci * fbc::XCP + xd * fbc::XPP + xh * fbc::XWP + 4 * (threadIdx.x % f7::CPR));
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
__device__ __forceinline__ void f7_zero_pads(float* smem) {
  constexpr int PADC = fbc::XW - fbc::IW;
  for (int i = threadIdx.x; i < 2 * f7::ROWS * PADC; i += fbc::THREADS) {
    const int b = i / (f7::ROWS * PADC), r = (i / PADC) % f7::ROWS, c = fbc::IW + i % PADC;
    const int xh = r % fbc::XH, xd = (r / fbc::XH) % fbc::XD, ci = r / (fbc::XH * fbc::XD);
    smem[b * f7::WIN + ci * fbc::XCP + xd * fbc::XPP + xh * fbc::XWP + c] = 0.0f;
  }
}

// The B fragments (weights, tf32) and the A-offset table, as the emitted prologue.
#ifndef F7_BSMEM
#define F7_BSMEM 0  // 1: the B fragments in shared memory (frees 44 registers), 0: in registers
#endif
#ifndef F7_MINB_STATS
#define F7_MINB_STATS 2
#endif
#ifndef F7_MINB_OUT
#define F7_MINB_OUT 2
#endif
constexpr int F7_BS_FLOATS = F7_BSMEM ? fbc::KSTEPS * fbc::NT * 32 * 2 : 0;
struct f7_engine {
#if F7_BSMEM
  const uint2* bs;  // [KSTEPS][NT][32 lanes]
#else
  unsigned bf[fbc::KSTEPS][fbc::NT][2];
#endif
  const int2* ao;
  int mbase;
  unsigned m0, m1;  // all ones where the last k-step's column is inside KRED, else 0
};
// ao_s: KSTEPS * 8 ints, then (F7_BSMEM) the B table, 8-byte aligned.
__device__ __forceinline__ void f7_engine_init(f7_engine& e, const float* __restrict__ w, int* ao_s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;
#if F7_BSMEM
  uint2* const bs = reinterpret_cast<uint2*>(ao_s + fbc::KSTEPS * 8);
  for (int i = threadIdx.x; i < fbc::KSTEPS * fbc::NT * 32; i += fbc::THREADS) {
    const int l = i % 32, nt = (i / 32) % fbc::NT, ks = i / (32 * fbc::NT);
    const int c = nt * 8 + (l >> 2), k0 = ks * 8 + (l & 3), k1 = k0 + 4;
    bs[i] = make_uint2(k0 < fbc::KRED ? __float_as_uint(fb_tf32(__ldg(w + c * fbc::KRED + k0))) : 0u,
                       k1 < fbc::KRED ? __float_as_uint(fb_tf32(__ldg(w + c * fbc::KRED + k1))) : 0u);
  }
  e.bs = bs;
#else
#pragma unroll
  for (int ks = 0; ks < fbc::KSTEPS; ++ks)
#pragma unroll
    for (int nt = 0; nt < fbc::NT; ++nt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int k = ks * 8 + t4 + 4 * h, c = nt * 8 + g;
        e.bf[ks][nt][h] = k < fbc::KRED ? __float_as_uint(fb_tf32(__ldg(w + c * fbc::KRED + k))) : 0u;
      }
#endif
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

__device__ __forceinline__ void f7_mma(const f7_engine& e, const float* xs, float (&acc)[fbc::MPW][fbc::NT][4]) {
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
#if F7_BSMEM
    uint2 b[fbc::NT];
#pragma unroll
    for (int nt = 0; nt < fbc::NT; ++nt) b[nt] = e.bs[(ks * fbc::NT + nt) * 32 + (threadIdx.x & 31)];
#endif
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
#if F7_BSMEM
        fb_mma_tf32(acc[j][nt], a0, a1, a2, a3, b[nt].x, b[nt].y);
#else
        fb_mma_tf32(acc[j][nt], a0, a1, a2, a3, e.bf[ks][nt][0], e.bf[ks][nt][1]);
#endif
    }
  }
}

// Is accumulator row (m-tile j, half r) of this lane inside the output row?
__device__ __forceinline__ bool f7_col_ok(int j, int r) {
  const int g = (threadIdx.x & 31) >> 2;
  return (16 * j + 8 * r + 15 < fbc::OW) || (16 * j + 8 * r + g < fbc::OW);
}

// Accumulators to a staging slot: (channel, td, th, ow) at c*SCP + td*SPP + th*SRP + ow; lanes
// whose position is past the row write to a junk area instead (no branch). Rows past the
// output (the last h-tile) land inside the plane and are never read.
__device__ __forceinline__ void f7_stage(float* st, float* junk, const float (&acc)[fbc::MPW][fbc::NT][4]) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;
  float* const row = st + (warp / fbc::TH) * f7::SPP + (warp % fbc::TH) * f7::SRP + g + 2 * t4 * f7::SCP;
#pragma unroll
  for (int j = 0; j < fbc::MPW; ++j)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float* const p = f7_col_ok(j, r) ? row + 16 * j + 8 * r : junk + lane;
      const int pitch = f7_col_ok(j, r) ? f7::SCP : 0;
#pragma unroll
      for (int nt = 0; nt < fbc::NT; ++nt)
#pragma unroll
        for (int odd = 0; odd < 2; ++odd) p[(nt * 8 + odd) * pitch] = acc[j][nt][2 * r + odd];
    }
}

#ifndef F7_UNROLL
#define F7_UNROLL 1  // 4-element steps per lane in flight in the epilogue (1 or 2)
#endif
#ifndef F7_FAST_SILU
#define F7_FAST_SILU 0  // 1: __expf and __fdividef (a measurement of what the exact math costs; not exact)
#endif
__device__ __forceinline__ float f7_value(float v, float a, float b, fb_u32 bits) {
#if F7_FAST_SILU
  const float r0 = fmaf(v, a, b);
  const float r = __fdividef(r0, 1.0f + __expf(-r0));
#else
  const float r = fb_finish(v, a, 0.0f, b);
#endif
  return fb_dropout_apply(r, bits < F7_KEEP, F7_SCALE);
}
__device__ __forceinline__ float4 f7_step(const float* seg, long long q, int j, float a, float b,
                                          unsigned long long seed, unsigned long long offset) {
  const float4 v = *reinterpret_cast<const float4*>(seg + 4 * j);
  const fb_u32x4 bits = fb_dropout_bits(seed, offset, (unsigned long long)q);
  return make_float4(f7_value(v.x, a, b, bits.v[0]), f7_value(v.y, a, b, bits.v[1]), f7_value(v.z, a, b, bits.v[2]),
                     f7_value(v.w, a, b, bits.v[3]));
}
// The output of one (channel, td) segment of a staged tile: L = thv * OW consecutive outputs.
// a, b: y = a * conv + b before the chain (b holds the conv bias, the mean and beta).
__device__ __forceinline__ void f7_segment(const float* seg, float* __restrict__ y, long long q0, int steps, float a,
                                           float b, unsigned long long seed, unsigned long long offset) {
#if F7_UNROLL == 2
  for (int j = threadIdx.x & 31; j < steps; j += 64) {
    const bool two = j + 32 < steps;
    const int j2 = two ? j + 32 : j;
    const float4 o1 = f7_step(seg, q0 + j, j, a, b, seed, offset);
    const float4 o2 = f7_step(seg, q0 + j2, j2, a, b, seed, offset);
    __stcs(reinterpret_cast<float4*>(y) + q0 + j, o1);
    if (two) __stcs(reinterpret_cast<float4*>(y) + q0 + j2, o2);
  }
#else
  for (int j = threadIdx.x & 31; j < steps; j += 32)
    __stcs(reinterpret_cast<float4*>(y) + q0 + j, f7_step(seg, q0 + j, j, a, b, seed, offset));
#endif
}

// Every segment of a staged tile; warp w takes segments w, w + WARPS, ... (segment s = channel
// s / TD, plane s % TD), whose (a, b) it holds in ab[].
__device__ __forceinline__ void f7_tile_out(const float* st, float* __restrict__ y, long long n, int t,
                                            const float2 (&ab)[fbc::COUT * fbc::TD / fbc::WARPS],
                                            unsigned long long seed, unsigned long long offset) {
  const int warp = threadIdx.x >> 5;
  const int oh0 = (t % fbc::TILES_H) * fbc::TH, od0 = (t / fbc::TILES_H) * fbc::TD;
  const int thv = min(fbc::TH, fbc::OH - oh0);
  const int steps = thv * fbc::OW / 4;
#pragma unroll
  for (int i = 0; i < fbc::COUT * fbc::TD / fbc::WARPS; ++i) {
    const int s = warp + i * fbc::WARPS, c = s / fbc::TD, sd = s % fbc::TD;
    const long long F = ((n * fbc::COUT + c) * fbc::OD + od0 + sd) * f7::OHW + (long long)oh0 * fbc::OW;
    f7_segment(st + c * f7::SCP + sd * f7::SPP, y, F >> 2, steps, ab[i].x, ab[i].y, seed, offset);
  }
}

// ---------------------------------------------------------------- v7
// Partial statistics: per (sample, part, warp, channel) float4 (K, sum(v - K), sum((v - K)^2), count).
extern "C" __global__ void __launch_bounds__(256, F7_MINB_STATS) f7_conv_stats(const float* __restrict__ x,
    const float* __restrict__ w, float4* __restrict__ partials, int bps) {
  extern __shared__ __align__(16) float smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2;
  const long long n = blockIdx.x / bps;
  const int part = blockIdx.x % bps;
  const int t0 = part * fbc::TILES / bps, t1 = (part + 1) * fbc::TILES / bps;
  const float* xn = x + n * fbc::IN_SAMPLE;
  f7_engine e;
  f7_engine_init(e, w, reinterpret_cast<int*>(smem + f7::STAGE));
  f7_zero_pads(smem);
  float* cur = smem;
  float* nxt = smem + f7::WIN;
  f7_issue(cur, xn, t0);
  fb_cp_commit();
  float K[fbc::NT][2], s[fbc::NT][2], q[fbc::NT][2];
#pragma unroll
  for (int nt = 0; nt < fbc::NT; ++nt)
#pragma unroll
    for (int odd = 0; odd < 2; ++odd) K[nt][odd] = s[nt][odd] = q[nt][odd] = 0.0f;
  bool have_k = false;
  float cnt = 0.0f;
  float lane_cnt = 0.0f;
#pragma unroll
  for (int j = 0; j < fbc::MPW; ++j)
#pragma unroll
    for (int r = 0; r < 2; ++r) lane_cnt += f7_col_ok(j, r) ? 1.0f : 0.0f;
  for (int t = t0; t < t1; ++t) {
    fb_cp_wait_all();
    f7_round(cur);
    __syncthreads();
    if (t + 1 < t1) f7_issue(nxt, xn, t + 1);
    fb_cp_commit();
    float acc[fbc::MPW][fbc::NT][4];
    f7_mma(e, cur, acc);
    const int oh0 = (t % fbc::TILES_H) * fbc::TH;
    if (oh0 + warp % fbc::TH < fbc::OH) {  // this warp's row is an output row (warp-uniform)
      if (!have_k) {  // the shift: the row's mean, from the first valid row
        have_k = true;
#pragma unroll
        for (int nt = 0; nt < fbc::NT; ++nt)
#pragma unroll
          for (int odd = 0; odd < 2; ++odd) {
            float v = 0.0f;
#pragma unroll
            for (int j = 0; j < fbc::MPW; ++j)
#pragma unroll
              for (int r = 0; r < 2; ++r) v += f7_col_ok(j, r) ? acc[j][nt][2 * r + odd] : 0.0f;
            for (int o = 4; o < 32; o <<= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
            K[nt][odd] = v * (1.0f / fbc::OW);
          }
      }
#pragma unroll
      for (int nt = 0; nt < fbc::NT; ++nt)
#pragma unroll
        for (int odd = 0; odd < 2; ++odd)
#pragma unroll
          for (int j = 0; j < fbc::MPW; ++j)
#pragma unroll
            for (int r = 0; r < 2; ++r) {
              const float d = f7_col_ok(j, r) ? acc[j][nt][2 * r + odd] - K[nt][odd] : 0.0f;
              s[nt][odd] += d;
              q[nt][odd] = fmaf(d, d, q[nt][odd]);
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
      float a = s[nt][odd], b = q[nt][odd];
      for (int o = 4; o < 32; o <<= 1) {
        a += __shfl_xor_sync(0xffffffffu, a, o);
        b += __shfl_xor_sync(0xffffffffu, b, o);
      }
      const int c = nt * 8 + 2 * (lane & 3) + odd;
      if (g == 0)
        partials[((n * bps + part) * fbc::WARPS + warp) * fbc::COUT + c] = make_float4(K[nt][odd], a, b, cnt);
    }
}

// One warp per (sample, group): merges the group's partials in double (lane i takes partials
// i, i + 32, ...; then a butterfly in a fixed order) and writes per (n, c): a = gamma * rstd and
// b = beta + a * (bias - mean), so that the output kernel computes a * conv + b.
extern "C" __global__ void __launch_bounds__(256) f7_finalize(const float4* __restrict__ partials,
    const float* __restrict__ bias, const float* __restrict__ gamma, const float* __restrict__ beta,
    float2* __restrict__ ab, int bps) {
  const int lane = threadIdx.x & 31;
  const long long pair = (long long)blockIdx.x * 8 + (threadIdx.x >> 5);
  if (pair >= fbc::N * F7_GROUPS) return;
  const long long n = pair / F7_GROUPS;
  const int grp = (int)(pair % F7_GROUPS);
  constexpr int CPG = fbc::COUT / F7_GROUPS;
  const int P = bps * fbc::WARPS * CPG;
  double cn = 0.0, mean = 0.0, m2 = 0.0;
  for (int i = lane; i < P; i += 32) {
    const int c = grp * CPG + i % CPG, wp = i / CPG;  // wp = part * WARPS + warp
    const float4 p = partials[(n * bps * fbc::WARPS + wp) * fbc::COUT + c];
    if (p.w == 0.0f) continue;
    const double pn = p.w, ps = p.y;
    const double pm = (double)p.x + ps / pn + (double)__ldg(bias + c);
    const double pm2 = (double)p.z - ps * ps / pn;
    fb_chan_merge(cn, mean, m2, pn, pm, pm2 > 0.0 ? pm2 : 0.0);
  }
  for (int o = 16; o > 0; o >>= 1) {
    const double on = __shfl_xor_sync(0xffffffffu, cn, o), om = __shfl_xor_sync(0xffffffffu, mean, o),
                 om2 = __shfl_xor_sync(0xffffffffu, m2, o);
    fb_chan_merge(cn, mean, m2, on, om, om2);
  }
  const float rstd = 1.0f / sqrtf((float)(m2 / cn + F7_EPS));
  if (lane < CPG) {
    const int c = grp * CPG + lane;
    const float a = __ldg(gamma + c) * rstd;
    ab[n * fbc::COUT + c] = make_float2(a, fmaf(a, __ldg(bias + c) - (float)mean, __ldg(beta + c)));
  }
}

extern "C" __global__ void __launch_bounds__(256, F7_MINB_OUT) f7_conv_output(const float* __restrict__ x,
    const float* __restrict__ w, const float2* __restrict__ abg, float* __restrict__ y, int bps,
    unsigned long long seed, unsigned long long offset) {
  extern __shared__ __align__(16) float smem[];
  const int warp = threadIdx.x >> 5;
  const long long n = blockIdx.x / bps;
  const int part = blockIdx.x % bps;
  const int t0 = part * fbc::TILES / bps, t1 = (part + 1) * fbc::TILES / bps;
  const float* xn = x + n * fbc::IN_SAMPLE;
  float* const st = smem + f7::STAGE;
  float* const junk = st + f7::STAGE_FLOATS;
  f7_engine e;
  f7_engine_init(e, w, reinterpret_cast<int*>(junk + f7::JUNK_FLOATS));
  f7_zero_pads(smem);
  float2 ab[fbc::COUT * fbc::TD / fbc::WARPS];
#pragma unroll
  for (int i = 0; i < fbc::COUT * fbc::TD / fbc::WARPS; ++i) ab[i] = abg[n * fbc::COUT + (warp + i * fbc::WARPS) / fbc::TD];
  float* cur = smem;
  float* nxt = smem + f7::WIN;
  f7_issue(cur, xn, t0);
  fb_cp_commit();
  for (int t = t0; t < t1; ++t) {
    fb_cp_wait_all();
    f7_round(cur);
    __syncthreads();  // window ready; the previous tile's staging has been read
    if (t + 1 < t1) f7_issue(nxt, xn, t + 1);
    fb_cp_commit();
    float acc[fbc::MPW][fbc::NT][4];
    f7_mma(e, cur, acc);
    f7_stage(st, junk, acc);
    __syncthreads();
    f7_tile_out(st, y, n, t, ab, seed, offset);
    float* const done = cur;
    cur = nxt;
    nxt = done;
  }
}

// ---------------------------------------------------------------- v8
// Grid barrier for a cooperative launch: a counter that only grows; wave w waits for (w+1) * grid.
__device__ __forceinline__ void f8_grid_barrier(unsigned* bar, unsigned target) {
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    atomicAdd(bar, 1u);
    unsigned v;
    long long spins = 0;  // a dev kernel must not hang the machine: give up after ~seconds
    do {
      asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(bar) : "memory");
    } while (v < target && ++spins < (1LL << 26));
    if (v < target) atomicOr(bar + 1, 1u);  // reported by the host
  }
  __syncthreads();
}

// A staged tile's per-channel (mean + bias, M2) from the accumulators: sums over the warp's row,
// then over the warps in shared memory (red: [WARPS][COUT] floats x 2 + COUT), as src/'s kernel.
__device__ __forceinline__ void f8_tile_stats(const float (&acc)[fbc::MPW][fbc::NT][4], float* red, int thv,
                                              const float* __restrict__ bias, float2* __restrict__ partials,
                                              long long n, int t) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;
  const bool row_ok = warp % fbc::TH < thv;
  float* const sums = red;
  float* const means = red + fbc::WARPS * fbc::COUT;
  float* const sq = means + fbc::COUT;
#pragma unroll
  for (int nt = 0; nt < fbc::NT; ++nt)
#pragma unroll
    for (int odd = 0; odd < 2; ++odd) {
      float v = 0.0f;
#pragma unroll
      for (int j = 0; j < fbc::MPW; ++j)
#pragma unroll
        for (int r = 0; r < 2; ++r) v += (row_ok && f7_col_ok(j, r)) ? acc[j][nt][2 * r + odd] : 0.0f;
      for (int o = 4; o < 32; o <<= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      if (g == 0) sums[warp * fbc::COUT + nt * 8 + 2 * t4 + odd] = v;
    }
  __syncthreads();
  const int count = (fbc::TD * thv) * fbc::OW;
  if (threadIdx.x < fbc::COUT) {
    float v = 0.0f;
    for (int wi = 0; wi < fbc::WARPS; ++wi) v += sums[wi * fbc::COUT + threadIdx.x];
    means[threadIdx.x] = v / (float)count;
  }
  __syncthreads();
#pragma unroll
  for (int nt = 0; nt < fbc::NT; ++nt)
#pragma unroll
    for (int odd = 0; odd < 2; ++odd) {
      const float mu = means[nt * 8 + 2 * t4 + odd];
      float v = 0.0f;
#pragma unroll
      for (int j = 0; j < fbc::MPW; ++j)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const float d = (row_ok && f7_col_ok(j, r)) ? acc[j][nt][2 * r + odd] - mu : 0.0f;
          v = fmaf(d, d, v);
        }
      for (int o = 4; o < 32; o <<= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      if (g == 0) sq[warp * fbc::COUT + nt * 8 + 2 * t4 + odd] = v;
    }
  __syncthreads();
  if (threadIdx.x < fbc::COUT) {
    float m2 = 0.0f;
    for (int wi = 0; wi < fbc::WARPS; ++wi) m2 += sq[wi * fbc::COUT + threadIdx.x];
    partials[(n * fbc::COUT + threadIdx.x) * fbc::TILES + t] = make_float2(means[threadIdx.x] + __ldg(bias + threadIdx.x), m2);
  }
}

// Per (sample, channel) a and b from a sample's per-tile partials: warp = group (WARPS >= groups).
__device__ __forceinline__ void f8_sample_ab(const float2* __restrict__ partials, long long n,
    const float* __restrict__ bias, const float* __restrict__ gamma, const float* __restrict__ beta, float2* ab_s) {
  const int lane = threadIdx.x & 31, grp = threadIdx.x >> 5;
  constexpr int CPG = fbc::COUT / F7_GROUPS;
  if (grp < F7_GROUPS) {
    double cn = 0.0, mean = 0.0, m2 = 0.0;
    for (int i = lane; i < CPG * fbc::TILES; i += 32) {
      const int c = grp * CPG + i / fbc::TILES, t = i % fbc::TILES;
      const float2 p = __ldcg(partials + (n * fbc::COUT + c) * fbc::TILES + t);
      const int oh0 = (t % fbc::TILES_H) * fbc::TH;
      fb_chan_merge(cn, mean, m2, (double)(fbc::TD * min(fbc::TH, fbc::OH - oh0) * fbc::OW), (double)p.x, (double)p.y);
    }
    for (int o = 16; o > 0; o >>= 1) {
      const double on = __shfl_xor_sync(0xffffffffu, cn, o), om = __shfl_xor_sync(0xffffffffu, mean, o),
                   om2 = __shfl_xor_sync(0xffffffffu, m2, o);
      fb_chan_merge(cn, mean, m2, on, om, om2);
    }
    const float rstd = 1.0f / sqrtf((float)(m2 / cn + F7_EPS));
    if (lane < CPG) {
      const int c = grp * CPG + lane;
      const float a = __ldg(gamma + c) * rstd;
      ab_s[c] = make_float2(a, fmaf(a, __ldg(bias + c) - (float)mean, __ldg(beta + c)));
    }
  }
}

// Wave w holds samples [w S, w S + S): its tiles u = 0 .. S TILES - 1 are split evenly over the
// grid, block b owning [b U / G, (b + 1) U / G) (at most R, each in its own staging slot).
extern "C" __global__ void __launch_bounds__(256, 2) f8_resident(const float* __restrict__ x,
    const float* __restrict__ w, const float* __restrict__ bias, const float* __restrict__ gamma,
    const float* __restrict__ beta, float* __restrict__ y, float2* __restrict__ partials, unsigned* bar,
    unsigned long long seed, unsigned long long offset) {
  extern __shared__ __align__(16) float smem[];
  const int warp = threadIdx.x >> 5;
  const unsigned G = gridDim.x;
  float* const slots = smem + f7::STAGE;                         // R staging slots
  float* const junk = slots + F8_R * f7::STAGE_FLOATS;
  int* const ao_s = reinterpret_cast<int*>(junk + f7::JUNK_FLOATS);
  float* const red = reinterpret_cast<float*>(ao_s + fbc::KSTEPS * 8) + F7_BS_FLOATS;  // tile statistics scratch
  float2* const ab_s = reinterpret_cast<float2*>(red + 2 * fbc::WARPS * fbc::COUT + fbc::COUT + 16);  // [R][COUT]
  f7_engine e;
  f7_engine_init(e, w, ao_s);
  f7_zero_pads(smem);
  constexpr int WAVES = (int)((fbc::N + F8_S - 1) / F8_S);
  auto range = [&](int wave, int& u0, int& u1) {
    const long long ns = min((long long)F8_S, fbc::N - (long long)wave * F8_S);
    const int U = (int)(ns * fbc::TILES);
    u0 = (int)((long long)blockIdx.x * U / G);
    u1 = (int)((long long)(blockIdx.x + 1) * U / G);
  };
  float* cur = smem;
  float* nxt = smem + f7::WIN;
  int u0, u1;
  range(0, u0, u1);
  if (u0 < u1) f7_issue(cur, x + (long long)(u0 / fbc::TILES) * fbc::IN_SAMPLE, u0 % fbc::TILES);
  fb_cp_commit();
  for (int wave = 0; wave < WAVES; ++wave) {
    const long long nbase = (long long)wave * F8_S;
    int nu0, nu1;
    range(wave + 1 < WAVES ? wave + 1 : wave, nu0, nu1);
    for (int u = u0; u < u1; ++u) {
      const long long n = nbase + u / fbc::TILES;
      const int t = u % fbc::TILES;
      fb_cp_wait_all();
      f7_round(cur);
      __syncthreads();
      // The next window: this wave's next tile, or the next wave's first (loaded under the barrier).
      if (u + 1 < u1) f7_issue(nxt, x + (nbase + (u + 1) / fbc::TILES) * fbc::IN_SAMPLE, (u + 1) % fbc::TILES);
      else if (wave + 1 < WAVES && nu0 < nu1)
        f7_issue(nxt, x + (nbase + F8_S + nu0 / fbc::TILES) * fbc::IN_SAMPLE, nu0 % fbc::TILES);
      fb_cp_commit();
      float acc[fbc::MPW][fbc::NT][4];
      f7_mma(e, cur, acc);
      f7_stage(slots + (u - u0) * f7::STAGE_FLOATS, junk, acc);
      f8_tile_stats(acc, red, min(fbc::TH, fbc::OH - (t % fbc::TILES_H) * fbc::TH), bias, partials, n, t);
      float* const done = cur;
      cur = nxt;
      nxt = done;
    }
    f8_grid_barrier(bar, (unsigned)(wave + 1) * G);
    // The samples this block holds: at most two (a block's range is shorter than a sample).
    if (u0 < u1) {
      const long long na = nbase + u0 / fbc::TILES, nb = nbase + (u1 - 1) / fbc::TILES;
      f8_sample_ab(partials, na, bias, gamma, beta, ab_s);
      if (nb != na) {
        __syncthreads();
        f8_sample_ab(partials, nb, bias, gamma, beta, ab_s + fbc::COUT);
      }
      __syncthreads();
      for (int u = u0; u < u1; ++u) {
        const long long n = nbase + u / fbc::TILES;
        const float2* abn = ab_s + (n == na ? 0 : fbc::COUT);
        float2 ab[fbc::COUT * fbc::TD / fbc::WARPS];
#pragma unroll
        for (int i = 0; i < fbc::COUT * fbc::TD / fbc::WARPS; ++i) ab[i] = abn[(warp + i * fbc::WARPS) / fbc::TD];
        f7_tile_out(slots + (u - u0) * f7::STAGE_FLOATS, y, n, u % fbc::TILES, ab, seed, offset);
      }
    }
    __syncthreads();  // the slots and ab_s are free for the next wave
    u0 = nu0;
    u1 = nu1;
  }
}
