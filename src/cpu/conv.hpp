// Direct convolution (conv1d/2d/3d, groups = 1) in float32 on the CPU.
#pragma once
#include <array>
#include <cstdint>

#include "fuseblock/ir.hpp"

namespace fuseblock::cpu {

// A conv of any rank seen as a 3-d one: conv1d and conv2d get leading spatial dims of size 1
// (kernel 1, stride 1, no padding), so one loop nest serves all three.
struct ConvGeometry {
  int64_t c_in = 0, c_out = 0;
  std::array<int64_t, 3> in{1, 1, 1}, out{1, 1, 1};
  std::array<int64_t, 3> kernel{1, 1, 1}, stride{1, 1, 1}, padding{0, 0, 0}, dilation{1, 1, 1};

  // Checks that out_shape is what PyTorch gives for in_shape (an internal invariant: shapes
  // were inferred before a plan exists).
  static ConvGeometry from(const ConvAttrs& attrs, const Shape& in_shape, const Shape& out_shape);
  int64_t in_sample() const { return c_in * in[0] * in[1] * in[2]; }
  int64_t out_sample() const { return c_out * out[0] * out[1] * out[2]; }
  int64_t weight_count() const { return c_out * c_in * kernel[0] * kernel[1] * kernel[2]; }
};

// y[n] = conv(x[n]) (+ bias) for samples [n_begin, n_end); x, y point at sample 0. bias may be
// null. Accumulates in float32, starting from the bias.
void conv_forward(const ConvGeometry& g, const float* x, const float* weight, const float* bias, float* y,
                  int64_t n_begin, int64_t n_end);

}  // namespace fuseblock::cpu
