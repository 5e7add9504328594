// The general path's kernels (emit_program.hpp): conv + statistics, statistics -> per-(n, c)
// normalisation, conv + normalisation + chain + dropout -> output. The conv output is never
// stored: the output kernel recomputes it with the same instructions, so both passes see
// identical values. With gated = true (the exact fallback of the fill path) every kernel skips
// samples whose guard flag is 0.
#include "cuda/strategies/recompute_two_pass/emit_general.hpp"

#include "cuda/codegen/element_types.hpp"
#include "cuda/codegen/emit_common.hpp"
#include "cuda/codegen/emit_epilogue.hpp"
#include "cuda/engines/emit_conv.hpp"
#include "fuseblock/error.hpp"

namespace fuseblock::cuda {
namespace {

const char* kFinalizeBody = R"(  const long long n = (long long)blockIdx.x / G;
  const int grp = (int)(blockIdx.x % G);
  GATE
  double cnt = 0.0, mean = 0.0, m2 = 0.0;
  for (int i = threadIdx.x; i < CPG * fbc::TILES; i += 256) {
    const int c = grp * CPG + i / fbc::TILES, t = i % fbc::TILES;
    const float2 p = partials[(n * fbc::COUT + c) * fbc::TILES + t];  // (mean, root of M2)
    fb_chan_merge(cnt, mean, m2, (double)fb_tile_count(t), (double)p.x, (double)p.y * (double)p.y);
  }
  // Tree merge in a fixed order: the statistics do not depend on timing.
  __shared__ double s_n[256], s_mean[256], s_m2[256];
  s_n[threadIdx.x] = cnt;
  s_mean[threadIdx.x] = mean;
  s_m2[threadIdx.x] = m2;
  __syncthreads();
  for (int s = 128; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      double a = s_n[threadIdx.x], b = s_mean[threadIdx.x], c = s_m2[threadIdx.x];
      fb_chan_merge(a, b, c, s_n[threadIdx.x + s], s_mean[threadIdx.x + s], s_m2[threadIdx.x + s]);
      s_n[threadIdx.x] = a;
      s_mean[threadIdx.x] = b;
      s_m2[threadIdx.x] = c;
    }
    __syncthreads();
  }
  const double mu = s_mean[0];
  // Biased variance, as GroupNorm.
  const double rstd = fb_rstd(s_m2[0] * __drcp_rn(s_n[0]) + EPS);
  for (int c = threadIdx.x; c < CPG; c += 256) {
    const int ch = grp * CPG + c;
    const double gm = AFFINE ? (double)__ldg(gamma + ch) : 1.0;
    nscale[n * fbc::COUT + ch] = (float)(gm * rstd);
    nmean[n * fbc::COUT + ch] = (float)mu;
  }
}
)";

}  // namespace

void emit_general_kernels(SourceWriter& w, const Pipeline& p, const ConvGeometry& g, bool gated,
                          GeneralKernelNames* names) {
  const EmittedTypes T = emitted_types(p.types);  // storage type names for the tensors' parameters
  emit_conv_tile_code(w, g);
  if (g.engine == ConvEngine::MmaTf32)
    emit_mma_helpers(w);
  else
    emit_fma_helpers(w);
  const bool norm = p.norm.has_value();
  if (norm) {
    if (g.engine != ConvEngine::MmaTf32) emit_stats_epilogue_fn(w, g);
    w.blank();
    ConvKernelSpec stats;
    stats.name = "fb_conv_stats";
    stats.params =
        fmt::format("const {0}* __restrict__ x, const {0}* __restrict__ w, const {0}* __restrict__ bias, "
                    "float2* __restrict__ partials, const int* __restrict__ flags",
                    T.storage);
    stats.epilogue = {"fb_stats_epilogue(st, bias, partials, n, t, T, c0);"};
    stats.gated = gated;
    stats.stats_from_registers = g.engine == ConvEngine::MmaTf32;
    emit_conv_kernel(w, g, stats);

    const int64_t groups = p.norm->num_groups;
    FB_ASSERT(groups > 0 && g.cout % groups == 0, "group count must divide the channels");
    w.line("// Merges a (sample, group)'s partial statistics; writes per-(n, c) scale and mean.");
    // (256, 1): with (256) alone ptxas aimed at 8 blocks per SM, capped the kernel at 32 registers and spilled.
    w.line("extern \"C\" __global__ void __launch_bounds__(256, 1) fb_norm_finalize(const float2* __restrict__ partials,");
    w.line("    const {}* __restrict__ gamma, float* __restrict__ nscale, float* __restrict__ nmean,", T.storage);
    w.line("    const int* __restrict__ flags) {{");
    if (gated) emit_wait_for_previous_grid(w);
    w.line("  constexpr int G = {}, CPG = {};", groups, g.cout / groups);
    w.line("  constexpr double EPS = {};", double_literal(p.norm->eps));
    w.line("  constexpr bool AFFINE = {};", p.norm->affine ? "true" : "false");
    std::string body = kFinalizeBody;
    const std::string gate = gated ? "if (flags[fbc::N] == 0 || flags[n] == 0) return;  // guard passed" : "";
    body.replace(body.find("GATE"), 4, gate);
    w.raw(body);
    w.blank();
  }
  emit_output_epilogue_fn(w, g, p);
  w.blank();
  ConvKernelSpec out;
  out.name = "fb_conv_output";
  out.params =
      fmt::format("const {0}* __restrict__ x, const {0}* __restrict__ w, const {0}* __restrict__ bias, "
                  "const float* __restrict__ nscale, const float* __restrict__ nmean, const {0}* __restrict__ beta, "
                  "{0}* __restrict__ y, const int* __restrict__ flags, const unsigned long long* __restrict__ dropout_state{1}",
                  T.storage, epilogue_params(p));
  out.epilogue = {"fb_output_epilogue(st, y, bias, nscale, nmean, beta, n, T, c0, dropout_state" + epilogue_args(p) +
                  ");"};
  out.gated = gated;
  emit_conv_kernel(w, g, out);
  if (names) {
    names->stats = norm ? "fb_conv_stats" : "";
    names->finalize = norm ? "fb_norm_finalize" : "";
    names->output = "fb_conv_output";
  }
}

}  // namespace fuseblock::cuda
