// The fill path (emit_fill.hpp): when the chain folds to a constant c under the guard, the
// output is c * mask * scale everywhere, so one kernel writes it (16-byte streaming stores, one
// Philox call per four elements) and, in the same pass, reads the input once to check the guard
// per sample: every element finite with |x| <= bound (bound from the parameters, computed by
// fb_guard_bound before the guard runs and rounded down to a float there, so the float compare is
// the exact real one). A failing sample gets its flag set (and flags[N], "some sample failed"); the
// exact fallback kernels then recompute just those samples, and exit at once when flags[N] is
// clear. Blocks own a slice of one sample's input, so a flag is set by few blocks and no host
// synchronisation is needed.
// Without a mask (dropout identity, as in problem 83 where dropout(0) folds away) the output is
// one constant: a memset writes it and fb_guard does the read half alone.
#include "cuda/strategies/constant_fill/emit_fill.hpp"

#include "cuda/codegen/element_types.hpp"
#include "cuda/codegen/emit_common.hpp"
#include "cuda/codegen/emit_epilogue.hpp"
#include "device_common/philox.h"
#include "fuseblock/error.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include <fmt/format.h>

namespace fuseblock::cuda {
namespace {

const char* kGuard = R"(  // Guard: this block's slice of its sample's input.
  const float bound = *guard_bound;
  const long long n = blockIdx.x / blocks_per_sample;
  const long long s0 = (long long)(blockIdx.x % blocks_per_sample) * slice;
  const long long s1 = min(s0 + slice, IN_SAMPLE);
  const float* xn = x + n * IN_SAMPLE;
  bool bad = false;
  if (IN_SAMPLE % 4 == 0) {  // slices are multiples of 4: whole float4s
    for (long long i = s0 / 4 + threadIdx.x; i < s1 / 4; i += 256) {
      const float4 v = __ldcs(reinterpret_cast<const float4*>(xn) + i);
      bad |= !(fabsf(v.x) <= bound) | !(fabsf(v.y) <= bound) | !(fabsf(v.z) <= bound) | !(fabsf(v.w) <= bound);
    }
  } else {
    for (long long i = s0 + threadIdx.x; i < s1; i += 256) bad |= !(fabsf(__ldcs(xn + i)) <= bound);
  }
  if (__syncthreads_or(bad) && threadIdx.x == 0) {
    flags[n] = 1;
    flags[N_SAMPLES] = 1;  // "some sample failed": the fallback kernels exit at once without it
  }
)";

// The guard alone (fb_guard): the same slices and flags as kGuard, with `U` float4 loads per
// thread issued before the first compare, so enough bytes are in flight to keep HBM busy.
const char* kGuardAlone = R"(  const float bound = *guard_bound;
  const long long n = blockIdx.x / blocks_per_sample;
  const long long s0 = (long long)(blockIdx.x % blocks_per_sample) * slice;
  const long long s1 = min(s0 + slice, IN_SAMPLE);
  const float* xn = x + n * IN_SAMPLE;
  bool bad = false;
  if (IN_SAMPLE % 4 == 0) {  // slices are multiples of 4: whole float4s
    const float4* x4 = reinterpret_cast<const float4*>(xn);
    const long long e = s1 / 4;
    for (long long i = s0 / 4 + threadIdx.x; i < e; i += 256 * U) {
      float4 v[U];
#pragma unroll
      for (int u = 0; u < U; ++u)
        v[u] = i + u * 256 < e ? __ldcs(x4 + i + u * 256) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
      for (int u = 0; u < U; ++u)
        bad |= !(fabsf(v[u].x) <= bound) | !(fabsf(v[u].y) <= bound) | !(fabsf(v[u].z) <= bound) | !(fabsf(v[u].w) <= bound);
    }
  } else {
    for (long long i = s0 + threadIdx.x; i < s1; i += 256) bad |= !(fabsf(__ldcs(xn + i)) <= bound);
  }
  if (__syncthreads_or(bad) && threadIdx.x == 0) {
    flags[n] = 1;
    flags[N_SAMPLES] = 1;  // "some sample failed": the fallback kernels exit at once without it
  }
}
)";

