#include "plan/cpu_only_forms.hpp"

#include <fmt/format.h>

namespace fuseblock {
namespace {

// The forms `p` uses that the CUDA kernels do not emit, as spec keywords.
std::string forms_in(const Pipeline& p) {
  std::string found;
  auto add = [&](const char* what) {
    if (found.find(what) == std::string::npos) found += (found.empty() ? "" : ", ") + std::string(what);
  };
  // instance_norm is GroupNorm with one channel a group, which every strategy runs; a dropout in
  // the chain runs in the shared epilogue (cuda/codegen/emit_epilogue.hpp), which draws one mask:
  // the dropout state holds one (seed, offset).
  if (p.channel_add()) add("add_per_sample_channel");
  int drawing = p.dropout.is_identity() ? 0 : 1;
  for (const Op& op : p.chain)
    if (op.kind == OpKind::PRelu) add("prelu");
    else if (op.kind == OpKind::Dropout && !op.dropout.is_identity()) ++drawing;
  if (drawing > 1) add("more than one dropout that draws a mask");
  return found;
}

}  // namespace

std::optional<std::string> float32_only(const Plan& plan) {
  if (plan.pipeline.types.storage == DType::F32) return std::nullopt;
  return fmt::format("{} storage: this strategy's kernels are float32 only (store_once runs bf16 and f16)",
                     dtype_name(plan.pipeline.types.storage));
}

std::optional<std::string> recompute_unsupported_forms(const Plan& plan) {
  if (auto why = float32_only(plan)) return why;
  // Reached once these kernels take 16-bit storage: they read the norm parameters in it.
  if (plan.pipeline.types.norm_params)
    return fmt::format("the norm's parameters are {}: this strategy's kernels read them in the storage type "
                       "(store_once reads them in their own)",
                       dtype_name(*plan.pipeline.types.norm_params));
  return cpu_only_forms(plan);
}

std::optional<std::string> cpu_only_forms(const Plan& plan) {
  std::string found = forms_in(plan.pipeline);
  if (plan.guard) {
    const std::string more = forms_in(plan.fallback);
    if (!more.empty() && found.find(more) == std::string::npos) found += (found.empty() ? "" : ", ") + more;
  }
  if (found.empty()) return std::nullopt;
  return fmt::format("the block uses {}, which run on the CPU backend in this version (the CUDA strategies "
                     "run conv -> group_norm or instance_norm -> pointwise ops with at most one dropout that draws a mask, "
                     "anywhere in the chain)",
                     found);
}

}  // namespace fuseblock
