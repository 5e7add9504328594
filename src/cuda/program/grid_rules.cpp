// Grid rules resolved against residency (grid_rules.hpp).
#include "cuda/program/grid_rules.hpp"

#include <algorithm>

namespace fuseblock::cuda {
namespace {
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
}  // namespace

int64_t guard_blocks_per_sample(int64_t resident_blocks, int64_t n, int64_t in_sample) {
  const int64_t per_sample = n > 0 ? resident_blocks / n : resident_blocks;
  return std::max<int64_t>(1, std::min(per_sample, (in_sample + 1023) / 1024));
}

ResolvedGrid resolve_grid(const Grid& g, int64_t resident) {
  ResolvedGrid l;
  const int64_t n = std::max<int64_t>(g.samples, 1);
  auto slice_of = [&](int64_t bps) { return ceil_div(ceil_div(g.sample_elems, bps), 4) * 4; };
  int64_t gx = g.grid_x;
  switch (g.rule) {
    case GridRule::Fixed:
      l.grid_y = g.grid_y;
      break;
    case GridRule::GuardSlices:
      l.blocks_per_sample = static_cast<int>(guard_blocks_per_sample(resident, g.samples, g.sample_elems));
      l.slice = slice_of(l.blocks_per_sample);
      gx = g.samples * l.blocks_per_sample;
      break;
    case GridRule::FillSlices:
      // Enough blocks to fill the chip once, each owning a slice of one sample's input.
      l.blocks_per_sample =
          static_cast<int>(std::max<int64_t>(1, std::min(ceil_div(resident, n), ceil_div(g.sample_elems, 1024))));
      l.slice = slice_of(l.blocks_per_sample);
      gx = g.samples * l.blocks_per_sample;
      l.quads_per_block = gx > 0 ? ceil_div(ceil_div(g.output_elems, 4), gx) : 0;
      break;
    case GridRule::ConvTiles: {
      const int64_t capacity = std::max<int64_t>(1, resident / g.grid_y);
      gx = std::max<int64_t>(1, std::min(g.units, capacity));
      l.grid_y = g.grid_y;
      break;
    }
    case GridRule::SampleRuns:
      l.blocks_per_sample = static_cast<int>(std::clamp<int64_t>(resident / n, 1, g.max_per_sample));
      gx = g.samples * l.blocks_per_sample;
      break;
  }
  l.grid_x = static_cast<unsigned>(gx);
  return l;
}

}  // namespace fuseblock::cuda
