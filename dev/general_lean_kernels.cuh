// dev: v8, the sample-resident persistent design (see dev/general_lean.cpp), appended as text to
// the program the emitter writes for problem 83 + SiLU, whose lean kernels' helpers (fbl_*,
// src/cuda/strategies/recompute_sample_runs/lean_kernels.cuh) it reuses. One persistent cooperative kernel; a wave of F8_S
// samples' conv outputs is kept in shared memory (F8_R tile slots per block), per-tile statistics
// go to global memory, a grid barrier, each block merges the statistics of the samples it holds,
// normalises from shared memory and writes; the conv is computed once.

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
        for (int r = 0; r < 2; ++r) v += (row_ok && fbl_col_ok(j, r)) ? acc[j][nt][2 * r + odd] : 0.0f;
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
          const float d = (row_ok && fbl_col_ok(j, r)) ? acc[j][nt][2 * r + odd] - mu : 0.0f;
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
  constexpr int CPG = fbc::COUT / FBL_GROUPS;
  if (grp < FBL_GROUPS) {
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
    const float rstd = 1.0f / sqrtf((float)(m2 / cn + FBL_EPS));
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
  float* const slots = smem + fbl::STAGE;                         // R staging slots
  float* const junk = slots + F8_R * fbl::STAGE_FLOATS;
  int* const ao_s = reinterpret_cast<int*>(junk + fbl::JUNK_FLOATS);
  float* const red = reinterpret_cast<float*>(ao_s + fbc::KSTEPS * 8) + FBL_BS_FLOATS;  // tile statistics scratch
  float2* const ab_s = reinterpret_cast<float2*>(red + 2 * fbc::WARPS * fbc::COUT + fbc::COUT + 16);  // [R][COUT]
  fbl_engine e;
  fbl_engine_init(e, w, ao_s);
  fbl_zero_pads(smem);
  constexpr int WAVES = (int)((fbc::N + F8_S - 1) / F8_S);
  auto range = [&](int wave, int& u0, int& u1) {
    const long long ns = min((long long)F8_S, fbc::N - (long long)wave * F8_S);
    const int U = (int)(ns * fbc::TILES);
    u0 = (int)((long long)blockIdx.x * U / G);
    u1 = (int)((long long)(blockIdx.x + 1) * U / G);
  };
  float* cur = smem;
  float* nxt = smem + fbl::WIN;
  int u0, u1;
  range(0, u0, u1);
  if (u0 < u1) fbl_issue(cur, x + (long long)(u0 / fbc::TILES) * fbc::IN_SAMPLE, u0 % fbc::TILES);
  fb_cp_commit();
  for (int wave = 0; wave < WAVES; ++wave) {
    const long long nbase = (long long)wave * F8_S;
    int nu0, nu1;
    range(wave + 1 < WAVES ? wave + 1 : wave, nu0, nu1);
    for (int u = u0; u < u1; ++u) {
      const long long n = nbase + u / fbc::TILES;
      const int t = u % fbc::TILES;
      fb_cp_wait_all();
      fbl_round(cur);
      __syncthreads();
      // The next window: this wave's next tile, or the next wave's first (loaded under the barrier).
      if (u + 1 < u1) fbl_issue(nxt, x + (nbase + (u + 1) / fbc::TILES) * fbc::IN_SAMPLE, (u + 1) % fbc::TILES);
      else if (wave + 1 < WAVES && nu0 < nu1)
        fbl_issue(nxt, x + (nbase + F8_S + nu0 / fbc::TILES) * fbc::IN_SAMPLE, nu0 % fbc::TILES);
      fb_cp_commit();
      float acc[fbc::MPW][fbc::NT][4];
      fbl_mma(e, cur, acc);
      fbl_stage(slots + (u - u0) * fbl::STAGE_FLOATS, junk, acc);
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
        fbl_tile_out(slots + (u - u0) * fbl::STAGE_FLOATS, y, n, u % fbc::TILES, ab, seed, offset);
      }
    }
    __syncthreads();  // the slots and ab_s are free for the next wave
    u0 = nu0;
    u1 = nu1;
  }
}
