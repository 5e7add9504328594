// The float64 oracle (oracle.hpp): one naive loop per op, in the order PyTorch runs them.
#include "oracle/oracle.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

// The mask's definition; src/ is not on the oracle's include path, and nothing else from the
// backends is used.
#include "../../src/device_common/philox.h"

namespace fuseblock {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
// The smallest magnitude that float32 rounds to Inf: halfway between FLT_MAX and 2^128.
constexpr double kFloatOverflow = 0x1.ffffffp+127;
constexpr int64_t kMaxOutput = int64_t{1} << 22;
constexpr double kMaxMacs = 5e8;

double as_stored_float(double v) { return std::fabs(v) >= kFloatOverflow ? std::copysign(kInf, v) : v; }

// Round to nearest even with `precision` significant bits, `min_exp` the smallest normal
// exponent (below it the step stays 2^(min_exp - precision + 1): subnormals), and overflow past
// `max_finite`: v / step is an exact power-of-two scaling and nearbyint rounds ties to even.
double round_to_precision(double v, int precision, int min_exp, double max_finite) {
  if (!std::isfinite(v) || v == 0.0) return v;
  const double step = std::ldexp(1.0, std::max(std::ilogb(v), min_exp) - (precision - 1));
  const double r = std::nearbyint(v / step) * step;
  return std::fabs(r) > max_finite ? std::copysign(kInf, v) : r;
}
double f32(double scalar) { return static_cast<double>(static_cast<float>(scalar)); }

int64_t product(const Shape& s, size_t from) {
  int64_t n = 1;
  for (size_t i = from; i < s.size(); ++i) n *= s[i];
  return n;
}

// Advances a multi-index over `extent` in C order; false once it wraps around.
bool next_index(std::vector<int64_t>& idx, const std::vector<int64_t>& extent) {
  for (size_t d = idx.size(); d-- > 0;) {
    if (++idx[d] < extent[d]) return true;
    idx[d] = 0;
  }
  return false;
}

// PyTorch's ConvNd: out[n, co, o] = bias[co] + sum_{ci, k} w[co, ci, k] * x[n, ci, o * s - p + k * d].
std::vector<double> conv(const Pipeline& p, const Params& params, const Tensor& x) {
  const ConvAttrs& a = p.conv;
  const size_t dims = static_cast<size_t>(a.dims);
  if (p.input_shape.size() != dims + 2 || p.output_shape.size() != dims + 2)
    throw std::invalid_argument("oracle: conv shapes do not match its dims");
  const int64_t N = p.input_shape[0], Cin = p.input_shape[1], Cout = p.output_shape[1];
  std::vector<int64_t> in_ext(p.input_shape.begin() + 2, p.input_shape.end());
  std::vector<int64_t> out_ext(p.output_shape.begin() + 2, p.output_shape.end());
  std::vector<int64_t> k_ext(a.kernel.begin(), a.kernel.begin() + a.dims);
  const int64_t in_spatial = product(p.input_shape, 2), out_spatial = product(p.output_shape, 2);
  int64_t taps = 1;
  for (int64_t k : k_ext) taps *= k;
  if (static_cast<double>(N * Cout * out_spatial) * static_cast<double>(Cin * taps) > kMaxMacs)
    throw std::invalid_argument("oracle: conv too large for the naive oracle");
  if (params.conv_weight.numel() != Cout * Cin * taps) throw std::invalid_argument("oracle: conv.weight size");
  if (a.bias && params.conv_bias.numel() != Cout) throw std::invalid_argument("oracle: conv.bias size");

  std::vector<double> out(static_cast<size_t>(N * Cout * out_spatial));
  if (out.empty()) return out;
  const bool any_kernel = taps > 0 && in_spatial > 0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t co = 0; co < Cout; ++co) {
      std::vector<int64_t> o(dims, 0);
      int64_t o_flat = 0;
      do {
        double acc = a.bias ? static_cast<double>(params.conv_bias.data()[co]) : 0.0;
        for (int64_t ci = 0; ci < Cin && any_kernel; ++ci) {
          std::vector<int64_t> k(dims, 0);
          int64_t k_flat = 0;
          do {
            bool inside = true;
            int64_t in_flat = 0;
            for (size_t d = 0; d < dims; ++d) {
              const int64_t pos = o[d] * a.stride[d] - a.padding[d] + k[d] * a.dilation[d];
              inside = inside && pos >= 0 && pos < in_ext[d];
              in_flat = in_flat * in_ext[d] + pos;
            }
            if (inside) {
              const double w = params.conv_weight.data()[(co * Cin + ci) * taps + k_flat];
              const double v = x.data()[(n * Cin + ci) * in_spatial + in_flat];
              acc += w * v;
            }
            ++k_flat;
          } while (next_index(k, k_ext));
        }
        out[static_cast<size_t>((n * Cout + co) * out_spatial + o_flat)] = oracle_round(acc, p.types.storage);
        ++o_flat;
      } while (next_index(o, out_ext));
    }
  return out;
}

