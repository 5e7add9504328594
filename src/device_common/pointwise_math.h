// The pointwise ops of a block, as PyTorch computes them for float32 (its CUDA and CPU kernels'
// formulas), NaN and Inf included. Valid C++ and CUDA C++: the CPU backend and infer_ranges call
// these functions, and the CUDA emitter pastes this file's text into every NVRTC program, so
// every backend evaluates the same formula.
//
// The includer provides expf, erff, tanhf, log1pf (<math.h> on the host; built in under NVRTC).
#ifndef FB_POINTWISE_MATH_H
#define FB_POINTWISE_MATH_H
#ifndef FB_HD
#ifdef __CUDACC__
#define FB_HD __host__ __device__ __forceinline__
#else
#define FB_HD inline
#endif
#endif

FB_HD bool fb_isnan(float x) { return x != x; }

// torch.minimum / torch.maximum: a NaN on either side gives NaN.
FB_HD float fb_minimum(float x, float a) { return (fb_isnan(x) || fb_isnan(a)) ? (x + a) : (a < x ? a : x); }
FB_HD float fb_maximum(float x, float a) { return (fb_isnan(x) || fb_isnan(a)) ? (x + a) : (a > x ? a : x); }

// torch.clamp: NaN input stays NaN; a NaN bound gives NaN; min > max gives max. An absent bound
// is passed as has_lo/has_hi = false.
FB_HD float fb_clamp(float x, bool has_lo, float lo, bool has_hi, float hi) {
  if (fb_isnan(x)) return x;
  if (has_lo && fb_isnan(lo)) return lo;
  if (has_hi && fb_isnan(hi)) return hi;
  if (has_lo) x = x < lo ? lo : x;
  if (has_hi) x = x > hi ? hi : x;
  return x;
}

FB_HD float fb_relu(float x) { return fb_isnan(x) ? x : (x > 0.0f ? x : 0.0f); }
FB_HD float fb_leaky_relu(float x, float slope) { return x > 0.0f ? x : x * slope; }

FB_HD float fb_gelu_erf(float x) { return x * 0.5f * (1.0f + erff(x * 0.70710678118654752440f)); }
FB_HD float fb_gelu_tanh(float x) {
  const float kBeta = 0.79788456080286535588f;  // sqrt(2 / pi)
  const float kKappa = 0.044715f;
  float inner = kBeta * (x + kKappa * x * x * x);
  return 0.5f * x * (1.0f + tanhf(inner));
}

FB_HD float fb_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
FB_HD float fb_silu(float x) { return x / (1.0f + expf(-x)); }
FB_HD float fb_tanh(float x) { return tanhf(x); }
FB_HD float fb_mish(float x) { return x * tanhf(log1pf(expf(x))); }

// x * min(max(x + 3, 0), 6) / 6 with C++'s std::min/std::max (a NaN x stays NaN via the product).
FB_HD float fb_hardswish(float x) {
  float t = x + 3.0f;
  t = (t < 0.0f) ? 0.0f : t;
  t = (6.0f < t) ? 6.0f : t;
  return x * t / 6.0f;
}

FB_HD float fb_softplus(float x, float beta, float threshold) {
  return (x * beta) > threshold ? x : log1pf(expf(x * beta)) / beta;
}

// nn.ELU as PyTorch computes it: expm1(x) * alpha where x is not above 0 (NaN included, which stays NaN).
FB_HD float fb_elu(float x, float alpha) { return x > 0.0f ? x : expm1f(x) * alpha; }

FB_HD float fb_add(float x, float a) { return x + a; }
FB_HD float fb_sub(float x, float a) { return x - a; }
FB_HD float fb_mul(float x, float a) { return x * a; }
FB_HD float fb_div(float x, float a) { return x / a; }

#endif