// fb_guard_bound's body (emit_guard_bound_kernel writes the signature and the constants C_OUT,
// PER_CHANNEL, HAS_BIAS, HAS_AFFINE, B, INF, QNAN, FLOAT_MAX): guard_input_bound() on the device.
// Warp w takes channels w, w + 8, ...; lane l sums |w[o, i]| over i = l, l + 32, ... in that order,
// then a butterfly sums the lanes (a + b on one lane is b + a on its partner, so all lanes agree):
// a fixed order, so every run gives the same bits. The host sums each channel left to right; that
// order is the one difference, and it cannot make the device's bound unsound:
//  - the sums round up and (B - |bias|) / sum rounds down (the subtraction too), so the device's
//    double is never above the exact real bound, whatever the order; the host's round-to-nearest
//    sum can put its bound up to ~K * 2^-53 (relative, K weights per channel) above it;
//  - either error is far inside what the analysis tolerates anyway: the conv itself rounds (K *
//    2^-24 relative in fp32, K * 2^-11 in TF32) past B for input at the bound, and B = 1e12
//    (lower.cpp; the CUDA kernels are f32 only) keeps the conv output 26 orders of magnitude from
//    float overflow and its squares summed over a group of up to ~3e14 elements finite.
// The conversion to float (the largest float <= the double) then agrees with the host's bit for
// bit unless the exact bound lies within those few double ulps of a float.
const char* kGuardBound = R"(  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  double m = INF;  // the min over this warp's channels; NaN once a parameter is not finite
  for (long long o = warp; o < C_OUT; o += 8) {
    const float* row = w + o * PER_CHANNEL;
    double s = 0.0;
#pragma unroll 4
    for (long long i = lane; i < PER_CHANNEL; i += 32) s = __dadd_ru(s, fabs((double)row[i]));
#pragma unroll
    for (int d = 16; d > 0; d >>= 1) s = __dadd_ru(s, __shfl_xor_sync(0xffffffffu, s, d));
    const double b = HAS_BIAS ? fabs((double)bias[o]) : 0.0;
    const double g = HAS_AFFINE ? fabs((double)gamma[o]) : 0.0;
    const double h = HAS_AFFINE ? fabs((double)beta[o]) : 0.0;
    double c;
    if (!(s < INF && b < INF && g < INF && h < INF)) c = QNAN;  // a NaN or Inf anywhere in the channel
    else if (b > B || g > B || h > B) c = -INF;                // no input can meet the bound
    else c = s > 0.0 ? __ddiv_rd(__dsub_rd(B, b), s) : INF;  // all-zero weights constrain nothing
    m = (m != m || c != c) ? QNAN : fmin(m, c);
  }
  __shared__ double warp_min[8];
  if (lane == 0) warp_min[warp] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int k = 1; k < 8; ++k) m = (m != m || warp_min[k] != warp_min[k]) ? QNAN : fmin(m, warp_min[k]);
    // As the guard compares it: the largest float <= m, at most FLT_MAX (an infinite x always
    // fails), NaN kept.
    *guard_bound = m != m ? (float)m : (m >= (double)FLOAT_MAX ? FLOAT_MAX : __double2float_rd(m));
  }
}
)";

}  // namespace

float guard_bound_as_float(double bound) {
  if (std::isnan(bound)) return NAN;
  if (bound >= static_cast<double>(FLT_MAX)) return FLT_MAX;
  float f = static_cast<float>(bound);
  if (static_cast<double>(f) > bound) f = std::nextafter(f, -INFINITY);
  return f;
}

void emit_guard_bound_kernel(SourceWriter& w, const Plan& plan) {
  FB_ASSERT(plan.guard.has_value(), "guard bound kernel for a plan without a guard");
  const Pipeline& e = plan.fallback;  // the guard bounds the exact pipeline's conv
  const ConvAttrs& c = e.conv;
  int64_t per_channel = c.in_channels;
  for (int d = 0; d < c.dims; ++d) per_channel *= c.kernel[static_cast<size_t>(d)];
  FB_ASSERT(c.out_channels > 0 && per_channel > 0, "guard bound kernel for a conv without weights");
  const double b = plan.guard->conv_output_bound;
  FB_ASSERT(b >= 0.0 && b < INFINITY, "conv output bound " + std::to_string(b));
  // infer_ranges takes prelu slopes as finite under the guard; the CUDA kernels have no prelu
  // (cpu_only_forms), so a guarded CUDA program has no slope to check.
  for (const Op& op : e.chain) FB_ASSERT(op.kind != OpKind::PRelu, "a guarded CUDA program with prelu");
  w.line("// ---- guard bound: the largest |x| for which |conv output| <= {:g}, from the parameters ----", b);
  w.line("extern \"C\" __global__ void __launch_bounds__(256) fb_guard_bound(const float* __restrict__ w,");
  w.line("    const float* __restrict__ bias, const float* __restrict__ gamma, const float* __restrict__ beta,");
  w.line("    float* __restrict__ guard_bound) {{");
  w.line("  constexpr long long C_OUT = {}, PER_CHANNEL = {};", c.out_channels, per_channel);
  w.line("  constexpr bool HAS_BIAS = {}, HAS_AFFINE = {};", c.bias, e.norm && e.norm->affine);
  w.line("  const double B = {};  // |conv output| <= B is what the analysis assumed", double_literal(b));
  w.line("  const double INF = {}, QNAN = {};", double_literal(INFINITY), double_literal(NAN));
  w.line("  const float FLOAT_MAX = {};", float_literal(FLT_MAX));
  w.raw(kGuardBound);
  w.blank();
}

