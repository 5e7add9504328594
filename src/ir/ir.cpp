// IR helpers: names, lookups and the text dump that explain prints after every pass.
#include <cfloat>
#include <cmath>

#include <fmt/format.h>

#include "fuseblock/ir.hpp"

namespace fuseblock {

const char* op_name(OpKind k) {
  switch (k) {
    case OpKind::Input: return "input";
    case OpKind::Conv: return "conv";
    case OpKind::GroupNorm: return "group_norm";
    case OpKind::Minimum: return "minimum";
    case OpKind::Maximum: return "maximum";
    case OpKind::Clamp: return "clamp";
    case OpKind::Relu: return "relu";
    case OpKind::LeakyRelu: return "leaky_relu";
    case OpKind::Gelu: return "gelu";
    case OpKind::Silu: return "silu";
    case OpKind::Sigmoid: return "sigmoid";
    case OpKind::Tanh: return "tanh";
    case OpKind::Mish: return "mish";
    case OpKind::Hardswish: return "hardswish";
    case OpKind::Hardtanh: return "hardtanh";
    case OpKind::Softplus: return "softplus";
    case OpKind::Elu: return "elu";
    case OpKind::Add: return "add";
    case OpKind::Sub: return "sub";
    case OpKind::Mul: return "mul";
    case OpKind::Div: return "div";
    case OpKind::Fill: return "fill";
    case OpKind::PRelu: return "prelu";
    case OpKind::Dropout: return "dropout";
  }
  return "?";
}

bool is_pointwise(OpKind k) { return k >= OpKind::Minimum && k <= OpKind::PRelu; }

std::string prelu_weight_key(const PointwiseAttrs& pw) {
  return pw.param_count <= 1 ? "prelu.weight" : fmt::format("prelu.{}.weight", pw.param_index);
}

bool Range::is_finite() const { return !nan && std::isfinite(lo) && std::isfinite(hi); }

SourceLoc Op::arg_loc(const std::string& name) const {
  auto it = arg_locs.find(name);
  return it == arg_locs.end() ? loc : it->second;
}

const Op* Block::find(OpKind k) const {
  for (const Op& op : ops)
    if (op.kind == k) return &op;
  return nullptr;
}

static std::string num(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{:g}", v);
}

static std::string range_str(const Range& r) {
  if (r.lo > r.hi) return r.nan ? "{nan}" : "{}";
  std::string s = r.lo == r.hi ? fmt::format("{{{}}}", num(r.lo)) : fmt::format("[{}, {}]", num(r.lo), num(r.hi));
  return r.nan ? s + " | nan" : s;
}

static std::string tuple_str(const std::array<int64_t, 3>& a, int dims) {
  std::string s = "(";
  for (int i = 0; i < dims; ++i) s += fmt::format("{}{}", i ? ", " : "", a[static_cast<size_t>(i)]);
  return s + ")";
}

static std::string attrs_str(const Op& op) {
  const auto& pw = op.pw;
  switch (op.kind) {
    case OpKind::Conv:
      return fmt::format("conv{}d out_channels={} kernel_size={} stride={} padding={} dilation={} bias={}",
                         op.conv.dims, op.conv.out_channels, tuple_str(op.conv.kernel, op.conv.dims),
                         tuple_str(op.conv.stride, op.conv.dims), tuple_str(op.conv.padding, op.conv.dims),
                         tuple_str(op.conv.dilation, op.conv.dims), op.conv.bias) +
             (op.conv.channel_add ? " + add_per_sample_channel" : "");
    case OpKind::GroupNorm: {
      const std::string params = op.norm.param_dtype ? fmt::format(" param_dtype={}", dtype_name(*op.norm.param_dtype)) : "";
      if (op.norm.instance)
        return fmt::format("instance_norm eps={} affine={}{} (group_norm num_groups={})", num(op.norm.eps),
                           op.norm.affine, params, op.norm.num_groups);
      return fmt::format("group_norm num_groups={} eps={} affine={}{}", op.norm.num_groups, num(op.norm.eps),
                         op.norm.affine, params);
    }
    case OpKind::Dropout:
      return fmt::format("dropout p={} training={} seed={} offset={}", num(op.dropout.p), op.dropout.training,
                         op.dropout.seed, op.dropout.offset);
    case OpKind::Clamp:
    case OpKind::Hardtanh:
      return fmt::format("{} min={} max={}", op_name(op.kind), pw.has_a ? num(pw.a) : "none",
                         pw.has_b ? num(pw.b) : "none");
    case OpKind::Gelu: return fmt::format("gelu approximate={}", pw.tanh_approx ? "tanh" : "none");
    case OpKind::Softplus: return fmt::format("softplus beta={} threshold={}", num(pw.a), num(pw.b));
    case OpKind::LeakyRelu: return fmt::format("leaky_relu negative_slope={}", num(pw.a));
    case OpKind::Elu: return fmt::format("elu alpha={}", num(pw.a));
    case OpKind::PRelu: return fmt::format("prelu num_parameters={} weight={}", pw.num_parameters, prelu_weight_key(pw));
    case OpKind::Minimum: case OpKind::Maximum: case OpKind::Add: case OpKind::Sub:
    case OpKind::Mul: case OpKind::Div: case OpKind::Fill:
      return fmt::format("{} {}", op_name(op.kind), num(pw.a));
    default: return op_name(op.kind);
  }
}

std::string dump(const Block& b) {
  std::string out;
  for (size_t i = 0; i < b.ops.size(); ++i) {
    const Op& op = b.ops[i];
    std::string head = op.kind == OpKind::Input ? fmt::format("input {}", dtype_name(op.dtype)) : attrs_str(op);
    out += fmt::format("  %{} = {:<60} : {}{}  range {}\n", i, head, dtype_name(op.dtype), shape_str(op.shape),
                       range_str(op.range));
  }
  return out;
}

void fail_at(const Block& b, const Op& op, const std::string& arg, const std::string& what, const std::string& hint) {
  throw UserError(what, hint, arg.empty() ? op.loc : op.arg_loc(arg), b.source_name);
}

}  // namespace fuseblock
