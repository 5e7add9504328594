// The shared epilogue (emit_epilogue.hpp).
#include "cuda/codegen/emit_epilogue.hpp"

#include "cuda/codegen/emit_common.hpp"
#include "device_common/philox.h"
#include "fuseblock/error.hpp"

namespace fuseblock::cuda {
namespace {

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

bool draws(const DropoutAttrs& d) { return !d.is_identity(); }

// r = x * mask * scale for the block's one active dropout: the keep test against the CPU's
// threshold, an integer compare, so both backends keep the same elements.
std::string dropout_statement(const DropoutAttrs& d) {
  return fmt::format("r = fb_dropout_apply(r, draw < {}u, {});", fb_keep_threshold(d.p),
                     float_literal(fb_dropout_scale(d.p)));
}

}  // namespace

const DropoutAttrs* active_dropout(const Pipeline& p) {
  for (const Op& op : p.chain)
    if (op.kind == OpKind::Dropout && draws(op.dropout)) return &op.dropout;
  return draws(p.dropout) ? &p.dropout : nullptr;
}

DropoutAttrs drawn_dropout(const Pipeline& p) {
  if (const DropoutAttrs* d = active_dropout(p)) return *d;
  DropoutAttrs none;
  none.p = 0.0;
  return none;
}

int active_dropout_count(const Pipeline& p) {
  int k = draws(p.dropout) ? 1 : 0;
  for (const Op& op : p.chain) k += op.kind == OpKind::Dropout && draws(op.dropout);
  return k;
}

size_t element_dependent_op(const Pipeline& p) {
  for (size_t i = 0; i < p.chain.size(); ++i) {
    const Op& op = p.chain[i];
    if (op.kind == OpKind::PRelu || (op.kind == OpKind::Dropout && draws(op.dropout))) return i;
  }
  return p.chain.size();
}

int prelu_count(const Pipeline& p) {
  int k = 0;
  for (const Op& op : p.chain) k += op.kind == OpKind::PRelu;
  return k;
}

void emit_epilogue_fn(SourceWriter& w, const Pipeline& p, const EpilogueOptions& o) {
  FB_ASSERT(active_dropout_count(p) <= 1, "the CUDA epilogue draws one dropout mask (cpu_only_forms)");
  const bool rounds = p.types.rounds();
  w.line("// One element after the conv{}: the chain and dropout, each result rounded to the storage type where",
         p.norm ? " and its norm" : "");
  w.line("// eager PyTorch stores it (src/cpu/epilogue.cpp); returned as stored.");
  w.open(fmt::format("__device__ __forceinline__ fb_st {}(float v, int c, fb_u32 draw{})", o.name, epilogue_params(p)));
  if (rounds && p.norm) w.line("// The norm's output as eager stores it.");
  w.line("float r = {};", rounds && p.norm ? "fb_round(v)" : "v");
  int prelu = 0;
  FB_ASSERT(o.first_op <= element_dependent_op(p), "the epilogue's folded prefix holds an element-dependent op");
  for (size_t i = o.first_op; i < p.chain.size(); ++i) {
    const Op& op = p.chain[i];
    if (op.kind == OpKind::Dropout) {
      if (!draws(op.dropout)) continue;  // eval or p = 0: the identity
      w.line("{}  // dropout", dropout_statement(op.dropout));
    } else if (op.kind == OpKind::PRelu) {
      // nn.PReLU: x > 0 ? x : slope * x (fb_leaky_relu's formula), its slope per channel or one.
      w.line("r = fb_leaky_relu(r, fb_ld(__ldg(prelu{} + {})));  // prelu", prelu++,
             op.pw.num_parameters == 1 ? "0" : "c");
    } else {
      w.line("r = {};  // {}", pw_call(op, "r", o.tf32_math), op_name(op.kind));
    }
    if (rounds) w.line("r = fb_round(r);");
  }
  if (draws(p.dropout)) w.line("{}  // dropout", dropout_statement(p.dropout));
  w.line("return fb_to_st(r);");
  w.close();
}

std::string epilogue_call(const Pipeline& p, const std::string& value, const std::string& channel,
                          const std::string& draw, const std::string& fn) {
  return fn + "(" + value + ", " + channel + ", " + draw + epilogue_args(p) + ")";
}

std::string epilogue_args(const Pipeline& p) {
  std::string s;
  for (int k = 0; k < prelu_count(p); ++k) s += fmt::format(", prelu{}", k);
  return s;
}

std::string epilogue_params(const Pipeline& p) {
  std::string s;
  for (int k = 0; k < prelu_count(p); ++k) s += fmt::format(", const fb_st* __restrict__ prelu{}", k);
  return s;
}

std::string epilogue_random_state(const Pipeline& p) {
  if (!active_dropout(p)) return "";
  return "const unsigned long long seed = dropout_state[0], offset = dropout_state[1];";
}

std::string epilogue_draws_decl(const Pipeline& p, const std::string& quad) {
  if (!active_dropout(p)) return "";
  return "const fb_u32x4 bits = fb_dropout_bits(seed, offset, (unsigned long long)(" + quad + "));";
}

std::string epilogue_draw(const Pipeline& p, const std::string& k) {
  return active_dropout(p) ? "bits.v[" + k + "]" : "0u";
}

void emit_store_quad_fn(SourceWriter& w, DType storage) {
  const bool f32 = storage == DType::F32;
  w.line("// The flat output's 4-element block q from o[0..3], element k written where 0 <= first + k < len");
  w.line("// (the block starts at index `first` of a run of len elements); a whole block is one streaming");
  w.line("// vector store.");
  w.line("template <class I>");
  w.line("__device__ __forceinline__ void fb_store_quad(fb_st* __restrict__ y, long long q, const fb_st (&o)[4],");
  w.line("                                              I first, I len) {{");
  w.line("  if (first >= 0 && first + 3 < len) {{");
  if (f32) {
    w.line("    __stcs(reinterpret_cast<float4*>(y) + q, make_float4(o[0], o[1], o[2], o[3]));");
  } else {
    w.line("    __stcs(reinterpret_cast<uint2*>(y) + q,");
    w.line("           make_uint2(o[0] | (unsigned)o[1] << 16, o[2] | (unsigned)o[3] << 16));");
  }
  w.line("  }} else {{");
  w.line("#pragma unroll");
  w.line("    for (int k = 0; k < 4; ++k)");
  w.line("      if (first + k >= 0 && first + k < len) {};",
         f32 ? "__stcs(y + 4 * q + k, o[k])" : "y[4 * q + k] = o[k]");
  w.line("  }}");
  w.line("}}");
  w.blank();
}

}  // namespace fuseblock::cuda
