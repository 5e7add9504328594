// The fill path (emit_fill.hpp): when the chain folds to a constant c under the guard, the
// output is c * mask * scale everywhere, so one kernel writes it (16-byte streaming stores, one
// Philox call per four elements) and, in the same pass, reads the input once to check the guard
// per sample: every element finite with |x| <= bound (bound from the parameters, rounded down to
// a float on the host, so the float compare is the exact real one). A failing sample gets its
// flag set (and flags[N], "some sample failed"); the exact fallback kernels then recompute just
// those samples, and exit at once when flags[N] is clear. Blocks own a slice of
// one sample's input, so a flag is set by few blocks and no host synchronisation is needed.
// Without a mask (dropout identity, as in problem 83 where dropout(0) folds away) the output is
// one constant: a memset writes it and fb_guard does the read half alone.
#include "cuda/strategies/constant_fill/emit_fill.hpp"

#include "cuda/codegen/element_types.hpp"
#include "cuda/codegen/emit_common.hpp"
#include "device_common/philox.h"
#include "fuseblock/error.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace fuseblock::cuda {
namespace {

const char* kGuard = R"(  // Guard: this block's slice of its sample's input.
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
const char* kGuardAlone = R"(  const long long n = blockIdx.x / blocks_per_sample;
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

}  // namespace

bool fill_is_constant(const Pipeline& p) { return p.fill_path() && p.dropout.is_identity(); }

int64_t guard_blocks_per_sample(int64_t resident_blocks, int64_t n, int64_t in_sample) {
  const int64_t per_sample = n > 0 ? resident_blocks / n : resident_blocks;
  return std::max<int64_t>(1, std::min(per_sample, (in_sample + 1023) / 1024));
}

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
  w.line("    float bound, int blocks_per_sample, long long slice) {{");
  w.line("  constexpr long long IN_SAMPLE = {}, N_SAMPLES = {};", in_sample, n);
  w.line("  constexpr int U = {};", kUnroll);
  w.raw(kGuardAlone);
  w.blank();
}

void emit_fill_kernel(SourceWriter& w, const Plan& plan) {
  constexpr int kUnroll = 4;  // independent Philox steps per thread
  const Pipeline& p = plan.pipeline;
  FB_ASSERT(p.fill_path(), "fill kernel for a pipeline that computes a conv");
  const bool guard = plan.guard.has_value() && !plan.assume_finite;
  const float c = fold_fill_chain(p.chain);
  const DropoutConsts d = dropout_consts(p.dropout);
  const int64_t total = numel(p.output_shape);
  const int64_t n = p.input_shape.empty() ? 0 : p.input_shape[0];
  const int64_t in_sample = n > 0 ? numel(p.input_shape) / n : 0;
  w.line("// ---- fill path: output = {} * dropout mask{} ----", float_literal(c),
         guard ? ", guarded per sample" : " (guard skipped: assume_finite)");
  const EmittedTypes T = emitted_types(p.types);
  FB_ASSERT(T.pack == "float4", "the fill kernel reads and writes float4 packs: f32 storage");
  w.line("extern \"C\" __global__ void __launch_bounds__(256) fb_fill(const {0}* __restrict__ x, {0}* __restrict__ y,",
         T.storage);
  w.line("    int* __restrict__ flags, float bound, const unsigned long long* __restrict__ dropout_state,");
  w.line("    long long q_per_block, int blocks_per_sample, long long slice) {{");
  w.line("  constexpr long long OUT_TOTAL = {}, Q_TOTAL = {};", total, (total + 3) / 4);
  w.line("  constexpr long long IN_SAMPLE = {}, N_SAMPLES = {};", in_sample, n);
  if (guard) w.raw(kGuard);  // the input checked first
  if (d.active) {
    w.line("  const unsigned long long seed = dropout_state[0], offset = dropout_state[1];");
    // The two possible values, computed on the host with the CPU backend's formula.
    w.line("  const float kept = {}, dropped = {};", float_literal(fb_dropout_apply(c, true, d.scale)),
           float_literal(fb_dropout_apply(c, false, d.scale)));
  } else {
    w.line("  const float kept = {};", float_literal(c));
  }
  w.line("  const long long q0 = (long long)blockIdx.x * q_per_block;");
  w.line("  const long long q1 = min(q0 + q_per_block, Q_TOTAL);");
  w.line("#pragma unroll {}", kUnroll);
  w.line("  for (long long q = q0 + threadIdx.x; q < q1; q += 256) {{");
  if (d.active) {
    w.line("    const fb_u32x4 bits = fb_dropout_bits(seed, offset, (unsigned long long)q);");
    w.line("    const unsigned th = {}u;", d.threshold);
    w.line("    const {} v = make_{}(bits.v[0] < th ? kept : dropped, bits.v[1] < th ? kept : dropped,", T.pack, T.pack);
    w.line("                                 bits.v[2] < th ? kept : dropped, bits.v[3] < th ? kept : dropped);");
  } else {
    w.line("    const {} v = make_{}(kept, kept, kept, kept);", T.pack, T.pack);
  }
  w.line("    if (4 * q + 3 < OUT_TOTAL) {{");
  w.line("      reinterpret_cast<{}*>(y)[q] = v;", T.pack);
  w.line("    }} else {{");
  w.line("      const float e[4] = {{v.x, v.y, v.z, v.w}};");
  w.line("      for (int k = 0; k < 4 && 4 * q + k < OUT_TOTAL; ++k) y[4 * q + k] = e[k];");
  w.line("    }}");
  w.line("  }}");
  w.line("}}");
  w.blank();
}

}  // namespace fuseblock::cuda
