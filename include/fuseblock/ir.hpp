// The block IR: a chain of ops, each consuming the previous op's value.
//
// A block is always   input -> conv -> [group_norm] -> pointwise* -> [dropout]
// (the parser and the builder enforce that order; dropout may also sit inside the chain, and a
// per-(sample, channel) add after the conv is a flag of the conv, ConvAttrs::channel_add), so the IR is a vector of Op in data-flow
// order. Passes (src/passes/, one per file) read a Block and return a new one; they fill in the
// per-op shape and value range, and rewrite the chain (folding, elimination).
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "fuseblock/dtype.hpp"
#include "fuseblock/error.hpp"
#include "fuseblock/tensor.hpp"

namespace fuseblock {

enum class OpKind : uint8_t {
  Input,
  Conv,
  GroupNorm,
  // pointwise, in PyTorch's names
  Minimum, Maximum, Clamp, Relu, LeakyRelu, Gelu, Silu, Sigmoid, Tanh, Mish, Hardswish, Hardtanh,
  Softplus, Elu, Add, Sub, Mul, Div,
  Fill,  // made by simplify: every element is `a` (the op's input is no longer read)
  PRelu,  // nn.PReLU: its slopes are a parameter (Params::prelu_weight), not a scalar
  Dropout,
};

const char* op_name(OpKind k);          // the spec keyword: "conv", "group_norm", "minimum", ...
bool is_pointwise(OpKind k);            // Minimum .. PRelu

struct ConvAttrs {
  int dims = 3;                          // 1, 2 or 3 (conv1d / conv2d / conv3d)
  int64_t in_channels = 0;               // from the input shape (infer_shapes)
  int64_t out_channels = 0;
  std::array<int64_t, 3> kernel{1, 1, 1};    // only the first `dims` entries are used
  std::array<int64_t, 3> stride{1, 1, 1};
  std::array<int64_t, 3> padding{0, 0, 0};
  std::array<int64_t, 3> dilation{1, 1, 1};
  bool bias = true;
  // `add_per_sample_channel` follows the conv: a second run-time input of shape [N, C_out], in the
  // storage type, is added to the conv output (bias included) before the norm, as diffusers'
  // ResnetBlock2D adds its time embedding (conv1(x) + temb[:, :, None, None]). Part of what the
  // conv op produces, so the Pipeline carries it in its conv (Pipeline::channel_add()).
  bool channel_add = false;
};

struct GroupNormAttrs {
  int64_t num_groups = 1;
  double eps = 1e-5;
  bool affine = true;
  int64_t num_channels = 0;  // as spec'd, a check against the conv's channels (0: not given)
  // Spec'd as instance_norm (nn.InstanceNormNd): GroupNorm with one channel per group, so
  // infer_shapes sets num_groups to the conv's channels. Kept so that explain says what was written.
  bool instance = false;
  // The affine parameters' element type as spec'd (`param_dtype=`, nn.GroupNorm's `dtype=` factory
  // argument); nullopt: the block's storage type, as in a model moved with .to(dtype). f32 in a bf16 or
  // f16 block is a norm kept in float32 (eager normalizes in float32 and rounds the result once, either
  // way); infer_shapes refuses what PyTorch refuses (f32 input with 16-bit parameters, bf16 with f16).
  std::optional<DType> param_dtype;
};

// Scalar arguments of a pointwise op. Their meaning per op:
//   minimum/maximum/add/sub/mul/div: a     clamp/hardtanh: a = min (has_a), b = max (has_b)
//   leaky_relu: a = negative_slope         softplus: a = beta, b = threshold
//   gelu: tanh_approx                      fill: a = value
//   prelu: a = init (init_params only; has_a stays false: the slopes are run-time data),
//          num_parameters (1 or C), param_index / param_count (which prelu of the block, of how many)
// Scalars are applied in float32, as PyTorch applies Python scalars to a float32 tensor.
struct PointwiseAttrs {
  double a = 0.0, b = 0.0;
  bool has_a = false, has_b = false;
  bool tanh_approx = false;
  int64_t num_parameters = 1;
  int param_index = -1, param_count = 0;
};

// The parameter key of a prelu op: "prelu.weight" when the block has one prelu, else
// "prelu.0.weight", "prelu.1.weight", ... in spec order (as nn.Sequential numbers its modules).
std::string prelu_weight_key(const PointwiseAttrs& pw);

struct DropoutAttrs {
  double p = 0.5;
  bool training = true;
  uint64_t seed = 0;
  uint64_t offset = 0;
  bool is_identity() const { return !training || p == 0.0; }
};

// What a value can hold, as proved by infer_ranges: every non-NaN element lies in [lo, hi]
// (bounds may be +-inf, which then means the value itself may be infinite); `nan` says
// whether a NaN may occur. Overflow of the storage type is modelled: a bound past its largest
// value (FLT_MAX for f32, 65504 for f16) becomes inf.
struct Range {
  double lo = -1.0 / 0.0;
  double hi = 1.0 / 0.0;
  bool nan = true;
  bool is_constant() const { return !nan && lo == hi; }
  bool is_finite() const;
};

struct Op {
  OpKind kind = OpKind::Input;
  SourceLoc loc;                              // where the op's keyword stands in the spec
  std::map<std::string, SourceLoc> arg_locs;  // where each argument stands ("kernel_size", ...)
  ConvAttrs conv;
  GroupNormAttrs norm;
  PointwiseAttrs pw;
  DropoutAttrs dropout;
  // The element type this op's value is stored in, as PyTorch eager materialises it: the input's
  // dtype for every op (set on the input by the parser, carried to the others by infer_shapes).
  DType dtype = DType::F32;
  // Filled by passes.
  Shape shape;      // this op's output shape (infer_shapes)
  Range range;      // this op's output range (infer_ranges)

  SourceLoc arg_loc(const std::string& name) const;  // falls back to the op's own loc
};

// Where the block's parameters come from.
struct ParamSource {
  uint64_t init_seed = 0;       // PyTorch-style default initialisation from this seed ...
  std::string safetensors;      // ... unless a file is named (keys conv.weight, conv.bias, norm.weight, norm.bias)
  SourceLoc loc;
};

struct Block {
  std::string source_name = "<builder>";  // file name or "<default>"; used in error messages
  std::vector<Op> ops;                    // ops[0] is Input, ops[1] is Conv
  ParamSource params;
  // Set by infer_ranges: the input range the analysis assumed (the plan's guard enforces it).
  bool assumes_bounded_input = false;

  const Op& input() const { return ops.front(); }
  DType storage_dtype() const { return ops.front().dtype; }
  const Op& output() const { return ops.back(); }
  const Op* find(OpKind k) const;         // first op of that kind, or nullptr
};

// Text form of the IR, one op a line with shape and range: what `explain` prints after each pass.
std::string dump(const Block& b);

// A user error pointing at an op's argument in the block's spec.
[[noreturn]] void fail_at(const Block& b, const Op& op, const std::string& arg, const std::string& what,
                          const std::string& hint);

}  // namespace fuseblock
