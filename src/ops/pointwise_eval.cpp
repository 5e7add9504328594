#include "ops/pointwise_eval.hpp"

#include <math.h>

#include "device_common/pointwise_math.h"

namespace fuseblock {

float eval_pointwise(const Op& op, float x) {
  const float a = static_cast<float>(op.pw.a), b = static_cast<float>(op.pw.b);
  switch (op.kind) {
    case OpKind::Minimum: return fb_minimum(x, a);
    case OpKind::Maximum: return fb_maximum(x, a);
    case OpKind::Clamp:
    case OpKind::Hardtanh: return fb_clamp(x, op.pw.has_a, a, op.pw.has_b, b);
    case OpKind::Relu: return fb_relu(x);
    case OpKind::LeakyRelu: return fb_leaky_relu(x, a);
    case OpKind::Gelu: return op.pw.tanh_approx ? fb_gelu_tanh(x) : fb_gelu_erf(x);
    case OpKind::Silu: return fb_silu(x);
    case OpKind::Sigmoid: return fb_sigmoid(x);
    case OpKind::Tanh: return fb_tanh(x);
    case OpKind::Mish: return fb_mish(x);
    case OpKind::Hardswish: return fb_hardswish(x);
    case OpKind::Softplus: return fb_softplus(x, a, b);
    case OpKind::Elu: return fb_elu(x, a);
    case OpKind::Add: return fb_add(x, a);
    case OpKind::Sub: return fb_sub(x, a);
    case OpKind::Mul: return fb_mul(x, a);
    case OpKind::Div: return fb_div(x, a);
    case OpKind::Fill: return a;
    case OpKind::PRelu: FB_ASSERT(false, "prelu needs its slope: eval_prelu");
    default: break;
  }
  FB_ASSERT(false, std::string("not a pointwise op: ") + op_name(op.kind));
}

std::vector<double> pointwise_turning_points(const Op& op) {
  switch (op.kind) {
    // Minima found numerically; a range only needs a point inside each dip, since the hull
    // also takes the value there (and widens by a little, see infer_ranges).
    case OpKind::Gelu: return {op.pw.tanh_approx ? -0.7517915 : -0.7517916};
    case OpKind::Silu: return {-1.2784645};
    case OpKind::Mish: return {-1.1924};
    case OpKind::Hardswish: return {-1.5};
    case OpKind::LeakyRelu: return {0.0};  // a negative slope makes it non-monotone at 0
    case OpKind::Elu: return {0.0};  // so does a negative alpha
    default: return {};
  }
}

}  // namespace fuseblock
