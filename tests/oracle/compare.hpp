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

// Fills y with a signalling-NaN pattern that no arithmetic produces (any operation on it quiets
// it), so that an element still holding it afterwards was never written.
void poison(Tensor& y);
int64_t count_poisoned(const Tensor& y);

}  // namespace fuseblock
