// The shared pieces of emitted programs (emit_common.hpp).
#include "cuda/codegen/emit_common.hpp"

#include "device_common/embedded.hpp"
#include "device_common/philox.h"
#include "fuseblock/error.hpp"
#include "ops/pointwise_eval.hpp"

namespace fuseblock::cuda {
namespace {

const char* kHelpers = R"(
// Rounds to the nearest tf32 value (the tensor cores read the top 19 bits).
// Both need sm_80; older GPUs use the FMA engine, which calls neither.
__device__ __forceinline__ float fb_tf32(float v) {
#if __CUDA_ARCH__ >= 800
  unsigned r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(v));
  return __uint_as_float(r);
#else
  return v;
#endif
}

// d += a * b on the tensor cores: a 16x8 (row), b 8x8 (col), d 16x8, tf32 in, fp32 accumulate.
__device__ __forceinline__ void fb_mma_tf32(float (&d)[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3,
                                            unsigned b0, unsigned b1) {
#if __CUDA_ARCH__ >= 800
  asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#endif
}

__device__ __forceinline__ float fb_warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float fb_warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// The statistics' scale for values up to max_abs: 1 below 2^41, else the power of two 2^-k that
// brings max_abs below 2^41. Scaled deviations from a mean then stay below 2^42, and up to 2^44
// squares of them sum below 2^128 (float's range): M2 cannot overflow where the values do not.
// A power of two, so scaling adds no rounding (underflow aside, which only values far below
// max_abs, whose squares do not count, can reach).
__device__ __forceinline__ float fb_stats_scale(float max_abs) {
  const int e = (__float_as_int(max_abs) >> 23) & 0xff;  // biased exponent: max_abs < 2^(e - 126)
  return e > 167 ? __int_as_float((127 - (e - 167)) << 23) : 1.0f;
}

// The reciprocal square root of var + eps (formed in double): in float, as PyTorch computes it,
// where that fits a float; in double beyond (values above about 1e19), where PyTorch's CUDA
// kernel, in float, gives rstd = 0 (docs/semantics.md).
__device__ __forceinline__ double fb_rstd(double var_eps) {
  return var_eps <= 3.4028234663852886e38 ? (double)(1.0f / sqrtf((float)var_eps)) : rsqrt(var_eps);
}

// Chan et al.'s merge of two (count, mean, M2) summaries, in double: exact enough for any offset.
// __drcp_rn rather than a division: a double divide calls a slow-path subroutine that spills.
__device__ __forceinline__ void fb_chan_merge(double& n, double& mean, double& m2, double nb, double mb, double m2b) {
  if (nb == 0.0) return;
  const double nn = n + nb, inv = __drcp_rn(nn);
  const double d = mb - mean;
  mean = (n == 0.0) ? mb : mean + d * (nb * inv);
  m2 = m2 + m2b + d * d * (n * nb * inv);
  n = nn;
}
)";

std::string pw_call(const Op& op, const std::string& v, bool tf32_math) {
  const std::string a = float_literal(static_cast<float>(op.pw.a));
  const std::string b = float_literal(static_cast<float>(op.pw.b));
  switch (op.kind) {
    case OpKind::Minimum: return "fb_minimum(" + v + ", " + a + ")";
    case OpKind::Maximum: return "fb_maximum(" + v + ", " + a + ")";
    case OpKind::Clamp:
    case OpKind::Hardtanh:
      return "fb_clamp(" + v + ", " + (op.pw.has_a ? "true" : "false") + ", " + a + ", " +
             (op.pw.has_b ? "true" : "false") + ", " + b + ")";
    case OpKind::Relu: return "fb_relu(" + v + ")";
    case OpKind::LeakyRelu: return "fb_leaky_relu(" + v + ", " + a + ")";
    case OpKind::Gelu: return (op.pw.tanh_approx ? "fb_gelu_tanh(" : "fb_gelu_erf(") + v + ")";
    case OpKind::Silu: return (tf32_math ? "fbl_silu_tf32(" : "fb_silu(") + v + ")";
    case OpKind::Sigmoid: return (tf32_math ? "fbl_sigmoid_tf32(" : "fb_sigmoid(") + v + ")";
    case OpKind::Tanh: return "fb_tanh(" + v + ")";
    case OpKind::Mish: return "fb_mish(" + v + ")";
    case OpKind::Hardswish: return "fb_hardswish(" + v + ")";
    case OpKind::Softplus: return "fb_softplus(" + v + ", " + a + ", " + b + ")";
    case OpKind::Elu: return "fb_elu(" + v + ", " + a + ")";
    case OpKind::Add: return "fb_add(" + v + ", " + a + ")";
    case OpKind::Sub: return "fb_sub(" + v + ", " + a + ")";
    case OpKind::Mul: return "fb_mul(" + v + ", " + a + ")";
    case OpKind::Div: return "fb_div(" + v + ", " + a + ")";
    case OpKind::Fill: return a;
    default: break;
  }
  FB_ASSERT(false, std::string("not a pointwise op in a chain: ") + op_name(op.kind));
}

}  // namespace

void emit_prelude(SourceWriter& w, const std::string& title) {
  w.line("// {}", title);
  w.line("// Emitted by fuseblock (src/cuda/emit_*.cpp) from a plan; compiled with NVRTC.");
  w.blank();
  for (const char* name : {"philox.h", "pointwise_math.h"}) {
    const char* text = embedded_source(name);
    FB_ASSERT(text != nullptr, std::string("embedded source missing: ") + name);
    w.line("// ---- {} ----", name);
    w.raw(text);
    w.blank();
  }
  w.line("// ---- helpers ----");
  w.raw(kHelpers);
  w.blank();
}

void emit_chain(SourceWriter& w, const std::vector<Op>& chain, const std::string& var, bool tf32_math) {
  for (const Op& op : chain) w.line("{} = {};  // {}", var, pw_call(op, var, tf32_math), op_name(op.kind));
}

float fold_fill_chain(const std::vector<Op>& chain) {
  FB_ASSERT(!chain.empty() && chain.front().kind == OpKind::Fill, "a fill-path chain starts with fill");
  float v = 0.0f;
  for (const Op& op : chain) v = eval_pointwise(op, v);
  return v;
}

DropoutConsts dropout_consts(const DropoutAttrs& d) {
  DropoutConsts c;
  if (d.is_identity()) return c;
  c.active = true;
  c.threshold = fb_keep_threshold(d.p);
  c.scale = fb_dropout_scale(d.p);
  return c;
}

}  // namespace fuseblock::cuda
