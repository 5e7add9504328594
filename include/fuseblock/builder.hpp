// The C++ builder: the same blocks as the spec text, built by calls. It writes one spec line per
// call and parses the result, so the builder and the text format share every rule and message;
// in an error, "<builder>:N:COL" points at the N-th call (the input is call 1).
//
//   Block b = BlockBuilder({128, 3, 16, 64, 64})
//                 .conv(3, 16, 3).group_norm(8).minimum(0.0).clamp(0.0, 1.0).dropout(0.2)
//                 .build();
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "fuseblock/ir.hpp"

namespace fuseblock {

struct ConvOptions {
  int64_t stride = 1, padding = 0, dilation = 1;
  bool bias = true;
};

class BlockBuilder {
 public:
  // dtype: the block's storage type, the spec's `input f32|bf16|f16[...]`.
  explicit BlockBuilder(const Shape& input_shape, DType dtype = DType::F32);

  BlockBuilder& conv(int dims, int64_t out_channels, int64_t kernel_size, ConvOptions o = {});
  // conv(x) + add[:, :, None, ...] with a run-time [N, C_out] input (run()'s channel_add overload).
  BlockBuilder& add_per_sample_channel();
  // param_dtype: the affine parameters' type (`param_dtype=`); DType::F32 in a bf16/f16 block keeps
  // the norm in float32, as nn.GroupNorm(..., dtype=torch.float32) after a bfloat16 conv.
  BlockBuilder& group_norm(int64_t num_groups, double eps = 1e-5, bool affine = true,
                           std::optional<DType> param_dtype = std::nullopt);
  BlockBuilder& instance_norm(double eps = 1e-5, bool affine = false, std::optional<DType> param_dtype = std::nullopt);
  BlockBuilder& minimum(double other);
  BlockBuilder& maximum(double other);
  BlockBuilder& clamp(std::optional<double> min, std::optional<double> max);
  BlockBuilder& relu();
  BlockBuilder& leaky_relu(double negative_slope = 0.01);
  BlockBuilder& gelu(bool tanh_approx = false);
  BlockBuilder& silu();
  BlockBuilder& sigmoid();
  BlockBuilder& tanh();
  BlockBuilder& mish();
  BlockBuilder& hardswish();
  BlockBuilder& hardtanh(double min_val = -1.0, double max_val = 1.0);
  BlockBuilder& softplus(double beta = 1.0, double threshold = 20.0);
  // nn.PReLU: one slope, or one a channel (num_parameters = the conv's out_channels), each `init`.
  BlockBuilder& prelu(int64_t num_parameters = 1, double init = 0.25);
  BlockBuilder& add(double other);
  BlockBuilder& sub(double other);
  BlockBuilder& mul(double other);
  BlockBuilder& div(double other);
  BlockBuilder& dropout(double p, bool training = true, uint64_t seed = 0, uint64_t offset = 0);
  BlockBuilder& params_seed(uint64_t seed);
  BlockBuilder& params_file(const std::string& safetensors);

  const std::string& spec_text() const { return text_; }
  Block build() const;  // UserError on a rule the parser enforces

 private:
  BlockBuilder& line(const std::string& l);
  std::string text_;
};

// A spec number that parses back to the same double ("inf", "-inf", "nan" included).
std::string spec_number(double v);

}  // namespace fuseblock
