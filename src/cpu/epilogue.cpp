// The epilogue over aligned blocks of the flat output, each cut where the channel changes: the
// folded normalization, then each op of the chain over the segment, then the dropout mask, each
// step's result rounded to the storage type.
#include "cpu/epilogue.hpp"

#include <algorithm>

#include "cpu/dropout_mask.hpp"
#include "ops/pointwise_eval.hpp"

namespace fuseblock::cpu {

namespace {

// The slope prelu `op` applies in channel c.
float prelu_slope(const Op& op, const Params& params, int64_t c) {
  const size_t i = static_cast<size_t>(op.pw.param_index);
  FB_ASSERT(i < params.prelu_weight.size(), "prelu without its weight (check_params should have caught it)");
  const Tensor& w = params.prelu_weight[i];
  FB_ASSERT(w.numel() == 1 || c < w.numel(), "prelu weight of " + std::to_string(w.numel()) + " elements");
  return w.data()[w.numel() == 1 ? 0 : c];
}

}  // namespace

void apply_epilogue(const Pipeline& p, const Params& params, const float* scale, const float* shift, float* y,
                    int64_t n_begin, int64_t n_end) {
  const Shape& shape = p.output_shape;
  FB_ASSERT(shape.size() >= 2, "output shape " + shape_str(shape));
  const int64_t channels = shape[1];
  int64_t spatial = 1;
  for (size_t d = 2; d < shape.size(); ++d) spatial *= shape[d];
  const int64_t per_sample = channels * spatial;
  const bool norm = scale != nullptr;
  const bool dropout = !p.dropout.is_identity();
  const int64_t begin = n_begin * per_sample, end = n_end * per_sample;
  if ((!norm && p.chain.empty() && !dropout) || begin >= end) return;
  const int64_t nc_base = n_begin * channels;  // scale/shift start at sample n_begin
  const DType storage = p.types.storage;

  const int64_t first = begin / kEpilogueBlock, last = (end - 1) / kEpilogueBlock;
#pragma omp parallel for schedule(static)
  for (int64_t blk = first; blk <= last; ++blk) {
    DropoutMask mask(p.dropout);
    const int64_t hi = std::min(end, (blk + 1) * kEpilogueBlock);
    for (int64_t i = std::max(begin, blk * kEpilogueBlock); i < hi;) {
      const int64_t nc = i / spatial;  // (sample, channel) over the whole tensor
      const int64_t seg_end = std::min(hi, (nc + 1) * spatial);
      float* v = y + i;
      const int64_t len = seg_end - i;
      // Each step computes in float32 and stores in the storage type, as PyTorch eager does for
      // bf16/f16 (a no-op for f32).
      if (norm) {
        const float a = scale[nc - nc_base], b = shift[nc - nc_base];
        for (int64_t j = 0; j < len; ++j) v[j] = a * v[j] + b;
        round_to(storage, v, len);
      }
      for (const Op& op : p.chain) {
        if (op.kind == OpKind::Dropout) {  // mid-chain: the later ops see x * mask * scale
          if (op.dropout.is_identity()) continue;
          DropoutMask chain_mask(op.dropout);
          for (int64_t j = 0; j < len; ++j) v[j] = chain_mask.apply(v[j], i + j);
        } else if (op.kind == OpKind::PRelu) {
          const float a = prelu_slope(op, params, nc % channels);
          for (int64_t j = 0; j < len; ++j) v[j] = eval_prelu(v[j], a);
        } else {
          for (int64_t j = 0; j < len; ++j) v[j] = eval_pointwise(op, v[j]);
        }
        round_to(storage, v, len);
      }
      if (dropout) {
        for (int64_t j = 0; j < len; ++j) v[j] = mask.apply(v[j], i + j);
        round_to(storage, v, len);
      }
      i = seg_end;
    }
  }
}

}  // namespace fuseblock::cpu
