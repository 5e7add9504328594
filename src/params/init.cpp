// PyTorch's default parameter initialisation, drawn from a seed (include/fuseblock/params.hpp).
//
// nn.ConvNd.reset_parameters: kaiming_uniform_(weight, a=sqrt(5)) has gain sqrt(2 / (1 + 5)), std
// gain / sqrt(fan_in) and bound sqrt(3) * std = 1 / sqrt(fan_in); the bias is uniform in
// +-1 / sqrt(fan_in); fan_in = C_in * prod(kernel). nn.GroupNorm: weight 1, bias 0.
//
// The numbers are not PyTorch's (its generator differs) but they have its distribution, and are the
// same on every platform: std::mt19937_64 is fully specified by the standard, and the conversion to
// double below is ours (std::uniform_real_distribution is implementation-defined).
#include <cmath>
#include <random>

#include "fuseblock/params.hpp"
#include "params/param_slots.hpp"

namespace fuseblock {
namespace {

class UniformSource {
 public:
  explicit UniformSource(uint64_t seed) : gen_(seed) {}
  // Uniform in [-bound, bound): 53 random bits give u in [0, 1); 2u - 1 is exact, so the only
  // rounding is the final multiply and the cast to float (which may reach +-bound itself).
  float symmetric(double bound) {
    double u = static_cast<double>(gen_() >> 11) * 0x1.0p-53;
    return static_cast<float>((2.0 * u - 1.0) * bound);
  }

 private:
  std::mt19937_64 gen_;
};

}  // namespace

Params init_params(const Pipeline& p, uint64_t seed) {
  Params out;
  UniformSource rng(seed);
  for (const detail::ParamSlot& s : detail::param_slots(p)) {
    using Need = detail::ParamSlot::Need;
    if (s.need == Need::Absent) continue;
    std::string name = s.name;
    if (!s.member) {  // a prelu: every slope is the module's `init` (nn.PReLU's init=0.25)
      float init = 0.25f;
      for (const Op& op : p.chain)
        if (op.kind == OpKind::PRelu && op.pw.param_index == s.prelu_index) init = static_cast<float>(op.pw.a);
      s.of(out) = rounded_to(Tensor(s.shape, init), s.dtype);
    } else if (name == "conv.weight" || name == "conv.bias") {
      // In PyTorch's order: the weight is drawn first, then the bias.
      const ConvAttrs& c = p.conv;
      double fan_in = static_cast<double>(c.in_channels);
      for (int d = 0; d < c.dims; ++d) fan_in *= static_cast<double>(c.kernel[static_cast<size_t>(d)]);
      double bound = fan_in > 0 ? 1.0 / std::sqrt(fan_in) : 0.0;
      Tensor t(s.shape);
      for (float& v : t.vec()) v = rng.symmetric(bound);
      s.of(out) = rounded_to(std::move(t), s.dtype);  // as module.to(dtype) after init
    } else {
      // GroupNorm. Optional means no norm in this pipeline: on the fill path the exact fallback
      // may still have one, and 1 / 0 is also exactly what a non-affine GroupNorm applies.
      if (s.need == Need::Optional && p.computes_conv) continue;
      // In the norm's own type (f32 in a block that keeps its norm in float32: a tagged F32 tensor).
      s.of(out) = rounded_to(Tensor(s.shape, name == "norm.weight" ? 1.0f : 0.0f), s.dtype);
    }
  }
  return out;
}

}  // namespace fuseblock
