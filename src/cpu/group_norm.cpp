// GroupNorm statistics: mean, then the mean squared deviation from it (two passes in double).
// Each group is cut into fixed blocks whose partial sums are combined in order, so the result
// is parallel over blocks yet does not depend on the thread count.
#include "cpu/group_norm.hpp"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace fuseblock::cpu {

namespace {

constexpr int64_t kStatBlock = 16384;  // elements per partial sum

// Four interleaved accumulators: shorter dependency chains, still a fixed summation order.
double block_sum(const float* v, int64_t count) {
  double s[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= count; i += 4)
    for (int k = 0; k < 4; ++k) s[k] += v[i + k];
  for (; i < count; ++i) s[0] += v[i];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

double block_squared_deviation(const float* v, int64_t count, double mean) {
  double s[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= count; i += 4)
    for (int k = 0; k < 4; ++k) {
      const double d = v[i + k] - mean;
      s[k] += d * d;
    }
  for (; i < count; ++i) {
    const double d = v[i] - mean;
    s[0] += d * d;
  }
  return (s[0] + s[1]) + (s[2] + s[3]);
}

}  // namespace

void group_norm_fold(const GroupNormAttrs& attrs, int64_t channels, int64_t spatial, int64_t samples, const float* y,
                     const float* gamma, const float* beta, float* scale, float* shift) {
  const int64_t G = attrs.num_groups;
  FB_ASSERT(G > 0 && channels % G == 0, "group_norm groups " + std::to_string(G) + " for " +
                                            std::to_string(channels) + " channels");
  const int64_t group_len = channels / G * spatial;
  const int64_t groups = samples * G;
  const int64_t blocks = group_len == 0 ? 0 : (group_len + kStatBlock - 1) / kStatBlock;
  std::vector<double> partial(static_cast<size_t>(groups * blocks));
  std::vector<double> mean(static_cast<size_t>(groups)), rstd(static_cast<size_t>(groups));
  const auto block_len = [&](int64_t b) { return std::min(kStatBlock, group_len - b * kStatBlock); };
  const double nan = std::numeric_limits<double>::quiet_NaN();

  // Pass 1: mean.
#pragma omp parallel for schedule(static)
  for (int64_t item = 0; item < groups * blocks; ++item) {
    const int64_t grp = item / blocks, b = item % blocks;
    partial[static_cast<size_t>(item)] = block_sum(y + grp * group_len + b * kStatBlock, block_len(b));
  }
  for (int64_t grp = 0; grp < groups; ++grp) {
    double s = 0;
    for (int64_t b = 0; b < blocks; ++b) s += partial[static_cast<size_t>(grp * blocks + b)];
    mean[static_cast<size_t>(grp)] = group_len == 0 ? nan : s / static_cast<double>(group_len);
  }
  // Pass 2: biased variance about that mean.
#pragma omp parallel for schedule(static)
  for (int64_t item = 0; item < groups * blocks; ++item) {
    const int64_t grp = item / blocks, b = item % blocks;
    partial[static_cast<size_t>(item)] =
        block_squared_deviation(y + grp * group_len + b * kStatBlock, block_len(b), mean[static_cast<size_t>(grp)]);
  }
  for (int64_t grp = 0; grp < groups; ++grp) {
    double s = 0;
    for (int64_t b = 0; b < blocks; ++b) s += partial[static_cast<size_t>(grp * blocks + b)];
    const double m = mean[static_cast<size_t>(grp)];
    const double var = group_len == 0 ? nan : s / static_cast<double>(group_len);
    // A NaN or Inf in the group: mean or variance is non-finite; the whole group becomes NaN.
    const bool finite = std::isfinite(m) && std::isfinite(var);
    rstd[static_cast<size_t>(grp)] = finite ? 1.0 / std::sqrt(var + attrs.eps) : nan;
    if (!finite) mean[static_cast<size_t>(grp)] = nan;
  }

  const int64_t per_group = channels / G;
  for (int64_t n = 0; n < samples; ++n) {
    for (int64_t c = 0; c < channels; ++c) {
      const size_t grp = static_cast<size_t>(n * G + c / per_group);
      const double g = gamma ? static_cast<double>(gamma[c]) : 1.0;
      const double b = beta ? static_cast<double>(beta[c]) : 0.0;
      const double a = rstd[grp] * g;
      scale[n * channels + c] = static_cast<float>(a);
      shift[n * channels + c] = static_cast<float>(b - mean[grp] * a);
    }
  }
}

}  // namespace fuseblock::cpu
