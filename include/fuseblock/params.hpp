// Block parameters: convolution weight and bias, GroupNorm weight and bias.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "fuseblock/plan.hpp"
#include "fuseblock/tensor.hpp"

namespace fuseblock {

struct Params {
  Tensor conv_weight;  // [C_out, C_in, k...]
  Tensor conv_bias;    // [C_out], empty when the conv has no bias
  Tensor norm_weight;  // [C_out], empty when GroupNorm is not affine (or absent)
  Tensor norm_bias;    // [C_out]
  // One per prelu op, in spec order (op.pw.param_index): [1] or [C_out]; keys "prelu.weight", or
  // "prelu.0.weight", "prelu.1.weight", ... when the block has several (prelu_weight_key).
  std::vector<Tensor> prelu_weight;
};

// These take the exact pipeline (plan.fallback when the plan has a guard): on the fill path
// plan.pipeline has no norm, but the fallback still reads its parameters. Backends decide
// "affine" from p.norm->affine, never from whether the tensors are empty.
//
// PyTorch's default initialisation (kaiming_uniform_ with a = sqrt(5) for the weight, bias
// uniform in +-1/sqrt(fan_in); GroupNorm weight 1, bias 0), drawn from `seed`.
Params init_params(const Pipeline& p, uint64_t seed);
// Both give parameters in the pipeline's storage type (p.types.storage), as a PyTorch module
// moved with .to(dtype): init_params rounds its draws to it.
//
// Loads a safetensors file with the KernelBench names conv.weight, conv.bias, norm.weight,
// norm.bias, each F32 or the block's dtype (F32 is rounded to it). Wrong names, dtypes or shapes
// are UserErrors naming tensor and shape.
Params load_params(const Pipeline& p, const std::string& path);
// Throws a UserError naming the tensor and its shape if a parameter's shape does not fit, or its
// dtype tag is not a bf16/f16 block's storage type.
void check_params(const Pipeline& p, const Params& params);
// Largest |x| for which |conv output| <= conv_output_bound holds; NaN when any parameter (prelu
// slopes included: the guarded analysis assumes them finite) is
// non-finite, -inf when a conv bias or a GroupNorm weight or bias alone exceeds the bound (then
// every sample fails the guard). Pass the exact (fallback) pipeline's parameters.
double guard_input_bound(const Params& params, double conv_output_bound);

}  // namespace fuseblock
