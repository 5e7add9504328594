#include "cuda/strategies/store_once/store_once_layout.hpp"

#include <algorithm>

namespace fuseblock::cuda {
namespace {

constexpr int64_t kWaveBlocks = 132 * 8;  // an H200's SMs x resident 256-thread blocks
constexpr int64_t kMinChunk = 4096;       // below this a chunk's block is mostly launch overhead
constexpr int64_t kMinApplyElems = 8192;  // elements an apply block should at least own

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

StoreOnceLayout store_once_layout(const Pipeline& p) {
  StoreOnceLayout l;
  const Shape& out = p.output_shape;
  l.n = out[0];
  l.channels = out[1];
  l.plane = 1;
  for (size_t d = 2; d < out.size(); ++d) l.plane *= out[d];
  l.groups = p.norm ? p.norm->num_groups : 1;
  l.cpg = l.channels / std::max<int64_t>(l.groups, 1);
  l.pack = dtype_info(p.types.storage).pack_elems;
  l.vec = l.plane % l.pack == 0;
  const int unit = l.vec ? l.pack : 4;
  // Statistics: enough chunks per plane that the grid fills a wave when planes are few and big
  // (MONAI 3-D: 64 planes of 884736), one chunk when planes are many (SD: 2560 of 4096).
  const int64_t planes = std::max<int64_t>(l.n * l.channels, 1);
  l.chunks = std::max<int64_t>(1, std::min(ceil_div(kWaveBlocks, planes), l.plane / kMinChunk));
  l.chunk = ceil_div(ceil_div(std::max<int64_t>(l.plane, 1), l.chunks), unit) * unit;  // whole units
  l.chunks = ceil_div(std::max<int64_t>(l.plane, 1), l.chunk);  // no empty chunk after rounding up
  // Apply: two waves of blocks over the (sample, group)s, none owning fewer than kMinApplyElems.
  const int64_t group_elems = l.cpg * l.plane;
  const int64_t ng = std::max<int64_t>(l.n * l.groups, 1);
  l.apply_blocks = std::max<int64_t>(1, std::min(ceil_div(2 * kWaveBlocks, ng), ceil_div(group_elems, kMinApplyElems)));
  // Units of a group: packs (vec: a group starts and ends on a pack), else 4-element quads of the
  // flat output that overlap the group (its first and last may be shared with a neighbour).
  const int64_t units = l.vec ? group_elems / unit : ceil_div(group_elems, 4) + 1;
  l.units_per_block = ceil_div(units, l.apply_blocks);
  return l;
}

}  // namespace fuseblock::cuda
