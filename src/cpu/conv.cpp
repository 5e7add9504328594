// Direct convolution on the CPU: one output row at a time, the innermost loop over contiguous
// output columns (vectorized by the compiler), OpenMP over (sample, out channel, out depth).
#include "cpu/conv.hpp"

#include <string>
#include <vector>

namespace fuseblock::cpu {

namespace {

// x86-64: the row kernel is also compiled for AVX2 and picked at load time, since the project
// builds for the baseline ISA (a plain -O3 loop then runs 4 floats wide instead of 8).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FB_CPU_KERNEL_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define FB_CPU_KERNEL_CLONES
#endif

// Output columns [lo, hi) whose input column ow * stride + in_offset lies inside [0, width).
struct ColumnRange {
  int64_t lo = 0, hi = 0, in_offset = 0;
};

ColumnRange column_range(int64_t k, int64_t width, int64_t out_width, int64_t stride, int64_t pad,
                         int64_t dilation) {
  ColumnRange r;
  r.in_offset = k * dilation - pad;
  r.lo = r.in_offset >= 0 ? 0 : (-r.in_offset + stride - 1) / stride;
  const int64_t last = width - 1 - r.in_offset;  // ow * stride <= last
  r.hi = last < 0 ? 0 : last / stride + 1;
  if (r.lo > out_width) r.lo = out_width;
  if (r.hi > out_width) r.hi = out_width;
  if (r.hi < r.lo) r.hi = r.lo;
  return r;
}

// One (sample, out channel, out depth) plane: every output row starts at the bias and gathers
// the kernel's taps. `cols` holds one ColumnRange per kernel column.
FB_CPU_KERNEL_CLONES
void conv_plane(const ConvGeometry& g, const ColumnRange* cols, const float* sample, const float* weight_co,
                float bias, int64_t od, float* plane) {
  const int64_t D = g.in[0], H = g.in[1], W = g.in[2];
  const int64_t OH = g.out[1], OW = g.out[2];
  const int64_t KD = g.kernel[0], KH = g.kernel[1], KW = g.kernel[2];
  const int64_t sw = g.stride[2];
  for (int64_t oh = 0; oh < OH; ++oh) {
    float* __restrict out = plane + oh * OW;
    for (int64_t ow = 0; ow < OW; ++ow) out[ow] = bias;
    for (int64_t ci = 0; ci < g.c_in; ++ci) {
      for (int64_t kd = 0; kd < KD; ++kd) {
        const int64_t id = od * g.stride[0] - g.padding[0] + kd * g.dilation[0];
        if (id < 0 || id >= D) continue;
        for (int64_t kh = 0; kh < KH; ++kh) {
          const int64_t ih = oh * g.stride[1] - g.padding[1] + kh * g.dilation[1];
          if (ih < 0 || ih >= H) continue;
          const float* __restrict in_row = sample + ((ci * D + id) * H + ih) * W;
          const float* taps = weight_co + ((ci * KD + kd) * KH + kh) * KW;
          for (int64_t kw = 0; kw < KW; ++kw) {
            const float w = taps[kw];
            const ColumnRange r = cols[kw];
            if (sw == 1) {
              const float* __restrict src = in_row + r.in_offset;
              for (int64_t ow = r.lo; ow < r.hi; ++ow) out[ow] += w * src[ow];
            } else {
              for (int64_t ow = r.lo; ow < r.hi; ++ow) out[ow] += w * in_row[ow * sw + r.in_offset];
            }
          }
        }
      }
    }
  }
}

}  // namespace

ConvGeometry ConvGeometry::from(const ConvAttrs& a, const Shape& in_shape, const Shape& out_shape) {
  FB_ASSERT(a.dims >= 1 && a.dims <= 3, "conv dims " + std::to_string(a.dims));
  FB_ASSERT(static_cast<int>(in_shape.size()) == a.dims + 2 && out_shape.size() == in_shape.size(),
            "conv shapes " + shape_str(in_shape) + " -> " + shape_str(out_shape));
  ConvGeometry g;
  g.c_in = in_shape[1];
  g.c_out = out_shape[1];
  FB_ASSERT(g.c_out == a.out_channels, "conv output channels");
  const int lead = 3 - a.dims;  // leading unit dims
  for (int d = 0; d < a.dims; ++d) {
    const int gd = lead + d;
    g.in[gd] = in_shape[2 + d];
    g.out[gd] = out_shape[2 + d];
    g.kernel[gd] = a.kernel[d];
    g.stride[gd] = a.stride[d];
    g.padding[gd] = a.padding[d];
    g.dilation[gd] = a.dilation[d];
    FB_ASSERT(g.kernel[gd] >= 1 && g.stride[gd] >= 1 && g.dilation[gd] >= 1 && g.padding[gd] >= 0,
              "conv attributes");
    const int64_t expect = (g.in[gd] + 2 * g.padding[gd] - g.dilation[gd] * (g.kernel[gd] - 1) - 1) / g.stride[gd] + 1;
    FB_ASSERT(g.out[gd] == expect, "conv output size " + shape_str(out_shape) + " for input " + shape_str(in_shape));
  }
  return g;
}

void conv_forward(const ConvGeometry& g, const float* x, const float* weight, const float* bias, float* y,
                  int64_t n_begin, int64_t n_end) {
  std::vector<ColumnRange> cols(static_cast<size_t>(g.kernel[2]));
  for (int64_t kw = 0; kw < g.kernel[2]; ++kw)
    cols[static_cast<size_t>(kw)] = column_range(kw, g.in[2], g.out[2], g.stride[2], g.padding[2], g.dilation[2]);
  const int64_t OD = g.out[0], plane = g.out[1] * g.out[2];
  const int64_t taps_per_co = g.c_in * g.kernel[0] * g.kernel[1] * g.kernel[2];
  const int64_t items = (n_end - n_begin) * g.c_out * OD;
#pragma omp parallel for schedule(static)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t od = item % OD;
    const int64_t co = (item / OD) % g.c_out;
    const int64_t n = n_begin + item / (OD * g.c_out);
    const float* sample = x + n * g.in_sample();
    float* out = y + n * g.out_sample() + (co * OD + od) * plane;
    conv_plane(g, cols.data(), sample, weight + co * taps_per_co, bias ? bias[co] : 0.0f, od, out);
  }
}

}  // namespace fuseblock::cpu
