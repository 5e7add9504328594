// Pipelines, parameters and inputs built by hand for backend tests (no parser involved), and
// a one-line description of a pipeline for repro messages.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "fuseblock/ir.hpp"
#include "fuseblock/params.hpp"
#include "fuseblock/plan.hpp"
#include "fuseblock/tensor.hpp"

namespace fbtest {

using namespace fuseblock;

struct ConvSpec {
  int dims = 3;
  int64_t batch = 2, c_in = 3, c_out = 4;
  std::vector<int64_t> in_spatial{5, 6, 7};
  std::vector<int64_t> kernel{3, 3, 3}, stride{1, 1, 1}, padding{0, 0, 0}, dilation{1, 1, 1};
  bool bias = true;
};

inline int64_t conv_out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  const int64_t span = in + 2 * p - d * (k - 1) - 1;
  return span < 0 ? -1 : span / s + 1;
}

// False when the kernel does not fit (PyTorch would raise).
inline bool conv_fits(const ConvSpec& c) {
  for (int d = 0; d < c.dims; ++d)
    if (conv_out_size(c.in_spatial[d], c.kernel[d], c.stride[d], c.padding[d], c.dilation[d]) < 1) return false;
  return true;
}

inline Pipeline make_pipeline(const ConvSpec& c, std::optional<GroupNormAttrs> norm, std::vector<Op> chain = {},
                              DropoutAttrs dropout = {0.0, false, 0, 0}) {
  Pipeline p;
  p.input_shape = {c.batch, c.c_in};
  p.output_shape = {c.batch, c.c_out};
  p.conv.dims = c.dims;
  p.conv.in_channels = c.c_in;
  p.conv.out_channels = c.c_out;
  p.conv.bias = c.bias;
  for (int d = 0; d < c.dims; ++d) {
    p.conv.kernel[d] = c.kernel[d];
    p.conv.stride[d] = c.stride[d];
    p.conv.padding[d] = c.padding[d];
    p.conv.dilation[d] = c.dilation[d];
    p.input_shape.push_back(c.in_spatial[d]);
    p.output_shape.push_back(conv_out_size(c.in_spatial[d], c.kernel[d], c.stride[d], c.padding[d], c.dilation[d]));
  }
  p.computes_conv = true;
  p.norm = norm;
  p.chain = std::move(chain);
  p.dropout = dropout;
  return p;
}

inline GroupNormAttrs group_norm(int64_t groups, bool affine = true, double eps = 1e-5) {
  GroupNormAttrs g;
  g.num_groups = groups;
  g.affine = affine;
  g.eps = eps;
  return g;
}

inline DropoutAttrs dropout(double p, bool training = true, uint64_t seed = 0, uint64_t offset = 0) {
  DropoutAttrs d;
  d.p = p;
  d.training = training;
  d.seed = seed;
  d.offset = offset;
  return d;
}

inline Op pointwise(OpKind kind, double a = 0.0, double b = 0.0, bool has_a = false, bool has_b = false) {
  Op op;
  op.kind = kind;
  op.pw.a = a;
  op.pw.b = b;
  op.pw.has_a = has_a;
  op.pw.has_b = has_b;
  return op;
}
inline Op op_minimum(double a) { return pointwise(OpKind::Minimum, a, 0, true); }
inline Op op_maximum(double a) { return pointwise(OpKind::Maximum, a, 0, true); }
inline Op op_clamp(std::optional<double> lo, std::optional<double> hi) {
  return pointwise(OpKind::Clamp, lo.value_or(0.0), hi.value_or(0.0), lo.has_value(), hi.has_value());
}
inline Op op_fill(double v) { return pointwise(OpKind::Fill, v, 0, true); }

// The fill path that simplify makes of `exact` when its chain is the constant `value`.
inline Pipeline make_fill_pipeline(const Pipeline& exact, double value, std::vector<Op> after_fill = {}) {
  Pipeline p = exact;
  p.computes_conv = false;
  p.norm.reset();
  p.chain = {op_fill(value)};
  for (Op& op : after_fill) p.chain.push_back(op);
  return p;
}

inline Tensor uniform_input(const Shape& shape, std::mt19937_64& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> u(lo, hi);
  Tensor t(shape);
  for (float& v : t.vec()) v = u(rng);
  return t;
}

