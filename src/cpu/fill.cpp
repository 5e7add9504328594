// The fill path: the constant, or for dropout one of two precomputed values (kept, dropped)
// picked by the mask, over blocks aligned to the mask's Philox blocks.
#include "cpu/fill.hpp"

#include <algorithm>
#include <limits>

#include "cpu/dropout_mask.hpp"
#include "cpu/epilogue.hpp"
#include "ops/pointwise_eval.hpp"

namespace fuseblock::cpu {

float fill_value(const Pipeline& p) {
  FB_ASSERT(!p.chain.empty() && p.chain.front().kind == OpKind::Fill, "fill path without a leading fill op");
  float v = std::numeric_limits<float>::quiet_NaN();  // never read: Fill ignores its input
  for (const Op& op : p.chain) v = round_to(p.types.storage, eval_pointwise(op, v));  // stored after each op
  return v;
}

namespace {

// Whether every element of the fill path is one of two values (kept, dropped): the chain after
// the Fill is made of scalar pointwise ops only.
bool chain_is_scalar(const Pipeline& p) {
  for (const Op& op : p.chain)
    if (!is_pointwise(op.kind) || op.kind == OpKind::PRelu) return false;
  return true;
}

}  // namespace

void fill_samples(const Pipeline& p, const Params& params, float* y, int64_t n_begin, int64_t n_end) {
  if (!chain_is_scalar(p)) {  // the Fill ignores y's contents; the rest is the exact epilogue
    apply_epilogue(p, params, nullptr, nullptr, y, n_begin, n_end);
    return;
  }
  const float value = fill_value(p);
  int64_t per_sample = 1;
  for (size_t d = 1; d < p.output_shape.size(); ++d) per_sample *= p.output_shape[d];
  const int64_t begin = n_begin * per_sample, end = n_end * per_sample;
  if (begin >= end) return;
  const bool dropout = !p.dropout.is_identity();
  const float scale = fb_dropout_scale(p.dropout.p);
  // Through the same formula as the exact path: a NaN or Inf constant stays NaN when dropped.
  const DType storage = p.types.storage;
  const float kept = round_to(storage, fb_dropout_apply(value, true, scale));
  const float dropped = round_to(storage, fb_dropout_apply(value, false, scale));

  const int64_t first = begin / kEpilogueBlock, last = (end - 1) / kEpilogueBlock;
#pragma omp parallel for schedule(static)
  for (int64_t blk = first; blk <= last; ++blk) {
    const int64_t lo = std::max(begin, blk * kEpilogueBlock), hi = std::min(end, (blk + 1) * kEpilogueBlock);
    if (!dropout) {
      std::fill(y + lo, y + hi, value);
      continue;
    }
    DropoutMask mask(p.dropout);
    for (int64_t i = lo; i < hi; ++i) y[i] = mask.keep(i) ? kept : dropped;
  }
}

}  // namespace fuseblock::cpu
