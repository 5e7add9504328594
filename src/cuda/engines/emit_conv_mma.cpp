// The tensor-core conv engine: an implicit GEMM per tile, M = the tile's output positions
// (16-position row pieces, "m-tiles"), N = the block's channel chunk (8-wide n-tiles),
// K = CIN * KVOL padded to k-steps of 8, with mma.sync m16n8k8 tf32 and fp32 accumulation.
// The weights (B fragments) and each lane's A offsets stay in registers for the whole
// persistent loop; A comes from the input window in shared memory, already rounded to tf32
// (the kernel loop double-buffers the windows, emit_conv_tile.cpp).
// Fragment layouts are those of the PTX ISA for m16n8k8 .tf32: lane = 4 * g + t4 holds
// A[g][t4], A[g+8][t4], A[g][t4+4], A[g+8][t4+4]; B[t4][g], B[t4+4][g];
// C[g][2 t4], C[g][2 t4 + 1], C[g+8][2 t4], C[g+8][2 t4 + 1].
#include "cuda/engines/emit_conv.hpp"

namespace fuseblock::cuda {
namespace {

const char* kPrologue = R"(  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
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
)";

const char* kTile = R"(    float acc[fbc::MPW][fbc::NT][4];
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
)";

const char* kStage = R"(    // C fragments to staging (the epilogue adds the bias): rows g and g + 8, channels 2 t4 and
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
)";

// The statistics kernel's epilogue: per channel of the chunk, the tile's mean and the root of M2
// reduced from the accumulators (lanes of one t4 hold the same channels: shuffles over g, then
// the warps through shared memory), in a fixed order. Staging is free in this kernel and holds
// the sums. As the FMA engine's fb_stats_epilogue, the mean sums v / count and M2 sums deviations
// scaled by fb_stats_scale (from the tile's max |v|), so neither overflows where the values do not.
const char* kRegisterStats = R"(    {
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
)";

const char* kHelpers = R"(
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
)";

}  // namespace

void emit_mma_prologue(SourceWriter& w, const ConvGeometry&) { w.raw(kPrologue); }

void emit_mma_tile(SourceWriter& w, const ConvGeometry&, bool stage) {
  w.raw(kTile);
  if (stage) w.raw(kStage);
}

void emit_mma_register_stats(SourceWriter& w, const ConvGeometry&) { w.raw(kRegisterStats); }

// Emitted once per program, before the kernels (see emit_general.cpp).
void emit_mma_helpers(SourceWriter& w) { w.raw(kHelpers); }

}  // namespace fuseblock::cuda
