// simplify: rewrites the pointwise chain using the ranges infer_ranges proved. Every rewrite is
// exact for every value the ranges allow, NaN and Inf included (the sign of a zero aside: see
// drop_if_identity).
#include <cmath>

#include "passes/passes.hpp"

namespace fuseblock {
namespace {

float f32(double v) { return static_cast<float>(v); }

// An op that returns its input bit for bit, for every input: x*1, x/1, x-0, x+(-0), a clamp
// with no bound. (x + 0 is not one: -0 + 0 is +0.)
bool is_exact_identity(const Op& op) {
  const PointwiseAttrs& pw = op.pw;
  switch (op.kind) {
    case OpKind::Mul:
    case OpKind::Div: return f32(pw.a) == 1.0f;
    case OpKind::Sub: return f32(pw.a) == 0.0f && !std::signbit(pw.a);
    case OpKind::Add: return f32(pw.a) == 0.0f && std::signbit(pw.a);
    case OpKind::Clamp:
    case OpKind::Hardtanh: return !pw.has_a && !pw.has_b;
    default: return false;
  }
}

// An op that changes no value the input range allows (NaN passes through all of them).
// relu on a range >= 0 may turn -0 into +0: equal values, so it is dropped too.
bool is_identity_on(const Op& op, const Range& in) {
  if (in.lo > in.hi) return false;
  const PointwiseAttrs& pw = op.pw;
  const bool nan_arg = (pw.has_a && std::isnan(pw.a)) || (pw.has_b && std::isnan(pw.b));
  if (nan_arg) return false;
  switch (op.kind) {
    case OpKind::Minimum: return in.hi <= f32(pw.a);
    case OpKind::Maximum: return in.lo >= f32(pw.a);
    case OpKind::Relu: return in.lo >= 0.0;
    case OpKind::PRelu: return in.lo > 0.0;  // a zero would meet the slope (a NaN slope: NaN)
    case OpKind::Clamp:
    case OpKind::Hardtanh:
      return (!pw.has_a || in.lo >= f32(pw.a)) && (!pw.has_b || in.hi <= f32(pw.b)) &&
             !(pw.has_a && pw.has_b && f32(pw.a) > f32(pw.b));
    default: return false;
  }
}

Op make_fill(const Op& replaced, float value) {
  Op fill;
  fill.kind = OpKind::Fill;
  fill.loc = replaced.loc;
  fill.dtype = replaced.dtype;
  fill.pw.a = value;
  fill.pw.has_a = true;
  fill.shape = replaced.shape;
  return fill;
}

// One rewrite of the last op of `ops` (whose prefix is already simplified, with its ranges),
// or false when none applies. Only the last op and the one before it can change: the ranges
// flow forward, so nothing after an op decides what happens to it.
bool rewrite_last(std::vector<Op>& ops, bool bounded, double conv_bound) {
  if (ops.size() < 2) return false;
  Op& op = ops.back();
  Op& prev = ops[ops.size() - 2];
  const Range& in = prev.range;
  // Dropout is x * mask * scale: the identity when off, and on a constant zero (no NaN, no
  // Inf) every element stays zero whatever the mask.
  if (op.kind == OpKind::Dropout && (op.dropout.is_identity() || (in.is_constant() && in.lo == 0.0))) {
    ops.pop_back();
    return true;
  }
  if (!is_pointwise(op.kind)) return false;
  if (op.kind != OpKind::Fill) {
    if (op.range.is_constant()) {
      // A constant zero whose ends disagree on the sign (y * 0 over y of both signs) is +0.
      const double v = (op.range.lo == 0.0 && std::signbit(op.range.lo) != std::signbit(op.range.hi)) ? 0.0 : op.range.lo;
      op = make_fill(op, f32(v));
      op.range = op_range(op, in, bounded, conv_bound);
      return true;
    }
    if (op.range.nan && op.range.lo > op.range.hi) {  // NaN whatever comes in
      op = make_fill(op, std::nanf(""));
      op.range = op_range(op, in, bounded, conv_bound);
      return true;
    }
  }
  if (is_exact_identity(op) || is_identity_on(op, in)) {
    ops.pop_back();
    return true;
  }
  if ((op.kind == OpKind::Minimum || op.kind == OpKind::Maximum) && prev.kind == op.kind &&
      !std::isnan(op.pw.a) && !std::isnan(prev.pw.a)) {
    prev.pw.a = op.kind == OpKind::Minimum ? std::fmin(prev.pw.a, op.pw.a) : std::fmax(prev.pw.a, op.pw.a);
    ops.pop_back();
    // prev is now the last op; its input is unchanged, its own range is not.
    prev.range = op_range(prev, ops.size() >= 2 ? ops[ops.size() - 2].range : Range{}, bounded, conv_bound);
    return true;
  }
  return false;
}

}  // namespace

// Each op is appended to the simplified prefix with its range from the prefix's last op, then
// rewritten until no rule applies. Every rewrite removes an op or turns one into a Fill (which
// no rule rewrites again), so the walk does O(ops) work; re-running infer_ranges after every
// rewrite, as this pass once did, made planning quadratic in the chain's length.
Block simplify(const Block& b, double conv_bound) {
  Block r = b;
  const bool bounded = r.assumes_bounded_input;
  std::vector<Op> ops;
  ops.reserve(r.ops.size());
  for (Op& op : r.ops) {
    if (!ops.empty()) op.range = op_range(op, ops.back().range, bounded, conv_bound);
    ops.push_back(std::move(op));
    while (rewrite_last(ops, bounded, conv_bound)) {
    }
  }
  r.ops = std::move(ops);
  return r;
}

}  // namespace fuseblock
