// Parameter shape checks and the guard's input bound (include/fuseblock/params.hpp).
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "fuseblock/error.hpp"
#include "fuseblock/params.hpp"
#include "params/param_slots.hpp"

namespace fuseblock {

namespace detail {

std::vector<ParamSlot> param_slots(const Pipeline& p) {
  const ConvAttrs& c = p.conv;
  FB_ASSERT(c.dims >= 1 && c.dims <= 3, "conv dims " + std::to_string(c.dims));
  FB_ASSERT(c.in_channels > 0 && c.out_channels > 0,
            "conv channels not inferred: in " + std::to_string(c.in_channels) + ", out " + std::to_string(c.out_channels));
  Shape w{c.out_channels, c.in_channels};
  for (int d = 0; d < c.dims; ++d) w.push_back(c.kernel[static_cast<size_t>(d)]);
  using Need = ParamSlot::Need;
  Need norm_need = (p.norm && p.norm->affine) ? Need::Required : Need::Optional;
  const DType st = p.types.storage, norm = p.types.norm_param_type();
  std::vector<ParamSlot> slots = {
      {"conv.weight", w, Need::Required, &Params::conv_weight, -1, st},
      {"conv.bias", {c.out_channels}, c.bias ? Need::Required : Need::Absent, &Params::conv_bias, -1, st},
      {"norm.weight", {c.out_channels}, norm_need, &Params::norm_weight, -1, norm},
      {"norm.bias", {c.out_channels}, norm_need, &Params::norm_bias, -1, norm},
  };
  for (const Op& op : p.chain)
    if (op.kind == OpKind::PRelu)
      slots.push_back({prelu_weight_key(op.pw), {op.pw.num_parameters}, Need::Required, nullptr, op.pw.param_index, st});
  return slots;
}

const Tensor& ParamSlot::of(const Params& p) const {
  static const Tensor kNone;
  if (member) return p.*member;
  const size_t i = static_cast<size_t>(prelu_index);
  return i < p.prelu_weight.size() ? p.prelu_weight[i] : kNone;
}

Tensor& ParamSlot::of(Params& p) const {
  if (member) return p.*member;
  const size_t i = static_cast<size_t>(prelu_index);
  if (p.prelu_weight.size() <= i) p.prelu_weight.resize(i + 1);
  return p.prelu_weight[i];
}

}  // namespace detail

void check_params(const Pipeline& p, const Params& params) {
  using Need = detail::ParamSlot::Need;
  for (const detail::ParamSlot& s : detail::param_slots(p)) {
    const Tensor& t = s.of(params);
    bool empty = t.numel() == 0 && t.shape().empty();  // a default-constructed Tensor: not given
    if (s.need == Need::Absent) {
      if (!empty)
        throw UserError(s.name + " has shape " + shape_str(t.shape()) +
                            ", but the block has no such parameter (the conv has bias=false)",
                        "drop the tensor, or give the conv bias=true");
      continue;
    }
    if (empty) {
      if (s.need == Need::Optional) continue;
      throw UserError(s.name + " is missing, expected shape " + shape_str(s.shape));
    }
    if (t.shape() != s.shape)
      throw UserError(s.name + " has shape " + shape_str(t.shape()) + ", expected " + shape_str(s.shape));
    // Every value is a float32 value, so any tensor serves an f32 slot; a bf16 or f16 slot needs its
    // values in its own type, as a PyTorch module moved with .to(dtype) has them.
    if (s.dtype != DType::F32 && t.dtype() != s.dtype) {
      const bool norm = s.member == &Params::norm_weight || s.member == &Params::norm_bias;
      throw UserError(fmt::format("{} holds {} values, but the block stores {}", s.name, dtype_name(t.dtype()),
                                  dtype_name(s.dtype)),
                      fmt::format("round it first (Tensor::round_to(DType::{})); init_params and load_params do{}",
                                  dtype_info(s.dtype).safetensors_name,
                                  norm && t.dtype() == DType::F32
                                      ? "; or keep the norm in float32 with the norm's param_dtype=f32"
                                      : ""));
    }
  }
}

// Why this bound is sound. Output channel o of the convolution at any position is
//     y = bias[o] + sum_{i,k} w[o,i,k] * x[...]          (zero padding adds terms x = 0),
// so for every input with |x| <= M:   |y| <= |bias[o]| + M * sum_{i,k} |w[o,i,k]|.
// Requiring that to be <= B for every channel gives M <= (B - |bias[o]|) / sum|w[o]|, and the
// largest M that satisfies all channels is the minimum of those. The bound holds in real
// arithmetic; float32/TF32 rounding of the conv adds a relative error of order K * 2^-11, which the
// analysis' bound B (1e12 by default, against FLT_MAX ~ 3.4e38) absorbs many times over.
// GroupNorm parameters do not enter the bound, but a non-finite value anywhere in the parameters
// voids the analysis, so the result is NaN and every sample fails the guard. A channel whose bias
// alone exceeds B cannot meet the bound for any input: the result is then -inf (again every
// sample fails). A channel with all-zero weights constrains nothing (its output is the bias), so
// all-zero weights give +inf: every finite input passes (the guard checks finiteness itself).
double guard_input_bound(const Params& params, double conv_output_bound) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (const Tensor* t : {&params.conv_weight, &params.conv_bias, &params.norm_weight, &params.norm_bias})
    for (float v : t->vec())
      if (!std::isfinite(v)) return nan;
  // infer_ranges under the guard takes prelu slopes as any finite value: a NaN or Inf slope
  // (NaN * x, Inf * 0) is outside what it proved.
  for (const Tensor& t : params.prelu_weight)
    for (float v : t.vec())
      if (!std::isfinite(v)) return nan;
  if (std::isnan(conv_output_bound)) return nan;
  // infer_ranges also assumed the GroupNorm affine parameters within the bound (so the affine
  // step cannot overflow or meet inf - inf); larger ones let no input pass.
  for (const Tensor* t : {&params.norm_weight, &params.norm_bias})
    for (float v : t->vec())
      if (std::fabs(static_cast<double>(v)) > conv_output_bound) return -inf;

  const Tensor& w = params.conv_weight;
  int64_t c_out = w.dim() > 0 ? w.size(0) : 0;
  if (c_out == 0) return inf;
  int64_t per_channel = w.numel() / c_out;
  FB_ASSERT(per_channel * c_out == w.numel(), "conv.weight shape " + shape_str(w.shape()));
  FB_ASSERT(params.conv_bias.numel() == 0 || params.conv_bias.numel() == c_out,
            "conv.bias has shape " + shape_str(params.conv_bias.shape()) + " for " + std::to_string(c_out) + " channels");

  double m = inf;
  for (int64_t o = 0; o < c_out; ++o) {
    double abs_sum = 0.0;  // float -> double sums of up to millions of terms: error ~1e-10 relative
    const float* row = w.data() + o * per_channel;
    for (int64_t i = 0; i < per_channel; ++i) abs_sum += std::fabs(static_cast<double>(row[i]));
    double b = params.conv_bias.numel() ? std::fabs(static_cast<double>(params.conv_bias.data()[o])) : 0.0;
    if (b > conv_output_bound) return -inf;
    if (abs_sum > 0.0) m = std::min(m, (conv_output_bound - b) / abs_sum);
  }
  return m;
}

}  // namespace fuseblock
