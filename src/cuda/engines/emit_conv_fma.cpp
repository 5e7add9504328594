// The fp32 FMA conv engine (strict fp32, any size): each thread computes 4 consecutive output
// positions of one tile row for all CT channels of the block's chunk, from the input window and
// a weights chunk [ci][kvol][CT4] in shared memory (read as float4 broadcasts). When the whole
// window fits twice in shared memory the kernel loop double-buffers it and the weights are loaded
// once per block; otherwise input channels are taken CIC at a time, window and weights reloaded.
#include "cuda/engines/emit_conv.hpp"

namespace fuseblock::cuda {
namespace {

const char* kPrologue = R"(  const int qw = threadIdx.x % (fbc::TW / 4);
  const int qrow = threadIdx.x / (fbc::TW / 4);
  const int qh = qrow % fbc::TH, qd = qrow / fbc::TH;
  float* const wsm = fb_smem + fbc::WEIGHTS_OFFSET;
)";

// Weights of input channels [ci0, ci0 + CIC) for this block's output channels, zero past COUT.
const char* kLoadWeights = R"(FB_INDENTfor (int i = threadIdx.x; i < fbc::CIC * fbc::KVOL * fbc::CT4; i += fbc::THREADS) {
FB_INDENT  const int c = i % fbc::CT4, kk = (i / fbc::CT4) % fbc::KVOL, ci = i / (fbc::CT4 * fbc::KVOL);
FB_INDENT  wsm[i] = (c0 + c < fbc::COUT && c < fbc::CT && ci0 + ci < fbc::CIN)
FB_INDENT               ? __ldg(w + ((long long)(c0 + c) * fbc::CIN + ci0 + ci) * fbc::KVOL + kk) : 0.0f;
FB_INDENT}
)";

const char* kHelpers = R"(
// acc[c][p] += the conv of input channels [0, cin_here) of the window at this thread's 4 positions.
__device__ __forceinline__ void fb_fma_accumulate(float (&acc)[fbc::CT4][4], const float* xs, const float* wsm,
                                                  int cin_here, int qd, int qh, int qw) {
  constexpr int NIN = 3 * fbc::SW + (fbc::KW - 1) * fbc::DW + 1;  // inputs a thread row needs
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
)";

const char* kZero = R"(    float acc[fbc::CT4][4];
#pragma unroll
    for (int c = 0; c < fbc::CT4; ++c)
#pragma unroll
      for (int p = 0; p < 4; ++p) acc[c][p] = 0.0f;
)";

const char* kChunked = R"(    for (int ci0 = 0; ci0 < fbc::CIN; ci0 += fbc::CIC) {
      __syncthreads();  // the previous chunk's (or tile's) window, weights and staging are free
      fb_load_window<false>(xs, x, n, ci0, T);
FB_WEIGHTS      __syncthreads();
      fb_fma_accumulate(acc, xs, wsm, min(fbc::CIC, fbc::CIN - ci0), qd, qh, qw);
    }
)";

const char* kStage = R"(    // Results to staging (the epilogue adds the bias).
    if (qd < T.tdv && qh < T.thv) {
#pragma unroll
      for (int c = 0; c < fbc::CT; ++c) {
        if (c0 + c < fbc::COUT) {
#pragma unroll
          for (int p = 0; p < 4; ++p) {
            const int ow = qw * 4 + p;
            if (ow < T.twv) st[c * fbc::CP + qd * fbc::PP + qh * fbc::RP + ow] = acc[c][p];
          }
        }
      }
    }
)";

std::string indented(const char* text, const std::string& indent) {
  std::string s = text;
  for (size_t at; (at = s.find("FB_INDENT")) != std::string::npos;) s.replace(at, 9, indent);
  return s;
}

}  // namespace

void emit_fma_helpers(SourceWriter& w) { w.raw(kHelpers); }

void emit_fma_prologue(SourceWriter& w, const ConvGeometry& g) {
  w.raw(kPrologue);
  if (g.pipelined) {
    w.line("  // All of this block's weights, once (the whole window is one chunk).");
    w.line("  const int ci0 = 0;");
    w.raw(indented(kLoadWeights, "  "));
  }
}

void emit_fma_tile(SourceWriter& w, const ConvGeometry& g) {
  w.raw(kZero);
  if (g.pipelined) {
    w.line("    fb_fma_accumulate(acc, xs, wsm, fbc::CIN, qd, qh, qw);");
  } else {
    std::string chunked = kChunked;
    chunked.replace(chunked.find("FB_WEIGHTS"), 10, indented(kLoadWeights, "      "));
    w.raw(chunked);
  }
  w.raw(kStage);
}

}  // namespace fuseblock::cuda
