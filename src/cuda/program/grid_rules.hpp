// A step's grid rule (launch_program.hpp's GridRule) resolved against the blocks of its kernel that
// the device holds resident at once: the grid and the scalars the rule hands the kernel. Pure, so
// the strategies' tests and the executor share one definition.
#pragma once
#include <cstdint>

#include "cuda/program/launch_program.hpp"

namespace fuseblock::cuda {

struct ResolvedGrid {
  unsigned grid_x = 0, grid_y = 1;
  int blocks_per_sample = 0;                // GuardSlices, FillSlices, SampleRuns
  long long slice = 0, quads_per_block = 0;  // GuardSlices, FillSlices
};

// `resident_blocks`: blocks per SM of the kernel times the SMs.
ResolvedGrid resolve_grid(const Grid& g, int64_t resident_blocks);

// The guard's blocks per sample: as many blocks as are resident at once (rounded down to whole
// samples, so the grid is a single wave), each owning at least 1024 input elements.
int64_t guard_blocks_per_sample(int64_t resident_blocks, int64_t n, int64_t in_sample);

}  // namespace fuseblock::cuda
