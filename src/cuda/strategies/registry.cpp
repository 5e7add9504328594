// The strategies, one line each. A new strategy is a folder beside this file
// and a line here.
#include <fmt/format.h>

#include "cuda/strategies/constant_fill/constant_fill.hpp"
#include "cuda/strategies/recompute_sample_runs/recompute_sample_runs.hpp"
#include "cuda/strategies/recompute_two_pass/recompute_two_pass.hpp"
#include "cuda/strategies/store_once/store_once.hpp"

namespace fuseblock::cuda {

const std::vector<const ConvStrategy*>& conv_strategies() {
  static const ConstantFill constant_fill;
  static const RecomputeSampleRuns recompute_sample_runs;
  static const RecomputeTwoPass recompute_two_pass;
  static const StoreOnce store_once;
  static const std::vector<const ConvStrategy*> all{&constant_fill, &recompute_sample_runs, &recompute_two_pass,
                                                    &store_once};
  return all;
}

const ConvStrategy* find_strategy(const std::string& name) {
  for (const ConvStrategy* s : conv_strategies())
    if (name == s->name()) return s;
  return nullptr;
}

std::string describe(const ConvTuning& c) {
  if (c.ig_bm > 0)
    return fmt::format("igemm {}x{}, warp {}x{}, {} block{}/SM", c.ig_bm, c.ig_bn, c.ig_wm, c.ig_wn, c.ig_blocks,
                       c.ig_blocks == 1 ? "" : "s");
  return fmt::format("mpw {}, {} blocks/SM, epilogue unroll {}", c.mma_mpw, c.min_blocks, c.epilogue_unroll);
}

}  // namespace fuseblock::cuda
