// infer_shapes: output shape of every op, and the shape rules PyTorch enforces.
#include <fmt/format.h>

#include "ir/checked.hpp"
#include "passes/passes.hpp"

namespace fuseblock {

// A tensor whose byte count (float32) does not fit in int64 cannot exist: a user error naming
// the tensor, at the attribute `arg` (the op itself when empty).
static void check_tensor_size(const Block& b, const Op& op, const char* arg, const std::string& tensor, const Shape& s) {
  if (!checked_nbytes(s, sizeof(float)))
    fail_at(b, op, arg, fmt::format("{} would have shape {}: more bytes than a 64-bit size can count", tensor, shape_str(s)),
            "use smaller sizes");
}

// The input shape as given (a spec's input line, or an override from the Python API).
static void check_input_shape(const Block& b, const Shape& in) {
  for (size_t d = 0; d < in.size(); ++d)
    if (in[d] < 0)
      fail_at(b, b.input(), "shape", fmt::format("the input shape {} has a negative size at dimension {}", shape_str(in), d),
              "sizes are >= 0");
  check_tensor_size(b, b.input(), "shape", "the input", in);
}

static Shape conv_output_shape(const Block& b, const Op& op, const Shape& in) {
  const ConvAttrs& c = op.conv;
  const size_t rank = static_cast<size_t>(c.dims) + 2;
  if (in.size() != rank)
    fail_at(b, b.input(), "shape",
            fmt::format("conv{}d expects a {}-dimensional input [N, C{}], but the input is {}", c.dims, rank,
                        c.dims == 1 ? ", L" : c.dims == 2 ? ", H, W" : ", D, H, W",
                        shape_str(in)),
            in.size() >= 3 && in.size() <= 5
                ? fmt::format("use conv{}d for a {}-dimensional input, or change the input shape", in.size() - 2, in.size())
                : std::string("give an input [N, C, spatial...] with 1 to 3 spatial dims"));
  if (c.out_channels <= 0)
    fail_at(b, op, "out_channels", fmt::format("out_channels must be positive, got {}", c.out_channels), "");
  if (in[1] <= 0) fail_at(b, b.input(), "shape", fmt::format("the input has {} channels", in[1]), "a conv needs C >= 1");
  if (c.in_channels != 0 && c.in_channels != in[1])
    fail_at(b, op, "in_channels", fmt::format("in_channels={} but the input {} has {} channels", c.in_channels, shape_str(in), in[1]),
            fmt::format("set in_channels={} or leave it out", in[1]));
  Shape out{in[0], c.out_channels};
  static const char* axis[] = {"first", "second", "third"};
  for (size_t d = 0; d < static_cast<size_t>(c.dims); ++d) {
    if (c.kernel[d] < 1) fail_at(b, op, "kernel_size", fmt::format("kernel_size must be >= 1, got {}", c.kernel[d]), "");
    if (c.stride[d] < 1) fail_at(b, op, "stride", fmt::format("stride must be >= 1, got {}", c.stride[d]), "");
    if (c.dilation[d] < 1) fail_at(b, op, "dilation", fmt::format("dilation must be >= 1, got {}", c.dilation[d]), "");
    if (c.padding[d] < 0) fail_at(b, op, "padding", fmt::format("padding must be >= 0, got {}", c.padding[d]), "");
    const CheckedInt span_c = CheckedInt(c.dilation[d]) * (CheckedInt(c.kernel[d]) - 1) + 1;
    if (!span_c.ok())
      fail_at(b, op, c.dilation[d] > 1 ? "dilation" : "kernel_size",
              fmt::format("kernel_size={} with dilation={} spans more than a 64-bit size holds along the {} spatial dim",
                          c.kernel[d], c.dilation[d], axis[d]),
              "use a smaller kernel_size or dilation");
    const CheckedInt padded_c = CheckedInt(in[d + 2]) + CheckedInt(c.padding[d]) * 2;
    if (!padded_c.ok())
      fail_at(b, op, "padding",
              fmt::format("padding={} on an input of size {} along the {} spatial dim overflows a 64-bit size",
                          c.padding[d], in[d + 2], axis[d]),
              "use a padding below the input size");
    const int64_t span = span_c.value(), padded = padded_c.value();
    if (padded < span)
      fail_at(b, op, "kernel_size",
              fmt::format("the kernel spans {} along the {} spatial dim, but the (padded) input {} has only {} there",
                          span, axis[d], shape_str(in), padded),
              "use a smaller kernel_size or dilation, or more padding");
    out.push_back((padded - span) / c.stride[d] + 1);
  }
  Shape weight{c.out_channels, in[1]};
  for (size_t d = 0; d < static_cast<size_t>(c.dims); ++d) weight.push_back(c.kernel[d]);
  check_tensor_size(b, op, "out_channels", "conv.weight", weight);
  check_tensor_size(b, op, "", "the conv's output", out);
  return out;
}

// nn.InstanceNormNd's own checks: num_features against the channels, and (F.instance_norm's
// _verify_spatial_size, always on without running statistics) more than one spatial element.
static void check_instance_norm(const Block& b, const Op& op, const Shape& in) {
  const int64_t C = in.at(1);
  if (op.norm.num_channels != 0 && op.norm.num_channels != C)
    fail_at(b, op, "num_features", fmt::format("num_features={} but the conv gives {} channels", op.norm.num_channels, C),
            fmt::format("set num_features={} or leave it out", C));
  int64_t spatial = 1;
  for (size_t d = 2; d < in.size(); ++d) spatial *= in[d];
  if (spatial == 1)
    fail_at(b, op, "", fmt::format("instance_norm needs more than 1 spatial element, but the conv's output is {}", shape_str(in)),
            "as F.instance_norm: each (sample, channel) is normalized over its own spatial elements");
}

// F.group_norm's _verify_batch_size: one value in all (N x C/G x spatial) is an error in
// PyTorch, in train and eval mode (with N > 1 each group normalizes its one value to beta).
static void check_group_norm_values(const Block& b, const Op& op, const Shape& in) {
  int64_t values = in.at(0) * (in.at(1) / op.norm.num_groups);
  for (size_t d = 2; d < in.size(); ++d) values *= in[d];
  if (values == 1)
    fail_at(b, op, "", fmt::format("group_norm needs more than 1 value per channel group over the batch, but the "
                                   "conv's output is {} with num_groups={}", shape_str(in), op.norm.num_groups),
            "as F.group_norm (PyTorch: 'Expected more than 1 value per channel'): use fewer groups or a larger input");
}

// The norm's parameter type against the block's storage type, as PyTorch's norms accept them: the
// storage type, or float32 parameters for bf16/f16 values (its CPU kernels' only mixed pattern;
// "mixed dtype (CPU): expect parameter to have scalar type of Float" otherwise). Without affine
// parameters there is nothing to type, as for nn.GroupNorm(affine=False, dtype=...).
static void check_norm_param_dtype(const Block& b, const Op& op) {
  if (!op.norm.param_dtype || !op.norm.affine) return;
  const DType storage = b.storage_dtype(), param = *op.norm.param_dtype;
  if (param == storage || (param == DType::F32 && storage != DType::F32)) return;
  const char* norm = op.norm.instance ? "instance_norm" : "group_norm";
  fail_at(b, op, "param_dtype",
          fmt::format("{} param_dtype={} in a block whose values are {}: PyTorch's norms refuse {} input with {} "
                      "parameters (they take the input's type, or float32 for bfloat16/float16 input)",
                      norm, dtype_name(param), dtype_name(storage), dtype_info(storage).long_name,
                      dtype_info(param).long_name),
          storage == DType::F32 ? fmt::format("leave param_dtype out (or write param_dtype=f32), or make the input {}",
                                              dtype_name(param))
                                : fmt::format("use param_dtype=f32 or param_dtype={}", dtype_name(storage)));
}

Block infer_shapes(const Block& b) {
  Block r = b;
  FB_ASSERT(!r.ops.empty() && r.ops[0].kind == OpKind::Input, "a block starts with its input");
  Shape cur = r.ops[0].shape;
  check_input_shape(r, cur);
  for (size_t i = 1; i < r.ops.size(); ++i) {
    Op& op = r.ops[i];
    op.dtype = r.ops[0].dtype;  // every value is stored in the input's type, as in a model .to(dtype)
    switch (op.kind) {
      case OpKind::Conv:
        cur = conv_output_shape(r, op, cur);  // checks a spec'd in_channels first
        op.conv.in_channels = r.ops[0].shape.at(1);
        break;
      case OpKind::GroupNorm: {
        if (op.norm.instance) {
          check_instance_norm(r, op, cur);
          op.norm.num_groups = cur.at(1);
        }
        const int64_t C = cur.at(1), G = op.norm.num_groups;
        if (G <= 0) fail_at(r, op, "num_groups", fmt::format("num_groups must be positive, got {}", G), "");
        if (C % G != 0)
          fail_at(r, op, "num_groups", fmt::format("{} channels cannot be split into {} groups (C % G != 0)", C, G),
                  fmt::format("num_groups must divide the conv's out_channels={}", C));
        if (op.norm.num_channels != 0 && op.norm.num_channels != C)
          fail_at(r, op, "num_channels", fmt::format("num_channels={} but the conv gives {} channels", op.norm.num_channels, C),
                  fmt::format("set num_channels={} or leave it out", C));
        if (!(op.norm.eps >= 0.0)) fail_at(r, op, "eps", fmt::format("eps must be >= 0, got {}", op.norm.eps), "");
        if (!op.norm.instance) check_group_norm_values(r, op, cur);
        check_norm_param_dtype(r, op);
        break;
      }
      case OpKind::PRelu:
        // F.prelu: a weight of one element, or of the input's channel count.
        if (op.pw.num_parameters != 1 && op.pw.num_parameters != cur.at(1))
          fail_at(r, op, "num_parameters",
                  fmt::format("prelu num_parameters={} but its input has {} channels", op.pw.num_parameters, cur.at(1)),
                  fmt::format("use num_parameters=1 or num_parameters={}", cur.at(1)));
        break;
      case OpKind::Fill:
        if (op.shape.empty()) op.shape = cur;  // eliminate_unused keeps the shape on the Fill
        cur = op.shape;
        break;
      default: break;  // pointwise and dropout keep the shape
    }
    op.shape = cur;
  }
  return r;
}

}  // namespace fuseblock
