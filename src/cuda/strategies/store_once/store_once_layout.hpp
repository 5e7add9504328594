// How the store-once kernels cut the work: statistics chunks per (sample, channel) plane and
// apply blocks per (sample, group). Fixed when the program is built (a program never depends on
// the device), sized for about one wave of an H200 (132 SMs).
#pragma once
#include <cstdint>

#include "fuseblock/plan.hpp"

namespace fuseblock::cuda {

struct StoreOnceLayout {
  int64_t n = 0, channels = 0, plane = 0;  // output: samples, channels, elements per plane
  int64_t groups = 1, cpg = 0;             // GroupNorm groups and channels per group (1 and C without a norm)
  int pack = 4;                            // storage elements per 16-byte pack
  bool vec = false;                        // every plane is whole packs: 16-byte loads and stores
  int64_t chunks = 1, chunk = 0;           // statistics chunks per plane and elements per chunk
  int64_t apply_blocks = 1;                // apply blocks per (sample, group)
  int64_t units_per_block = 0;             // apply units (packs, or 4-element quads) per block
  int64_t stats_grid() const { return n * channels * chunks; }
  int64_t apply_grid() const { return n * groups * apply_blocks; }
};

StoreOnceLayout store_once_layout(const Pipeline& p);

}  // namespace fuseblock::cuda
