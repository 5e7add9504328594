#include "spec/op_table.hpp"

#include <algorithm>

namespace fuseblock::spec {

const std::vector<OpSpec>& op_table() {
  using T = ArgType;
  const std::vector<ArgSpec> conv_args = {
      {"out_channels", T::Int, true}, {"kernel_size", T::IntTuple, true}, {"stride", T::IntTuple, false},
      {"padding", T::IntTuple, false}, {"dilation", T::IntTuple, false}, {"bias", T::Bool, false},
      {"groups", T::Int, false}, {"in_channels", T::Int, false}};
  static const std::vector<OpSpec> table = {
      {"conv1d", OpKind::Conv, 1, conv_args,
       "nn.Conv1d: out_channels kernel_size [stride=1 padding=0 dilation=1 bias=true]"},
      {"conv2d", OpKind::Conv, 2, conv_args, "nn.Conv2d: as conv1d; tuples like kernel_size=(3, 3)"},
      {"conv3d", OpKind::Conv, 3, conv_args, "nn.Conv3d: as conv1d; tuples like kernel_size=(3, 3, 3)"},
      // Not an op of its own: the parser marks the conv before it (ConvAttrs::channel_add).
      {"add_per_sample_channel", OpKind::Conv, 0, {},
       "x + add[:, :, None, ...]: a run-time input of shape [N, C_out] (diffusers' time embedding), right after the conv"},
      {"group_norm", OpKind::GroupNorm, 0,
       {{"num_groups", T::Int, true}, {"eps", T::Float, false}, {"affine", T::Bool, false},
        {"num_channels", T::Int, false}, {"param_dtype", T::Word, false}},
       "nn.GroupNorm: num_groups [eps=1e-5 affine=true param_dtype=f32 (norm kept in float32 in a bf16/f16 block)]"},
      {"instance_norm", OpKind::GroupNorm, 0,
       {{"num_features", T::Int, false}, {"eps", T::Float, false}, {"momentum", T::Float, false},
        {"affine", T::Bool, false}, {"track_running_stats", T::Bool, false}, {"param_dtype", T::Word, false}},
       "nn.InstanceNorm1d/2d/3d: [num_features eps=1e-5 affine=false param_dtype]; GroupNorm with one channel a group"},
      {"minimum", OpKind::Minimum, 0, {{"other", T::Float, true}}, "torch.minimum(x, other); NaN propagates"},
      {"maximum", OpKind::Maximum, 0, {{"other", T::Float, true}}, "torch.maximum(x, other); NaN propagates"},
      {"clamp", OpKind::Clamp, 0, {{"min", T::Float, false}, {"max", T::Float, false}},
       "torch.clamp(x, min, max); either bound may be left out, not both"},
      {"relu", OpKind::Relu, 0, {}, "nn.ReLU"},
      {"leaky_relu", OpKind::LeakyRelu, 0, {{"negative_slope", T::Float, false}}, "nn.LeakyReLU [negative_slope=0.01]"},
      {"gelu", OpKind::Gelu, 0, {{"approximate", T::Word, false}}, "nn.GELU [approximate=none|tanh]"},
      {"silu", OpKind::Silu, 0, {}, "nn.SiLU"},
      {"sigmoid", OpKind::Sigmoid, 0, {}, "nn.Sigmoid"},
      {"tanh", OpKind::Tanh, 0, {}, "nn.Tanh"},
      {"mish", OpKind::Mish, 0, {}, "nn.Mish"},
      {"hardswish", OpKind::Hardswish, 0, {}, "nn.Hardswish"},
      {"hardtanh", OpKind::Hardtanh, 0, {{"min_val", T::Float, false}, {"max_val", T::Float, false}},
       "nn.Hardtanh [min_val=-1 max_val=1]"},
      {"softplus", OpKind::Softplus, 0, {{"beta", T::Float, false}, {"threshold", T::Float, false}},
       "nn.Softplus [beta=1 threshold=20]"},
      {"elu", OpKind::Elu, 0, {{"alpha", T::Float, false}}, "nn.ELU [alpha=1]: x > 0 ? x : alpha * expm1(x)"},
      {"prelu", OpKind::PRelu, 0, {{"num_parameters", T::Int, false}, {"init", T::Float, false}},
       "nn.PReLU [num_parameters=1 (or C) init=0.25]: x > 0 ? x : weight[c] * x; weight is the parameter prelu.weight"},
      {"add", OpKind::Add, 0, {{"other", T::Float, true}}, "x + other"},
      {"sub", OpKind::Sub, 0, {{"other", T::Float, true}}, "x - other"},
      {"mul", OpKind::Mul, 0, {{"other", T::Float, true}}, "x * other"},
      {"div", OpKind::Div, 0, {{"other", T::Float, true}}, "x / other"},
      {"dropout", OpKind::Dropout, 0,
       {{"p", T::Float, false}, {"training", T::Bool, false}, {"seed", T::Int, false}, {"offset", T::Int, false}},
       "nn.Dropout: [p=0.5 training=true seed=0 offset=0]; the mask is Philox4x32-10 at (seed, offset, index)"},
  };
  return table;
}

const OpSpec* find_op(const std::string& keyword) {
  for (const OpSpec& s : op_table())
    if (keyword == s.keyword) return &s;
  return nullptr;
}

static size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = word.size() / 2 + 2;  // farther than this is no suggestion
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}

std::string spec_reference() {
  std::string s =
      "A block spec is one op a line, in this order:\n"
      "  input f32[N, C, D...]      the input's dtype (f32, bf16 or f16: every value is stored in it)\n"
      "                             and shape (1 to 3 spatial dims)\n"
      "  conv1d|conv2d|conv3d ...   the convolution\n"
      "  add_per_sample_channel     optional, right after the conv: a second input [N, C_out] added per (sample, channel)\n"
      "  group_norm|instance_norm   optional\n"
      "  pointwise ops ...          any number\n"
      "  dropout ...                optional, anywhere in the chain (the ops after it see its result)\n"
      "  params seed=S | file=F     optional, anywhere: PyTorch-default init from seed S (default 0),\n"
      "                             or a safetensors file with conv.weight, conv.bias, norm.weight, norm.bias\n"
      "Arguments are name=value or positional in the order listed; tuples as (3, 3, 3) or [3, 3, 3];\n"
      "'#' starts a comment. Ops:\n";
  for (const OpSpec& op : op_table()) {
    const std::string kw = op.keyword;
    s += "  " + kw + std::string(kw.size() < 14 ? 14 - kw.size() : 2, ' ') + op.help + "\n";
  }
  return s;
}

}  // namespace fuseblock::spec
