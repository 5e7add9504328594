// infer_ranges: an interval and a NaN flag for every op's value (see Range in ir.hpp).
//
// Without the assumption, the input may hold anything (NaN, +-inf). With it, the analysis
// assumes what the plan's guard checks per sample at run time: input and parameters finite, and
// |conv output| <= conv_bound, |GroupNorm weight and bias| <= conv_bound, prelu slopes finite. That is what lets
// simplify prove a chain constant: min(y, 0) then clamp(0, 1) is 0 for every y that is not NaN.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>

#include "ops/pointwise_eval.hpp"
#include "passes/passes.hpp"

namespace fuseblock {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// A bound past the storage type's largest value means the value may overflow to inf when it is
// stored (float32 for f32 blocks; 65504 for f16).
double to_stored_bound(double v, DType storage) {
  const double max = dtype_info(storage).max_finite;
  if (v > max) return kInf;
  if (v < -max) return -kInf;
  return v;
}

Range any_value() { return Range{-kInf, kInf, true}; }

// GroupNorm: |x - mean| * rstd <= sqrt(n) for a group of n values (biased variance), and the
// affine weight and bias are within the guard's bound. eps = 0 lets a constant group divide 0 by 0.
Range group_norm_range(const Op& op, const Range& in, int64_t group_size, double bound) {
  if (!in.is_finite()) return any_value();
  const double z = std::sqrt(static_cast<double>(group_size)) * (1.0 + 1e-3) + 1e-3;  // + rounding slack
  const double m = op.norm.affine ? z * bound + bound : z;
  Range r{-to_stored_bound(m, op.dtype), to_stored_bound(m, op.dtype), !(op.norm.eps > 0.0)};
  // inf + -inf could meet in the affine step where float32 (the compute type) overflows; an
  // overflow only in the rounding to a narrower storage type comes after it, and gives +-inf.
  if (!std::isfinite(to_stored_bound(m, DType::F32))) r.nan = true;
  return r;
}

// The hull of the op at the ends of the range and at its turning points inside.
Range pointwise_range(const Op& op, const Range& in) {
  Range out{kInf, -kInf, in.nan};
  if (op.kind == OpKind::Fill) {
    const float v = round_to(op.dtype, eval_pointwise(op, 0.0f));
    return std::isnan(v) ? Range{kInf, -kInf, true} : Range{v, v, false};
  }
  if (in.lo > in.hi) {  // only NaN comes in
    out.nan = true;
    return out;
  }
  // The ends, and the largest finite values next to infinite ends (x * 0 is NaN at inf only).
  std::vector<double> points{in.lo, in.hi};
  const double max = dtype_info(op.dtype).max_finite;
  if (std::isinf(in.lo) && in.hi > -max) points.push_back(-max);
  if (std::isinf(in.hi) && in.lo < max) points.push_back(max);
  bool non_monotone = false;
  for (double t : pointwise_turning_points(op))
    if (t > in.lo && t < in.hi) points.push_back(t), non_monotone = true;
  for (double x : points) {
    // The result as stored: rounding is monotone, so the hull of rounded values is the rounded hull.
    const float y = round_to(op.dtype, eval_pointwise(op, static_cast<float>(x)));
    if (std::isnan(y)) { out.nan = true; continue; }
    // Zeros keep their sign at the ends (lo prefers -0, hi +0), so simplify can tell a
    // constant -0 from zeros of both signs.
    if (y < out.lo || (y == out.lo && std::signbit(y))) out.lo = y;
    if (y > out.hi || (y == out.hi && !std::signbit(y))) out.hi = y;
  }
  // The dip's true bottom lies below the turning point's value, by a little (and by up to a step of
  // the storage type once rounded).
  const double slack = std::max(1e-6, 2 * dtype_info(op.dtype).epsilon);
  if (non_monotone && out.lo <= out.hi) out.lo -= slack * (1.0 + std::fabs(out.lo));
  // A NaN scalar argument poisons every element.
  const bool nan_arg = (op.pw.has_a && std::isnan(op.pw.a)) || (op.pw.has_b && std::isnan(op.pw.b));
  if (nan_arg) out.nan = true;
  // NaN input stays NaN through every pointwise op here (none maps NaN to a number).
  return out;
}

// prelu: x where x > 0, a * x elsewhere, with slopes a that are run-time data. Under the guard
// they are finite (guard_input_bound fails every sample otherwise), so a * x is any finite value
// that may overflow, and NaN only from a NaN input or -inf * 0. Without it a slope may be NaN or
// Inf, so every element <= 0 may become anything, NaN included.
Range prelu_range(const Range& in, bool slopes_finite) {
  if (in.lo > in.hi || in.lo > 0.0) return in;  // only NaN, or only x > 0: unchanged
  if (!slopes_finite) return any_value();
  if (in.lo == 0.0) return Range{-0.0, in.hi, in.nan};  // a * (+-0) is a zero of either sign
  return Range{-kInf, kInf, in.nan || std::isinf(in.lo)};
}

Range dropout_range(const Op& op, const Range& in) {
  const DropoutAttrs& d = op.dropout;
  if (d.is_identity()) return in;
  const double scale = 1.0 / static_cast<double>(static_cast<float>(1.0 - d.p));
  Range r = in;
  if (d.p >= 1.0) return Range{0.0, 0.0, in.nan || std::isinf(in.lo) || std::isinf(in.hi)};
  if (in.lo > in.hi) return r;
  r.lo = to_stored_bound(std::min(0.0, in.lo * scale), op.dtype);
  r.hi = to_stored_bound(std::max(0.0, in.hi * scale), op.dtype);
  if (std::isinf(in.lo) || std::isinf(in.hi)) r.nan = true;  // a dropped inf is inf * 0
  return r;
}

}  // namespace

Range op_range(const Op& op, const Range& in, bool assume_bounded_input, double conv_bound) {
  switch (op.kind) {
    case OpKind::Input: return any_value();
    // The per-(sample, channel) input is run-time data the guard does not check: any value, NaN
    // included, so a block with it never folds to a constant (nor takes the guarded fill path).
    case OpKind::Conv:
      return assume_bounded_input && !op.conv.channel_add ? Range{-conv_bound, conv_bound, false} : any_value();
    case OpKind::GroupNorm: {
      const int64_t group_size = numel(op.shape) / std::max<int64_t>(1, op.shape.at(0)) / op.norm.num_groups;
      return group_norm_range(op, in, group_size, conv_bound);
    }
    case OpKind::Dropout: return dropout_range(op, in);
    case OpKind::PRelu: return prelu_range(in, assume_bounded_input);
    default: return pointwise_range(op, in);
  }
}

Block infer_ranges(const Block& b, bool assume_bounded_input, double conv_bound) {
  Block r = b;
  r.assumes_bounded_input = assume_bounded_input;
  Range cur = any_value();
  for (Op& op : r.ops) {
    cur = op_range(op, cur, assume_bounded_input, conv_bound);
    op.range = cur;
  }
  return r;
}

}  // namespace fuseblock