// PyTorch's GroupNorm: per (sample, group), (v - mean) / sqrt(biased var + eps) * gamma + beta.
void group_norm(const Pipeline& p, const Params& params, std::vector<double>& v, OracleStats& stats) {
  const GroupNormAttrs& g = *p.norm;
  const int64_t N = p.output_shape[0], C = p.output_shape[1], S = product(p.output_shape, 2);
  if (g.num_groups <= 0 || C % g.num_groups != 0) throw std::invalid_argument("oracle: bad group count");
  if (g.affine && (params.norm_weight.numel() != C || params.norm_bias.numel() != C))
    throw std::invalid_argument("oracle: norm.weight / norm.bias size");
  const int64_t per_group = C / g.num_groups * S;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t grp = 0; grp < g.num_groups; ++grp) {
      double* first = v.data() + (n * C + grp * (C / g.num_groups)) * S;
      double sum = 0;
      for (int64_t i = 0; i < per_group; ++i) sum += first[i];
      const double mean = sum / static_cast<double>(per_group);
      double sq = 0;
      for (int64_t i = 0; i < per_group; ++i) sq += (first[i] - mean) * (first[i] - mean);
      const double rstd = 1.0 / std::sqrt(sq / static_cast<double>(per_group) + g.eps);
      for (int64_t i = 0; i < per_group; ++i) {
        const int64_t c = grp * (C / g.num_groups) + i / S;
        const double gamma = g.affine ? static_cast<double>(params.norm_weight.data()[c]) : 1.0;
        const double beta = g.affine ? static_cast<double>(params.norm_bias.data()[c]) : 0.0;
        const double terms = std::fabs(first[i] * rstd * gamma) + std::fabs(beta - mean * rstd * gamma);
        if (std::isfinite(terms)) stats.norm_terms = std::max(stats.norm_terms, terms);
        first[i] = oracle_round((first[i] - mean) * rstd * gamma + beta, p.types.storage);
      }
    }
}

// PyTorch's InstanceNormNd (track_running_stats=False): per (sample, channel), over its own
// spatial elements, (v - mean) / sqrt(biased var + eps) * gamma + beta. Written apart from
// group_norm above, which the backend's lowering (num_groups = C) makes it equal to.
void instance_norm(const Pipeline& p, const Params& params, std::vector<double>& v, OracleStats& stats) {
  const GroupNormAttrs& g = *p.norm;
  const int64_t N = p.output_shape[0], C = p.output_shape[1], S = product(p.output_shape, 2);
  if (g.affine && (params.norm_weight.numel() != C || params.norm_bias.numel() != C))
    throw std::invalid_argument("oracle: norm.weight / norm.bias size");
  for (int64_t nc = 0; nc < N * C; ++nc) {
    double* plane = v.data() + nc * S;
    double mean = 0;
    for (int64_t i = 0; i < S; ++i) mean += plane[i] / static_cast<double>(S);
    double var = 0;
    for (int64_t i = 0; i < S; ++i) var += (plane[i] - mean) * (plane[i] - mean) / static_cast<double>(S);
    const int64_t c = nc % C;
    const double gamma = g.affine ? static_cast<double>(params.norm_weight.data()[c]) : 1.0;
    const double beta = g.affine ? static_cast<double>(params.norm_bias.data()[c]) : 0.0;
    const double scale = gamma / std::sqrt(var + g.eps);
    for (int64_t i = 0; i < S; ++i) {
      const double terms = std::fabs(plane[i] * scale) + std::fabs(beta - mean * scale);
      if (std::isfinite(terms)) stats.norm_terms = std::max(stats.norm_terms, terms);
      plane[i] = oracle_round((plane[i] - mean) * scale + beta, p.types.storage);
    }
  }
}

