// What a conv kernel does with a staged tile (emit_conv.hpp):
//  - statistics: per (sample, channel, tile), the tile's mean and the root of M2 (sum of squared
//    deviations from that mean), two passes over staging in fp32; the finalize kernel merges them
//    with Chan's formula in double, so a large DC offset does not cancel the variance away. The
//    mean sums v / count and M2 sums deviations scaled by fb_stats_scale, and the root of M2 fits a
//    float: nothing overflows where the values do not (conv outputs up to float's range);
//  - output: walks the tile's output in runs of consecutive elements ("segments"), four
//    elements per step aligned to multiples of 4 in the flat output index, so one Philox call
//    gives the four dropout draws (element i uses word i % 4 of counter block i / 4, exactly as
//    the CPU backend) and an interior step is one 16-byte store; each element's chain, dropout
//    and store conversion are the shared epilogue's (emit_epilogue.hpp).
#include "cuda/codegen/element_types.hpp"
#include "cuda/codegen/emit_common.hpp"
#include "cuda/codegen/emit_epilogue.hpp"
#include "cuda/engines/emit_conv.hpp"

namespace fuseblock::cuda {
namespace {

const char* kStats = R"(
__device__ __forceinline__ void fb_stats_epilogue(const float* st, const float* __restrict__ bias,
                                                  float2* __restrict__ partials, long long n, int t, const fb_tile& T,
                                                  int c0) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float inv_count = 1.0f / (float)(T.tdv * T.thv * T.twv);
  for (int cl = warp; cl < fbc::CT && c0 + cl < fbc::COUT; cl += fbc::WARPS) {
    const float* sc = st + cl * fbc::CP;
    float s = 0.0f, max_abs = 0.0f;
#pragma unroll 4
    for (int e = lane; e < fbc::TD * fbc::TH * fbc::TW; e += 32) {
      const int ow = e % fbc::TW, oh = (e / fbc::TW) % fbc::TH, od = e / (fbc::TW * fbc::TH);
      if (od < T.tdv && oh < T.thv && ow < T.twv) {
        const float v = sc[od * fbc::PP + oh * fbc::RP + ow];
        s = fmaf(v, inv_count, s);  // the mean as a sum of v / count: no partial sum passes max |v|
        max_abs = fmaxf(max_abs, fabsf(v));
      }
    }
    const float mean = fb_warp_sum(s);
    const float scale = fb_stats_scale(fb_warp_max(max_abs)), shift = -mean * scale;
    float m2 = 0.0f;
#pragma unroll 4
    for (int e = lane; e < fbc::TD * fbc::TH * fbc::TW; e += 32) {
      const int ow = e % fbc::TW, oh = (e / fbc::TW) % fbc::TH, od = e / (fbc::TW * fbc::TH);
      if (od < T.tdv && oh < T.thv && ow < T.twv) {
        const float d = fmaf(sc[od * fbc::PP + oh * fbc::RP + ow], scale, shift);  // scale * (v - mean)
        m2 = fmaf(d, d, m2);
      }
    }
    m2 = fb_warp_sum(m2);
    // Staging holds the conv without its bias: the bias moves the mean, not M2.
    const float b = fbc::HAS_BIAS ? __ldg(bias + c0 + cl) : 0.0f;
    if (lane == 0) partials[(n * fbc::COUT + c0 + cl) * fbc::TILES + t] = make_float2(mean + b, sqrtf(m2) / scale);
  }
}
)";

const char* kOutputLoop = R"(  constexpr int SEGD = fbc::SEG_LEVEL == 2 ? 1 : fbc::TD;  // segments per channel along d
  constexpr int SEGH = fbc::SEG_LEVEL == 0 ? fbc::TH : 1;  // and along h
  const int L = fbc::SEG_LEVEL == 0 ? T.twv : (fbc::SEG_LEVEL == 1 ? T.thv * fbc::OW : T.tdv * fbc::OH * fbc::OW);
  const int nsd = fbc::SEG_LEVEL == 2 ? 1 : T.tdv;
  const int nsh = fbc::SEG_LEVEL == 0 ? T.thv : 1;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  // A warp per segment (its constants loaded once), lanes over its 4-element steps.
  for (int s = warp; s < fbc::CT * SEGD * SEGH; s += fbc::WARPS) {
    const int sh = s % SEGH, sd = (s / SEGH) % SEGD, cl = s / (SEGH * SEGD);
    const int c = c0 + cl;
    if (sd >= nsd || sh >= nsh || c >= fbc::COUT) continue;
    const long long F = ((n * fbc::COUT + c) * fbc::OD + T.od0 + sd) * ((long long)fbc::OH * fbc::OW) +
                        (long long)(T.oh0 + sh) * fbc::OW + T.ow0;  // the segment's first flat index
    const long long q0 = F >> 2;
    const int lead = (int)(F & 3);  // elements of the first step that precede the segment
    const int steps = (lead + L + 3) >> 2;
    const float* seg = st + cl * fbc::CP + sd * fbc::PP + sh * fbc::RP;
)";

}  // namespace

void emit_stats_epilogue_fn(SourceWriter& w, const ConvGeometry&) { w.raw(kStats); }

void emit_output_epilogue_fn(SourceWriter& w, const ConvGeometry& g, const Pipeline& p) {
  const bool norm = p.norm.has_value();
  const bool affine = norm && p.norm->affine;
  w.blank();
  emit_epilogue_fn(w, p);
  w.blank();
  const EmittedTypes T = emitted_types(p.types);
  w.line("__device__ __forceinline__ void fb_output_epilogue(const float* st, {}* __restrict__ y,", T.storage);
  w.line("    const {0}* __restrict__ bias, const float* __restrict__ nscale, const float* __restrict__ nmean,", T.storage);
  w.line("    const {}* __restrict__ beta,", T.storage);
  w.line("    long long n, const fb_tile& T, int c0, const unsigned long long* __restrict__ dropout_state{}) {{",
         epilogue_params(p));
  if (active_dropout(p)) w.line("  {}", epilogue_random_state(p));
  w.raw(kOutputLoop);
  if (norm) {
    w.line("    const float a = nscale[n * fbc::COUT + c], m = nmean[n * fbc::COUT + c];");
    w.line("    const float b = {};", affine ? "__ldg(beta + c)" : "0.0f");
  }
  w.line("    const float cb = fbc::HAS_BIAS ? __ldg(bias + c) : 0.0f;  // staging holds the conv without its bias");
  // Not unrolled by default: the MMA engine's weights stay in registers through the epilogue,
  // and a second Philox step in flight pushed sm_89 past 128 registers.
  w.line("#pragma unroll {}", g.epilogue_unroll);
  w.line("    for (int j = lane; j < steps; j += 32) {{");
  w.line("      const long long q = q0 + j;");
  w.line("      const int e0 = 4 * j - lead;  // the step's first element, as an index into the segment");
  if (active_dropout(p)) w.line("      {}", epilogue_draws_decl(p, "q"));
  w.line("      fb_st o[4];");
  w.line("#pragma unroll");
  w.line("      for (int k = 0; k < 4; ++k) {{");
  w.line("        const int e = e0 + k;");
  w.line("        const float v = (e >= 0 && e < L ? seg[e] : 0.0f) + cb;");
  w.line("        o[k] = {};", epilogue_call(p, norm ? "fmaf(v - m, a, b)" : "v", "c", epilogue_draw(p, "k")));
  w.line("      }}");
  w.line("      fb_store_quad(y, q, o, e0, L);");
  w.line("    }}");
  w.line("  }}");
  w.line("}}");
}

}  // namespace fuseblock::cuda