bool fill_is_constant(const Pipeline& p) { return p.fill_path() && !active_dropout(p); }

void emit_guard_kernel(SourceWriter& w, const Plan& plan) {
  constexpr int kUnroll = 4;  // float4 loads in flight per thread
  const Pipeline& p = plan.pipeline;
  FB_ASSERT(fill_is_constant(p) && plan.guard.has_value(), "guard kernel for a plan without a constant guarded fill");
  const int64_t n = p.input_shape.empty() ? 0 : p.input_shape[0];
  const int64_t in_sample = n > 0 ? numel(p.input_shape) / n : 0;
  w.line("// ---- fill path guard: per-sample |x| <= bound, input read once; the output is a memset ----");
  const EmittedTypes T = emitted_types(p.types);
  FB_ASSERT(T.pack == "float4", "the guard reads its input as float4 packs: f32 storage");
  w.line("extern \"C\" __global__ void __launch_bounds__(256) fb_guard(const {}* __restrict__ x, int* __restrict__ flags,",
         T.storage);
  w.line("    const float* __restrict__ guard_bound, int blocks_per_sample, long long slice) {{");
  w.line("  constexpr long long IN_SAMPLE = {}, N_SAMPLES = {};", in_sample, n);
  w.line("  constexpr int U = {};", kUnroll);
  w.raw(kGuardAlone);
  w.blank();
}

void emit_fill_kernel(SourceWriter& w, const Plan& plan) {
  constexpr int kUnroll = 4;  // independent Philox steps per thread
  const Pipeline& p = plan.pipeline;
  FB_ASSERT(p.fill_path() && !p.chain.empty() && p.chain.front().kind == OpKind::Fill,
            "fill kernel for a pipeline that computes a conv");
  FB_ASSERT(prelu_count(p) == 0, "a fill kernel with prelu (cpu_only_forms refuses it on the fill path)");
  const bool guard = plan.guard.has_value() && !plan.assume_finite;
  const int64_t total = numel(p.output_shape);
  const int64_t n = p.input_shape.empty() ? 0 : p.input_shape[0];
  const int64_t in_sample = n > 0 ? numel(p.input_shape) / n : 0;
  // The chain's ops before its dropout fold on the host, as the CPU backend computes them (device
  // transcendentals may differ from the host's in the last bit); the epilogue runs the rest.
  EpilogueOptions eo;
  eo.name = "fb_fill_epilogue";
  eo.first_op = element_dependent_op(p);
  const float folded = fold_fill_chain(p.chain, eo.first_op);
  w.line("// ---- fill path: output = {} through the rest of the chain and the dropout mask{} ----",
         float_literal(folded), guard ? ", guarded per sample" : " (guard skipped: assume_finite)");
  const EmittedTypes T = emitted_types(p.types);
  FB_ASSERT(T.pack == "float4", "the fill kernel reads float4 packs (the guard): f32 storage");
  emit_epilogue_fn(w, p, eo);
  w.line("extern \"C\" __global__ void __launch_bounds__(256) fb_fill(const {0}* __restrict__ x, {0}* __restrict__ y,",
         T.storage);
  w.line("    int* __restrict__ flags, const float* __restrict__ guard_bound,");
  w.line("    const unsigned long long* __restrict__ dropout_state,");
  w.line("    long long q_per_block, int blocks_per_sample, long long slice) {{");
  w.line("  constexpr long long OUT_TOTAL = {}, Q_TOTAL = {};", total, (total + 3) / 4);
  w.line("  constexpr long long IN_SAMPLE = {}, N_SAMPLES = {};", in_sample, n);
  if (guard) w.raw(kGuard);  // the input checked first
  if (active_dropout(p)) w.line("  {}", epilogue_random_state(p));
  w.line("  const long long q0 = (long long)blockIdx.x * q_per_block;");
  w.line("  const long long q1 = min(q0 + q_per_block, Q_TOTAL);");
  w.line("#pragma unroll {}", kUnroll);
  w.line("  for (long long q = q0 + threadIdx.x; q < q1; q += 256) {{");
  if (active_dropout(p)) w.line("    {}", epilogue_draws_decl(p, "q"));
  w.line("    fb_st o[4];");
  w.line("#pragma unroll");
  w.line("    for (int k = 0; k < 4; ++k) o[k] = {};",
         epilogue_call(p, float_literal(folded), "0", epilogue_draw(p, "k"), eo.name));
  w.line("    fb_store_quad(y, q, o, 4 * q, OUT_TOTAL);");
  w.line("  }}");
  w.line("}}");
  w.blank();
}

}  // namespace fuseblock::cuda
