#include "fuseblock/builder.hpp"

#include <cmath>

#include <fmt/format.h>

#include "fuseblock/fuseblock.hpp"

namespace fuseblock {

std::string spec_number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{}", v);  // shortest text that reads back as v
}

BlockBuilder::BlockBuilder(const Shape& input_shape, DType dtype) {
  std::string dims;
  for (int64_t d : input_shape) dims += fmt::format("{}{}", dims.empty() ? "" : ", ", d);
  line(fmt::format("input {}[{}]", dtype_name(dtype), dims));
}

BlockBuilder& BlockBuilder::line(const std::string& l) {
  text_ += l + "\n";
  return *this;
}

BlockBuilder& BlockBuilder::conv(int dims, int64_t out_channels, int64_t kernel_size, ConvOptions o) {
  return line(fmt::format("conv{}d out_channels={} kernel_size={} stride={} padding={} dilation={} bias={}", dims, out_channels,
                          kernel_size, o.stride, o.padding, o.dilation, o.bias));
}
BlockBuilder& BlockBuilder::add_per_sample_channel() { return line("add_per_sample_channel"); }
static std::string param_dtype_arg(std::optional<DType> d) {
  return d ? fmt::format(" param_dtype={}", dtype_name(*d)) : "";
}
BlockBuilder& BlockBuilder::group_norm(int64_t g, double eps, bool affine, std::optional<DType> param_dtype) {
  return line(fmt::format("group_norm num_groups={} eps={} affine={}{}", g, spec_number(eps), affine,
                          param_dtype_arg(param_dtype)));
}
BlockBuilder& BlockBuilder::instance_norm(double eps, bool affine, std::optional<DType> param_dtype) {
  return line(fmt::format("instance_norm eps={} affine={}{}", spec_number(eps), affine, param_dtype_arg(param_dtype)));
}
BlockBuilder& BlockBuilder::minimum(double v) { return line("minimum " + spec_number(v)); }
BlockBuilder& BlockBuilder::maximum(double v) { return line("maximum " + spec_number(v)); }
BlockBuilder& BlockBuilder::clamp(std::optional<double> lo, std::optional<double> hi) {
  std::string l = "clamp";
  if (lo) l += " min=" + spec_number(*lo);
  if (hi) l += " max=" + spec_number(*hi);
  return line(l);
}
BlockBuilder& BlockBuilder::relu() { return line("relu"); }
BlockBuilder& BlockBuilder::leaky_relu(double s) { return line("leaky_relu negative_slope=" + spec_number(s)); }
BlockBuilder& BlockBuilder::gelu(bool tanh_approx) { return line(tanh_approx ? "gelu approximate=tanh" : "gelu"); }
BlockBuilder& BlockBuilder::silu() { return line("silu"); }
BlockBuilder& BlockBuilder::sigmoid() { return line("sigmoid"); }
BlockBuilder& BlockBuilder::tanh() { return line("tanh"); }
BlockBuilder& BlockBuilder::mish() { return line("mish"); }
BlockBuilder& BlockBuilder::hardswish() { return line("hardswish"); }
BlockBuilder& BlockBuilder::hardtanh(double lo, double hi) {
  return line(fmt::format("hardtanh min_val={} max_val={}", spec_number(lo), spec_number(hi)));
}
BlockBuilder& BlockBuilder::softplus(double beta, double threshold) {
  return line(fmt::format("softplus beta={} threshold={}", spec_number(beta), spec_number(threshold)));
}
BlockBuilder& BlockBuilder::prelu(int64_t num_parameters, double init) {
  return line(fmt::format("prelu num_parameters={} init={}", num_parameters, spec_number(init)));
}
BlockBuilder& BlockBuilder::add(double v) { return line("add " + spec_number(v)); }
BlockBuilder& BlockBuilder::sub(double v) { return line("sub " + spec_number(v)); }
BlockBuilder& BlockBuilder::mul(double v) { return line("mul " + spec_number(v)); }
BlockBuilder& BlockBuilder::div(double v) { return line("div " + spec_number(v)); }
BlockBuilder& BlockBuilder::dropout(double p, bool training, uint64_t seed, uint64_t offset) {
  return line(fmt::format("dropout p={} training={} seed={} offset={}", spec_number(p), training, seed, offset));
}
BlockBuilder& BlockBuilder::params_seed(uint64_t seed) { return line(fmt::format("params seed={}", seed)); }
BlockBuilder& BlockBuilder::params_file(const std::string& f) { return line("params file=\"" + f + "\""); }

Block BlockBuilder::build() const { return parse_spec(text_, "<builder>"); }

}  // namespace fuseblock
