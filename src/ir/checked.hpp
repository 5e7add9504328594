// Overflow-checked int64 arithmetic for sizes and indices that come from user input (spec
// attributes, tensor file headers, Python arguments). A CheckedInt remembers whether any step of
// the expression that made it overflowed, so a whole formula is written as it reads and checked
// once at the end:
//
//   CheckedInt span = CheckedInt(dilation) * (CheckedInt(kernel) - 1) + 1;
//   if (!span.ok()) fail_at(b, op, "dilation", "... too large ...");
//
// Division by zero counts as an overflow too (the caller checks divisors >= 1 before, so it is
// a safety net, not a feature).
#pragma once
#include <cstdint>
#include <optional>

#include "fuseblock/tensor.hpp"

namespace fuseblock {

class CheckedInt {
 public:
  constexpr CheckedInt(int64_t v = 0) : value_(v) {}  // NOLINT: implicit, so that `x * 2` reads naturally

  bool ok() const { return !overflow_; }
  // The value; only meaningful when ok().
  int64_t value() const { return value_; }
  std::optional<int64_t> get() const { return ok() ? std::optional<int64_t>(value_) : std::nullopt; }

  friend CheckedInt operator+(CheckedInt a, CheckedInt b) {
    CheckedInt r = a.merged(b);
    r.overflow_ |= __builtin_add_overflow(a.value_, b.value_, &r.value_);
    return r;
  }
  friend CheckedInt operator-(CheckedInt a, CheckedInt b) {
    CheckedInt r = a.merged(b);
    r.overflow_ |= __builtin_sub_overflow(a.value_, b.value_, &r.value_);
    return r;
  }
  friend CheckedInt operator*(CheckedInt a, CheckedInt b) {
    CheckedInt r = a.merged(b);
    r.overflow_ |= __builtin_mul_overflow(a.value_, b.value_, &r.value_);
    return r;
  }
  friend CheckedInt operator/(CheckedInt a, CheckedInt b) {
    CheckedInt r = a.merged(b);
    if (b.value_ == 0 || (a.value_ == INT64_MIN && b.value_ == -1)) r.overflow_ = true;
    else r.value_ = a.value_ / b.value_;
    return r;
  }

 private:
  CheckedInt merged(CheckedInt other) const {
    CheckedInt r;
    r.overflow_ = overflow_ || other.overflow_;
    return r;
  }

  int64_t value_ = 0;
  bool overflow_ = false;
};

// The product of the dimensions; nullopt when a dimension is negative or the product overflows.
inline std::optional<int64_t> checked_numel(const Shape& shape) {
  CheckedInt n = 1;
  for (int64_t d : shape) {
    if (d < 0) return std::nullopt;
    n = n * d;
  }
  return n.get();
}

// Bytes of a tensor of `shape` with `elem_size`-byte elements; nullopt as checked_numel, or when
// the byte count overflows.
inline std::optional<int64_t> checked_nbytes(const Shape& shape, int64_t elem_size) {
  std::optional<int64_t> n = checked_numel(shape);
  if (!n) return std::nullopt;
  return (CheckedInt(*n) * elem_size).get();
}

}  // namespace fuseblock
