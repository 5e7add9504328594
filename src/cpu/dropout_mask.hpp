// Dropout's keep mask on the CPU, read in element order: one Philox block serves four
// consecutive elements, so it is computed once per four (device_common/philox.h defines the mask).
#pragma once
#include <cstdint>

#include "device_common/philox.h"
#include "fuseblock/ir.hpp"

namespace fuseblock::cpu {

class DropoutMask {
 public:
  explicit DropoutMask(const DropoutAttrs& d)
      : seed_(d.seed), offset_(d.offset), threshold_(fb_keep_threshold(d.p)), scale_(fb_dropout_scale(d.p)) {}

  // Whether the element with flat index i (over the whole output tensor) is kept.
  bool keep(int64_t i) {
    const int64_t block = i >> 2;
    if (block != block_) {
      bits_ = fb_dropout_bits(seed_, offset_, static_cast<fb_u64>(block));
      block_ = block;
    }
    return bits_.v[i & 3] < threshold_;
  }
  float scale() const { return scale_; }
  float apply(float x, int64_t i) { return fb_dropout_apply(x, keep(i), scale_); }

 private:
  fb_u64 seed_, offset_;
  fb_u32 threshold_;
  float scale_;
  int64_t block_ = -1;
  fb_u32x4 bits_{};
};

}  // namespace fuseblock::cpu