// nn.PReLU (F.prelu's kernel): x if x > 0, else weight[c] * x, weight[0] for every channel when
// it has one element. NaN > 0 is false, so NaN gives weight * NaN = NaN.
void prelu(const Pipeline& p, const Op& op, const Params& params, std::vector<double>& v) {
  const int64_t C = p.output_shape[1], S = product(p.output_shape, 2);
  const size_t k = static_cast<size_t>(op.pw.param_index);
  if (k >= params.prelu_weight.size()) throw std::invalid_argument("oracle: prelu weight missing");
  const Tensor& w = params.prelu_weight[k];
  if (w.numel() != 1 && w.numel() != C) throw std::invalid_argument("oracle: prelu weight size");
  for (size_t i = 0; i < v.size(); ++i) {
    const int64_t c = static_cast<int64_t>(i) / S % C;
    const double a = static_cast<double>(w.data()[w.numel() == 1 ? 0 : c]);
    v[i] = oracle_round(v[i] > 0.0 ? v[i] : a * v[i], p.types.storage);
  }
}

// conv(x) + temb[:, :, None, ...] as PyTorch eager computes it: the stored conv output plus the
// added value, in double, stored as oracle_round stores every value (bf16/f16 rounded).
void add_per_sample_channel(const Pipeline& p, const Tensor& add, std::vector<double>& v) {
  const int64_t N = p.output_shape[0], C = p.output_shape[1], S = product(p.output_shape, 2);
  if (add.shape() != Shape{N, C}) throw std::invalid_argument("oracle: the per-(sample, channel) input is not [N, C_out]");
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const double a = add.data()[n * C + c];
      for (int64_t i = 0; i < S; ++i) {
        double& e = v[static_cast<size_t>((n * C + c) * S + i)];
        e = oracle_round(e + a, p.types.storage);
      }
    }
}

void dropout(const Pipeline& p, const DropoutAttrs& d, std::vector<double>& v) {
  if (!d.training || d.p == 0.0) return;
  const fb_u32 threshold = fb_keep_threshold(d.p);
  const double scale = static_cast<double>(fb_dropout_scale(d.p));
  for (size_t i = 0; i < v.size(); ++i) {
    const fb_u32x4 bits = fb_dropout_bits(d.seed, d.offset, i / 4);
    const double mask = bits.v[i % 4] < threshold ? 1.0 : 0.0;
    v[i] = oracle_round(v[i] * mask * scale, p.types.storage);
  }
}

double rms_of_finite(const std::vector<double>& v) {
  double s = 0;
  int64_t n = 0;
  for (double e : v)
    if (std::isfinite(e)) s += e * e, ++n;
  return n ? std::sqrt(s / static_cast<double>(n)) : 0.0;
}

}  // namespace

