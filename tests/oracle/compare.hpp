// Comparing a backend's float32 output with the oracle, and checking that a backend wrote
// every element of its output.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "fuseblock/tensor.hpp"
#include "oracle/oracle.hpp"

namespace fuseblock {

struct Comparison {
  bool ok = true;
  std::string message;  // the first mismatches, with their flat index and values
  double worst = 0.0;   // largest |y - ref| / tolerance over finite elements (<= 1 passes)
};

// Same NaN positions and same signed Inf positions; every finite element within
// rtol * (max(magnitude, norm_terms) + |ref|), with the oracle's OracleStats: float32's
// rounding is relative to the values it rounds, GroupNorm's a * x and b included.
Comparison compare_with_oracle(const Tensor& y, const std::vector<double>& ref, const OracleStats& stats,
                               double rtol = 1e-5);

// The tolerance for a storage type (design.md section 5): f32 1e-5 (TF32 matmuls: 3e-3, pass
// tf32), bf16 and f16 2e-2, relative to the values' magnitude as compare_with_oracle measures it.
double rtol_for(DType storage, bool tf32 = false);

// Fills y with a signalling-NaN pattern that no arithmetic produces (any operation on it quiets
// it), so that an element still holding it afterwards was never written.
void poison(Tensor& y);
int64_t count_poisoned(const Tensor& y);

}  // namespace fuseblock
