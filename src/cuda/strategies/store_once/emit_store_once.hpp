// The store-once kernels (after the library conv has stored the conv output, without its bias):
//   fb_so_stats  one block per (sample, channel, chunk): the conv output + bias, rounded as eager
//                rounds it, as (mean, root of M2) partials, scaled so nothing overflows where the
//                values do not (fb_stats_scale); fixed reduction order, no atomics
//   fb_so_apply  blocks per (sample, group): merge the group's partials (Chan, in double), then
//                normalize, affine, the chain and dropout, each step rounded to the storage type
//                as the CPU backend does, 16-byte loads and stores where planes are whole packs
#pragma once
#include "cuda/codegen/source_writer.hpp"
#include "cuda/strategies/store_once/store_once_layout.hpp"

namespace fuseblock::cuda {

constexpr unsigned kStoreOnceThreads = 256;

// stats_kernel: fb_so_stats too (after cuDNN's conv; the igemm engine writes the partials itself).
void emit_store_once_kernels(SourceWriter& w, const Pipeline& p, const StoreOnceLayout& l, bool stats_kernel);

}  // namespace fuseblock::cuda
