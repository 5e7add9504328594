#include "device_common/philox.h"
#include "fuseblock/random.hpp"

namespace fuseblock {

// A stream id no dropout uses by accident (dropout offsets count up from 0).
static constexpr uint64_t kInputStream = 0x9E3779B97F4A7C15ull;

Tensor uniform_tensor(const Shape& shape, uint64_t seed, float lo, float hi) {
  Tensor t(shape);
  float* d = t.data();
  const int64_t n = t.numel();
  const float span = hi - lo;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < (n + 3) / 4; ++b) {
    fb_u32x4 r = fb_dropout_bits(seed, kInputStream, static_cast<uint64_t>(b));
    for (int j = 0; j < 4 && b * 4 + j < n; ++j) {
      float u = static_cast<float>(r.v[j]) * (1.0f / 16777216.0f);  // exact: 24 bits
      float v = lo + span * u;
      d[b * 4 + j] = v < hi ? v : lo;  // rounding must not reach hi
    }
  }
  return t;
}

}  // namespace fuseblock
