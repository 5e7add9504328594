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

