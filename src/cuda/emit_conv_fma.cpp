// The fp32 FMA conv engine (strict fp32, any size): each thread computes 4 consecutive output
// positions of one tile row for all CT channels of the block's chunk, from the input window and
// a weights chunk [ci][kvol][CT4] in shared memory (read as float4 broadcasts). Input channels
// are taken CIC at a time when the whole window does not fit in shared memory.
#include "cuda/emit_conv.hpp"

namespace fuseblock::cuda {
namespace {

const char* kPrologue = R"(  const int qw = threadIdx.x % (fbc::TW / 4);
  const int qrow = threadIdx.x / (fbc::TW / 4);
  const int qh = qrow % fbc::TH, qd = qrow / fbc::TH;
  float* const wsm = fb_smem + fbc::WEIGHTS_OFFSET;
)";

const char* kTile = R"(    float acc[fbc::CT4][4];
#pragma unroll
    for (int c = 0; c < fbc::CT4; ++c)
#pragma unroll
      for (int p = 0; p < 4; ++p) acc[c][p] = 0.0f;
    for (int ci0 = 0; ci0 < fbc::CIN; ci0 += fbc::CIC) {
      __syncthreads();  // the previous chunk's (or tile's) window, weights and staging are free
      fb_load_window<false>(xs, x, n, ci0, T);
      for (int i = threadIdx.x; i < fbc::CIC * fbc::KVOL * fbc::CT4; i += fbc::THREADS) {
        const int c = i % fbc::CT4, kk = (i / fbc::CT4) % fbc::KVOL, ci = i / (fbc::CT4 * fbc::KVOL);
        wsm[i] = (c0 + c < fbc::COUT && c < fbc::CT && ci0 + ci < fbc::CIN)
                     ? __ldg(w + ((long long)(c0 + c) * fbc::CIN + ci0 + ci) * fbc::KVOL + kk) : 0.0f;
      }
      __syncthreads();
      const int cin_here = min(fbc::CIC, fbc::CIN - ci0);
#pragma unroll 1
      for (int ci = 0; ci < cin_here; ++ci) {
#pragma unroll
        for (int kd = 0; kd < fbc::KD; ++kd)
#pragma unroll
          for (int kh = 0; kh < fbc::KH; ++kh) {
            const float* xr = xs + ci * fbc::XCP + (qd * fbc::SD + kd * fbc::DD) * fbc::XPP +
                              (qh * fbc::SH + kh * fbc::DH) * fbc::XWP + qw * 4 * fbc::SW;
            float xv[NIN];
#pragma unroll
            for (int i = 0; i < NIN; ++i) xv[i] = xr[i];
            const float4* wr = reinterpret_cast<const float4*>(wsm + ((ci * fbc::KD + kd) * fbc::KH + kh) * fbc::KW * fbc::CT4);
#pragma unroll
            for (int kw = 0; kw < fbc::KW; ++kw)
#pragma unroll
              for (int c4 = 0; c4 < fbc::CT4 / 4; ++c4) {
                const float4 wv = wr[kw * (fbc::CT4 / 4) + c4];
#pragma unroll
                for (int p = 0; p < 4; ++p) {
                  const float xin = xv[p * fbc::SW + kw * fbc::DW];
                  acc[4 * c4 + 0][p] = fmaf(xin, wv.x, acc[4 * c4 + 0][p]);
                  acc[4 * c4 + 1][p] = fmaf(xin, wv.y, acc[4 * c4 + 1][p]);
                  acc[4 * c4 + 2][p] = fmaf(xin, wv.z, acc[4 * c4 + 2][p]);
                  acc[4 * c4 + 3][p] = fmaf(xin, wv.w, acc[4 * c4 + 3][p]);
                }
              }
          }
      }
    }
    // Results (+ bias) to staging.
    if (qd < T.tdv && qh < T.thv) {
#pragma unroll
      for (int c = 0; c < fbc::CT; ++c) {
        if (c0 + c < fbc::COUT) {
          const float b = HAS_BIAS ? __ldg(bias + c0 + c) : 0.0f;
#pragma unroll
          for (int p = 0; p < 4; ++p) {
            const int ow = qw * 4 + p;
            if (ow < T.twv) st[c * fbc::CP + qd * fbc::PP + qh * fbc::RP + ow] = acc[c][p] + b;
          }
        }
      }
    }
)";

}  // namespace

void emit_fma_prologue(SourceWriter& w, const ConvGeometry& g) {
  w.line("  constexpr bool HAS_BIAS = {};", g.bias ? "true" : "false");
  w.line("  constexpr int NIN = {};  // input values per thread row: 4 positions and the kernel's width",
         3 * g.s[2] + (g.k[2] - 1) * g.dil[2] + 1);
  w.raw(kPrologue);
}

void emit_fma_tile(SourceWriter& w, const ConvGeometry&) { w.raw(kTile); }

}  // namespace fuseblock::cuda
