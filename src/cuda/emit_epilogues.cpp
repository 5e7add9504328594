// What a conv kernel does with a staged tile (emit_conv.hpp):
//  - statistics: per (sample, channel, tile), the tile's mean and M2 (sum of squared deviations
//    from that mean), two passes over staging in fp32; the finalize kernel merges them with
//    Chan's formula in double, so a large DC offset does not cancel the variance away;
//  - output: walks the tile's output in runs of consecutive elements ("segments"), four
//    elements per step aligned to multiples of 4 in the flat output index, so one Philox call
//    gives the four dropout draws (element i uses word i % 4 of counter block i / 4, exactly as
//    the CPU backend) and an interior step is one 16-byte store.
#include "cuda/emit_common.hpp"
#include "cuda/emit_conv.hpp"

namespace fuseblock::cuda {
namespace {

const char* kStats = R"(
__device__ __forceinline__ void fb_stats_epilogue(const float* st, float2* __restrict__ partials, long long n, int t,
                                                  const fb_tile& T, int c0) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float count = (float)(T.tdv * T.thv * T.twv);
  for (int cl = warp; cl < fbc::CT && c0 + cl < fbc::COUT; cl += fbc::WARPS) {
    const float* sc = st + cl * fbc::CP;
    float s = 0.0f;
    for (int e = lane; e < fbc::TD * fbc::TH * fbc::TW; e += 32) {
      const int ow = e % fbc::TW, oh = (e / fbc::TW) % fbc::TH, od = e / (fbc::TW * fbc::TH);
      if (od < T.tdv && oh < T.thv && ow < T.twv) s += sc[od * fbc::PP + oh * fbc::RP + ow];
    }
    const float mean = fb_warp_sum(s) / count;
    float m2 = 0.0f;
    for (int e = lane; e < fbc::TD * fbc::TH * fbc::TW; e += 32) {
      const int ow = e % fbc::TW, oh = (e / fbc::TW) % fbc::TH, od = e / (fbc::TW * fbc::TH);
      if (od < T.tdv && oh < T.thv && ow < T.twv) {
        const float d = sc[od * fbc::PP + oh * fbc::RP + ow] - mean;
        m2 = fmaf(d, d, m2);
      }
    }
    m2 = fb_warp_sum(m2);
    if (lane == 0) partials[(n * fbc::COUT + c0 + cl) * fbc::TILES + t] = make_float2(mean, m2);
  }
}
)";

const char* kOutputLoop = R"(  constexpr int SEGD = fbc::SEG_LEVEL == 2 ? 1 : fbc::TD;  // segments per channel along d
  constexpr int SEGH = fbc::SEG_LEVEL == 0 ? fbc::TH : 1;  // and along h
  constexpr int MAXL = fbc::SEG_LEVEL == 0 ? fbc::TW : (fbc::SEG_LEVEL == 1 ? fbc::TH * fbc::OW : fbc::TD * fbc::OH * fbc::OW);
  constexpr int GMAX = MAXL / 4 + 2;  // 4-element steps a segment can touch
  const int L = fbc::SEG_LEVEL == 0 ? T.twv : (fbc::SEG_LEVEL == 1 ? T.thv * fbc::OW : T.tdv * fbc::OH * fbc::OW);
  const int nsd = fbc::SEG_LEVEL == 2 ? 1 : T.tdv;
  const int nsh = fbc::SEG_LEVEL == 0 ? T.thv : 1;
  for (int it = threadIdx.x; it < fbc::CT * SEGD * SEGH * GMAX; it += fbc::THREADS) {
    const int j = it % GMAX;
    const int sh = (it / GMAX) % SEGH;
    const int sd = (it / (GMAX * SEGH)) % SEGD;
    const int cl = it / (GMAX * SEGH * SEGD);
    const int c = c0 + cl;
    if (sd >= nsd || sh >= nsh || c >= fbc::COUT) continue;
    const long long F = ((n * fbc::COUT + c) * fbc::OD + T.od0 + sd) * ((long long)fbc::OH * fbc::OW) +
                        (long long)(T.oh0 + sh) * fbc::OW + T.ow0;  // the segment's first flat index
    const long long q = (F >> 2) + j;
    if (q > ((F + L - 1) >> 2)) continue;
    const float* seg = st + cl * fbc::CP + sd * fbc::PP + sh * fbc::RP;
)";

const char* kOutputStore = R"(    if (in[0] && in[3]) {
      __stcs(reinterpret_cast<float4*>(y) + q, make_float4(o[0], o[1], o[2], o[3]));
    } else {
#pragma unroll
      for (int k = 0; k < 4; ++k)
        if (in[k]) __stcs(y + 4 * q + k, o[k]);
    }
  }
}
)";

}  // namespace

void emit_stats_epilogue_fn(SourceWriter& w, const ConvGeometry&) { w.raw(kStats); }

void emit_output_epilogue_fn(SourceWriter& w, const ConvGeometry& g, const Pipeline& p) {
  const bool norm = p.norm.has_value();
  const bool affine = norm && p.norm->affine;
  const DropoutConsts d = dropout_consts(p.dropout);
  w.blank();
  w.line("// The value of one element from its conv output v: normalisation (a (v - mean) + beta), then the chain.");
  w.open("__device__ __forceinline__ float fb_finish(float v, float a, float m, float b)");
  w.line("float r = {};", norm ? "fmaf(v - m, a, b)" : "v");
  emit_chain(w, p.chain, "r");
  w.line("return r;");
  w.close();
  w.blank();
  w.line("__device__ __forceinline__ void fb_output_epilogue(const float* st, float* __restrict__ y,");
  w.line("    const float* __restrict__ nscale, const float* __restrict__ nmean, const float* __restrict__ beta,");
  w.line("    long long n, const fb_tile& T, int c0, unsigned long long seed, unsigned long long offset) {{");
  w.raw(kOutputLoop);
  if (norm) {
    w.line("    const float a = nscale[n * fbc::COUT + c], m = nmean[n * fbc::COUT + c];");
    w.line("    const float b = {};", affine ? "__ldg(beta + c)" : "0.0f");
  } else {
    w.line("    const float a = 1.0f, m = 0.0f, b = 0.0f;");
  }
  if (d.active) w.line("    const fb_u32x4 bits = fb_dropout_bits(seed, offset, (unsigned long long)q);");
  w.line("    float o[4];");
  w.line("    bool in[4];");
  w.line("#pragma unroll");
  w.line("    for (int k = 0; k < 4; ++k) {{");
  w.line("      const long long e = 4 * q + k;");
  w.line("      in[k] = e >= F && e < F + L;");
  w.line("      const float r = fb_finish(in[k] ? seg[e - F] : 0.0f, a, m, b);");
  if (d.active)
    w.line("      o[k] = fb_dropout_apply(r, bits.v[k] < {}u, {});", d.threshold, float_literal(d.scale));
  else
    w.line("      o[k] = r;");
  w.line("    }}");
  w.raw(kOutputStore);
}

}  // namespace fuseblock::cuda
