// The float64 oracle: a Pipeline computed the naive way, from PyTorch's definitions, written
// apart from the backends (it calls none of their code) so that differential tests compare two
// independent computations. Small shapes only.
//
// Every op computes in double; its result then goes through float32's overflow (a magnitude
// that float32 would round to Inf becomes Inf), because PyTorch stores each op's output as
// float32 and so an Inf there is part of the semantics. For a bf16 or f16 pipeline
// (p.types.storage) each op's result is instead rounded, double -> that type, to nearest even,
// with its overflow: the conv output (bias included), the GroupNorm output, each pointwise
// result and dropout's result, the points where PyTorch eager stores a value in that type. The
// rounding is the oracle's own (oracle_round), computed apart from the library's conversions. Scalars are rounded to float32 first,
// as PyTorch applies a Python scalar to a float32 tensor. The dropout mask is a definition
// (device_common/philox.h), not a computation, so the oracle takes it from there.
#pragma once
#include <vector>

#include "fuseblock/params.hpp"
#include "fuseblock/plan.hpp"
#include "fuseblock/tensor.hpp"

namespace fuseblock {

// What a comparison's tolerance needs to know about the computation's conditioning.
struct OracleStats {
  // The largest |a * x| + |b| of GroupNorm folded into a * x + b (a = gamma * rstd, b = beta -
  // mean * a), the terms that float32 rounds before they cancel: large when a group's offset is
  // large against its spread (1e4 + noise) or when its variance is 0. 0 without a norm.
  double norm_terms = 0.0;
  // Largest root-mean-square of the finite values after each op from the norm on (from the conv
  // when there is no norm): the magnitude that float32 rounding errors are relative to.
  double magnitude = 0.0;
};

// The block's output for x (shape p.input_shape), in C order, shape p.output_shape.
// On a fill path (no conv) every element starts as NaN and the chain's Fill replaces it.
// Throws std::invalid_argument for shapes too large for a naive computation.
// `channel_add` is the block's per-(sample, channel) input ([N, C_out]) when p.channel_add().
std::vector<double> oracle_forward(const Pipeline& p, const Params& params, const Tensor& x,
                                   OracleStats* stats = nullptr, const Tensor* channel_add = nullptr);

// One pointwise op in double by PyTorch's definition (exposed for the oracle's own tests).
double oracle_pointwise(const Op& op, double x);

// v as stored in `storage`: f32 keeps the double but overflows as float32 would; bf16 and f16
// round to nearest even (8 and 11 significant bits, their subnormals and overflow included).
double oracle_round(double v, DType storage);

}  // namespace fuseblock