double oracle_pointwise(const Op& op, double x) {
  const double a = f32(op.pw.a), b = f32(op.pw.b);
  const bool nan_x = std::isnan(x);
  switch (op.kind) {
    case OpKind::Minimum: return (nan_x || std::isnan(a)) ? kNaN : std::min(x, a);
    case OpKind::Maximum: return (nan_x || std::isnan(a)) ? kNaN : std::max(x, a);
    case OpKind::Clamp:
    case OpKind::Hardtanh: {
      if (nan_x) return kNaN;
      if ((op.pw.has_a && std::isnan(a)) || (op.pw.has_b && std::isnan(b))) return kNaN;
      double r = x;
      if (op.pw.has_a) r = std::max(r, a);
      if (op.pw.has_b) r = std::min(r, b);  // applied last: min > max gives max
      return r;
    }
    case OpKind::Relu: return nan_x ? kNaN : (x > 0 ? x : 0.0);
    case OpKind::LeakyRelu: return x > 0 ? x : x * a;
    case OpKind::Gelu:
      if (op.pw.tanh_approx) {
        const double k = std::sqrt(2.0 / M_PI);
        return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
      }
      return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    case OpKind::Silu: return x / (1.0 + std::exp(-x));
    case OpKind::Sigmoid: return 1.0 / (1.0 + std::exp(-x));
    case OpKind::Tanh: return std::tanh(x);
    case OpKind::Mish: return x * std::tanh(std::log1p(std::exp(x)));
    case OpKind::Hardswish: return nan_x ? kNaN : x * std::min(std::max(x + 3.0, 0.0), 6.0) / 6.0;
    case OpKind::Softplus: return x * a > b ? x : std::log1p(std::exp(x * a)) / a;
    case OpKind::Elu: return x > 0 ? x : std::expm1(x) * a;
    case OpKind::Add: return x + a;
    case OpKind::Sub: return x - a;
    case OpKind::Mul: return x * a;
    case OpKind::Div: return x / a;
    case OpKind::Fill: return a;
    default: break;
  }
  throw std::invalid_argument(std::string("oracle: not a pointwise op: ") + op_name(op.kind));
}

double oracle_round(double v, DType storage) {
  switch (storage) {
    case DType::F32: return as_stored_float(v);
    case DType::BF16: return round_to_precision(v, 8, -126, 0x1.fep127);
    case DType::F16: return round_to_precision(v, 11, -14, 65504.0);
  }
  throw std::invalid_argument("oracle: unknown dtype");
}

std::vector<double> oracle_forward(const Pipeline& p, const Params& params, const Tensor& x, OracleStats* stats_out,
                                   const Tensor* channel_add) {
  if (p.channel_add() != (channel_add != nullptr))
    throw std::invalid_argument("oracle: the per-(sample, channel) input is given iff the pipeline adds it");
  if (x.shape() != p.input_shape) throw std::invalid_argument("oracle: input shape differs from the pipeline's");
  if (numel(p.output_shape) > kMaxOutput) throw std::invalid_argument("oracle: output too large");
  OracleStats stats;
  std::vector<double> v;
  if (p.computes_conv) {
    v = conv(p, params, x);
    if (channel_add) add_per_sample_channel(p, *channel_add, v);
    if (p.norm && p.norm->instance)
      instance_norm(p, params, v, stats);
    else if (p.norm)
      group_norm(p, params, v, stats);
  } else {
    v.assign(static_cast<size_t>(numel(p.output_shape)), kNaN);
  }
  if (p.computes_conv) stats.magnitude = rms_of_finite(v);
  for (const Op& op : p.chain) {
    if (op.kind == OpKind::PRelu)
      prelu(p, op, params, v);
    else if (op.kind == OpKind::Dropout)  // before the chain's end: the ops after it see its result
      dropout(p, op.dropout, v);
    else
      for (double& e : v) e = oracle_round(oracle_pointwise(op, e), p.types.storage);
    stats.magnitude = std::max(stats.magnitude, rms_of_finite(v));
  }
  dropout(p, p.dropout, v);
  stats.magnitude = std::max(stats.magnitude, rms_of_finite(v));
  if (stats_out) *stats_out = stats;
  return v;
}

}  // namespace fuseblock
