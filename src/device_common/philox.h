// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11) and the
// dropout keep test built on it. Valid C++ and CUDA C++: the CPU backend includes it, and the
// CUDA emitter pastes this file's text into every NVRTC program, so both draw the same bits.
//
// Element i of a dropout with (seed, offset) uses counter (i / 4 as two words, offset as two
// words) and key (seed as two words), and takes output word i % 4. The mask therefore depends on
// nothing but (seed, offset, i): not on threads, grid or block size.
#ifndef FB_PHILOX_H
#define FB_PHILOX_H
#ifndef FB_HD
#ifdef __CUDACC__
#define FB_HD __host__ __device__ __forceinline__
#else
#define FB_HD inline
#endif
#endif

typedef unsigned int fb_u32;
typedef unsigned long long fb_u64;

struct fb_u32x4 { fb_u32 v[4]; };
FB_HD fb_u32x4 fb_philox4x32_10(fb_u32 c0, fb_u32 c1, fb_u32 c2, fb_u32 c3, fb_u32 k0, fb_u32 k1) {
  const fb_u32 M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;  // round multipliers
  const fb_u32 W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;  // key schedule (golden ratio, sqrt(3) - 1)
  for (int r = 0; r < 10; ++r) {
    // One 32 x 32 -> 64-bit product per multiplier, both halves used (one wide multiply on the
    // GPU rather than a high and a low one; on an H100 the run time did not change).
    const fb_u64 p0 = (fb_u64)M0 * (fb_u64)c0, p1 = (fb_u64)M1 * (fb_u64)c2;
    fb_u32 h0 = (fb_u32)(p0 >> 32), l0 = (fb_u32)p0;
    fb_u32 h1 = (fb_u32)(p1 >> 32), l1 = (fb_u32)p1;
    fb_u32 n0 = h1 ^ c1 ^ k0, n2 = h0 ^ c3 ^ k1;
    c0 = n0; c1 = l1; c2 = n2; c3 = l0;
    k0 += W0; k1 += W1;
  }
  fb_u32x4 out;
  out.v[0] = c0; out.v[1] = c1; out.v[2] = c2; out.v[3] = c3;
  return out;
}

// The four 24-bit uniform draws of the counter block holding element index `block4 * 4 + j`.
FB_HD fb_u32x4 fb_dropout_bits(fb_u64 seed, fb_u64 offset, fb_u64 block4) {
  fb_u32x4 r = fb_philox4x32_10((fb_u32)block4, (fb_u32)(block4 >> 32), (fb_u32)offset,
                                (fb_u32)(offset >> 32), (fb_u32)seed, (fb_u32)(seed >> 32));
  for (int j = 0; j < 4; ++j) r.v[j] >>= 8;
  return r;
}

// Keep test: a 24-bit draw u is kept when u < keep_threshold, where
// keep_threshold = the number of 24-bit values below (1 - p) * 2^24 (fb_keep_threshold).
// Integer comparison keeps CPU and CUDA bit-identical.
FB_HD fb_u32 fb_keep_threshold(double p) {
  double t = (1.0 - p) * 16777216.0;
  if (t <= 0.0) return 0u;
  if (t >= 16777216.0) return 16777216u;
  fb_u32 i = (fb_u32)t;
  return ((double)i < t) ? i + 1u : i;  // ceil: u < t  <=>  u < ceil(t) for integer u
}

// The value that a kept element is multiplied by: float32(1 / float32(1 - p)), as PyTorch's
// fused dropout computes its scale.
// p = 1 keeps nothing and PyTorch returns x * 0 there: the scale is then 0, not inf, so that a
// finite x gives 0 and a NaN or Inf gives NaN.
FB_HD float fb_dropout_scale(double p) {
  float keep = (float)(1.0 - p);
  if (keep <= 0.0f) return 0.0f;
  return (float)(1.0 / (double)keep);
}

// x * mask * scale, in that order, as PyTorch does: a dropped NaN or Inf gives NaN.
FB_HD float fb_dropout_apply(float x, bool keep, float scale) {
  return x * (keep ? 1.0f : 0.0f) * scale;
}

#endif