// Weights and bias like PyTorch's default (uniform in +-1/sqrt(fan_in)); GroupNorm affine
// parameters drawn away from the defaults (1, 0) so that they are exercised.
inline Params random_params(const Pipeline& p, std::mt19937_64& rng) {
  Params params;
  int64_t taps = 1;
  for (int d = 0; d < p.conv.dims; ++d) taps *= p.conv.kernel[d];
  const int64_t c_in = p.input_shape.at(1), c_out = p.output_shape.at(1);
  const float bound = 1.0f / std::sqrt(static_cast<float>(std::max<int64_t>(1, c_in * taps)));
  std::uniform_real_distribution<float> w(-bound, bound), gamma(0.5f, 1.5f), beta(-0.5f, 0.5f), sign(0.0f, 1.0f);
  Shape wshape = {c_out, c_in};
  for (int d = 0; d < p.conv.dims; ++d) wshape.push_back(p.conv.kernel[d]);
  params.conv_weight = Tensor(wshape);
  for (float& v : params.conv_weight.vec()) v = w(rng);
  if (p.conv.bias) {
    params.conv_bias = Tensor({c_out});
    for (float& v : params.conv_bias.vec()) v = w(rng);
  }
  if (p.norm && p.norm->affine) {
    params.norm_weight = Tensor({c_out});
    params.norm_bias = Tensor({c_out});
    for (float& v : params.norm_weight.vec()) v = gamma(rng) * (sign(rng) < 0.2f ? -1.0f : 1.0f);
    for (float& v : params.norm_bias.vec()) v = beta(rng);
  }
  return params;
}

inline std::string describe(const Pipeline& p) {
  std::ostringstream s;
  if (p.types.storage != DType::F32) s << dtype_name(p.types.storage);
  s << shape_str(p.input_shape) << " -> " << shape_str(p.output_shape);
  if (p.computes_conv) {
    s << " conv" << p.conv.dims << "d k/s/p/d=";
    for (int d = 0; d < p.conv.dims; ++d)
      s << (d ? "," : "") << p.conv.kernel[d] << "/" << p.conv.stride[d] << "/" << p.conv.padding[d] << "/"
        << p.conv.dilation[d];
    s << (p.conv.bias ? " bias" : " nobias");
  } else {
    s << " fill-path";
  }
  if (p.norm) s << " group_norm(G=" << p.norm->num_groups << (p.norm->affine ? ",affine" : "") << ",eps=" << p.norm->eps << ")";
  for (const Op& op : p.chain) {
    s << " " << op_name(op.kind) << "(";
    if (op.kind == OpKind::Gelu) s << (op.pw.tanh_approx ? "tanh" : "erf");
    else {
      if (op.pw.has_a || op.kind != OpKind::Clamp) s << op.pw.a;
      s << ",";
      if (op.pw.has_b || op.kind != OpKind::Clamp) s << op.pw.b;
    }
    s << ")";
  }
  if (!p.dropout.is_identity())
    s << " dropout(p=" << p.dropout.p << ",seed=" << p.dropout.seed << ",offset=" << p.dropout.offset << ")";
  else if (p.dropout.p != 0.0)
    s << " dropout(eval)";
  return s.str();
}

// FB_TEST_SEED=<seed> reruns one case of a seeded random test: the repro its failure prints.
inline std::vector<uint64_t> test_seeds(uint64_t first, int count) {
  if (const char* env = std::getenv("FB_TEST_SEED")) return {std::strtoull(env, nullptr, 0)};
  std::vector<uint64_t> seeds;
  for (int i = 0; i < count; ++i) seeds.push_back(first + static_cast<uint64_t>(i));
  return seeds;
}

// `count` consecutive seeds from a fresh random start (a new draw every run), or FB_TEST_SEED's.
inline std::vector<uint64_t> fresh_test_seeds(int count) {
  return test_seeds(std::random_device{}() * 0x100000001ull, count);
}

// The pipeline in storage type d, with its parameters rounded to d (as module.to(dtype) does).
inline void store_as(DType d, Pipeline& p, Params& params) {
  p.types.storage = d;
  for (Tensor* t : {&params.conv_weight, &params.conv_bias, &params.norm_weight, &params.norm_bias}) t->round_to(d);
}

inline std::string repro(const char* test, uint64_t seed, const Pipeline& p) {
  std::ostringstream s;
  s << "repro: FB_TEST_SEED=" << seed << " fuseblock_tests --gtest_filter=" << test << "   # " << describe(p);
  return s.str();
}

}  // namespace fbtest
