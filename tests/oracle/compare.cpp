#include "oracle/compare.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

namespace fuseblock {

namespace {

constexpr uint32_t kPoisonBits = 0x7fa5a5a5u;  // a signalling NaN with a recognisable payload

uint32_t bits_of(float v) {
  uint32_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

const char* value_class(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "+inf" : "-inf";
  return "finite";
}

}  // namespace

Comparison compare_with_oracle(const Tensor& y, const std::vector<double>& ref, const OracleStats& stats,
                               double rtol) {
  Comparison c;
  std::ostringstream msg;
  msg.precision(9);
  if (static_cast<size_t>(y.numel()) != ref.size()) {
    c.ok = false;
    msg << "size " << y.numel() << " != oracle size " << ref.size();
    c.message = msg.str();
    return c;
  }
  const double scale = std::max(stats.magnitude, stats.norm_terms);
  int shown = 0, bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double got = y.data()[i], want = ref[i];
    bool ok;
    if (!std::isfinite(want) || !std::isfinite(got)) {
      ok = std::string(value_class(got)) == value_class(want);
    } else {
      const double tol = rtol * (scale + std::fabs(want));
      const double ratio = tol > 0 ? std::fabs(got - want) / tol : (got == want ? 0.0 : INFINITY);
      c.worst = std::max(c.worst, ratio);
      ok = ratio <= 1.0;
    }
    if (!ok) {
      ++bad;
      if (shown++ < 8) msg << "  [" << i << "] got " << got << " (" << value_class(got) << "), oracle " << want << "\n";
    }
  }
  if (bad) {
    c.ok = false;
    std::ostringstream head;
    head << bad << " of " << ref.size() << " elements differ (rtol " << rtol << ", magnitude " << stats.magnitude
         << ", GroupNorm terms " << stats.norm_terms << "):\n";
    c.message = head.str() + msg.str();
  }
  return c;
}

double rtol_for(DType storage, bool tf32) {
  if (storage != DType::F32) return 2e-2;
  return tf32 ? 3e-3 : 1e-5;
}

void poison(Tensor& y) {
  float v;
  std::memcpy(&v, &kPoisonBits, sizeof v);
  std::fill(y.vec().begin(), y.vec().end(), v);
}

int64_t count_poisoned(const Tensor& y) {
  return std::count_if(y.vec().begin(), y.vec().end(), [](float v) { return bits_of(v) == kPoisonBits; });
}

}  // namespace fuseblock
