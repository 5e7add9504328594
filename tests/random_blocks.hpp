// Random blocks for differential tests: shapes with odd, prime and size-1 dims, random conv
// attributes, G = 1 / G = C / other divisors, affine on and off, chains drawn from every
// pointwise op with scalars that keep float32's rounding well conditioned, dropout train/eval.
#pragma once
#include <random>
#include <vector>

#include "pipeline_fixtures.hpp"

namespace fbtest {

struct RandomBlock {
  Pipeline pipeline;
  Params params;
  Tensor input;
};

template <class T>
const T& pick(std::mt19937_64& rng, const std::vector<T>& choices) {
  return choices[rng() % choices.size()];
}

inline double uniform(std::mt19937_64& rng, double lo, double hi) {
  return std::uniform_real_distribution<double>(lo, hi)(rng);
}

inline Op random_pointwise_op(std::mt19937_64& rng, bool allow_fill = true) {
  static const std::vector<OpKind> kinds = {
      OpKind::Minimum, OpKind::Maximum, OpKind::Clamp, OpKind::Relu, OpKind::LeakyRelu, OpKind::Gelu,
      OpKind::Silu,    OpKind::Sigmoid, OpKind::Tanh,  OpKind::Mish, OpKind::Hardswish, OpKind::Hardtanh,
      OpKind::Softplus, OpKind::Elu,    OpKind::Add,   OpKind::Sub,  OpKind::Mul,       OpKind::Div,
      OpKind::Fill};
  OpKind k = pick(rng, kinds);
  if (k == OpKind::Fill && (!allow_fill || rng() % 4 != 0)) k = OpKind::Tanh;  // keep fills rare
  const double sign = rng() % 2 ? 1.0 : -1.0;
  switch (k) {
    case OpKind::Minimum: return op_minimum(uniform(rng, -1.5, 1.5));
    case OpKind::Maximum: return op_maximum(uniform(rng, -1.5, 1.5));
    case OpKind::Clamp: {
      const bool lo = rng() % 5 != 0, hi = !lo || rng() % 5 != 0;
      return pointwise(k, uniform(rng, -2, 2), uniform(rng, -2, 2), lo, hi);  // min > max happens too
    }
    case OpKind::Hardtanh: return pointwise(k, uniform(rng, -2, 0), uniform(rng, 0, 2), true, true);
    case OpKind::LeakyRelu: return pointwise(k, uniform(rng, -0.5, 0.5));
    case OpKind::Elu: return pointwise(k, uniform(rng, -1.5, 2.5));  // a negative alpha too (nn.ELU allows it)
    case OpKind::Gelu: {
      Op op = pointwise(k);
      op.pw.tanh_approx = rng() % 2;
      return op;
    }
    case OpKind::Softplus: return pointwise(k, uniform(rng, 0.5, 3), uniform(rng, 1, 20));
    case OpKind::Add:
    case OpKind::Sub: return pointwise(k, uniform(rng, -2, 2));
    case OpKind::Mul:
    case OpKind::Div: return pointwise(k, sign * uniform(rng, 0.25, 4));
    case OpKind::Fill: return op_fill(uniform(rng, -2, 2));
    default: return pointwise(k);
  }
}

inline RandomBlock random_block(uint64_t seed) {
  std::mt19937_64 rng(seed);
  ConvSpec c;
  do {
    c.dims = 1 + static_cast<int>(rng() % 3);
    static const std::vector<std::vector<int64_t>> sizes = {
        {1, 2, 3, 5, 7, 11, 17, 31}, {1, 2, 3, 5, 7, 11, 13}, {1, 2, 3, 5, 7}};
    c.batch = pick<int64_t>(rng, {1, 2, 3});
    c.c_in = pick<int64_t>(rng, {1, 2, 3, 5});
    c.c_out = pick<int64_t>(rng, {1, 2, 3, 4, 6, 7, 8, 16});
    c.in_spatial.assign(3, 1);
    c.kernel.assign(3, 1);
    c.stride.assign(3, 1);
    c.padding.assign(3, 0);
    c.dilation.assign(3, 1);
    for (int d = 0; d < c.dims; ++d) {
      // The innermost dim also goes past a few vector widths (the conv's vectorized loop and its tail).
      const bool wide = d == c.dims - 1 && rng() % 3 == 0;
      c.in_spatial[d] = wide ? pick<int64_t>(rng, {19, 23, 37, 41}) : pick(rng, sizes[c.dims - 1]);
      c.kernel[d] = pick<int64_t>(rng, {1, 2, 3});
      c.stride[d] = pick<int64_t>(rng, {1, 1, 2, 3});
      c.padding[d] = pick<int64_t>(rng, {0, 0, 1, 2});
      c.dilation[d] = pick<int64_t>(rng, {1, 1, 2});
    }
    c.bias = rng() % 2;
  } while (!conv_fits(c));

  std::optional<GroupNormAttrs> norm;
  if (rng() % 5 != 0) {
    std::vector<int64_t> divisors;
    for (int64_t g = 1; g <= c.c_out; ++g)
      if (c.c_out % g == 0) divisors.push_back(g);
    const int64_t groups = rng() % 3 == 0 ? 1 : rng() % 2 ? c.c_out : pick(rng, divisors);
    norm = group_norm(groups, rng() % 2, pick<double>(rng, {1e-5, 1e-3, 0.1}));
  }
  std::vector<Op> chain;
  const int ops = static_cast<int>(rng() % 5);
  for (int i = 0; i < ops; ++i) chain.push_back(random_pointwise_op(rng));
  const DropoutAttrs drop = dropout(pick<double>(rng, {0.0, 0.2, 0.2, 1.0, 0.5}), rng() % 4 != 0, rng(), rng() % 1000);

  RandomBlock b;
  b.pipeline = make_pipeline(c, norm, chain, drop);
  b.params = random_params(b.pipeline, rng);
  const bool non_negative = rng() % 3 == 0;  // like torch.rand, as KernelBench draws
  b.input = uniform_input(b.pipeline.input_shape, rng, non_negative ? 0.0f : -1.0f, 1.0f);
  return b;
}

}  // namespace fbtest
