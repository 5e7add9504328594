#include "plan/cpu_only_forms.hpp"

#include <fmt/format.h>

namespace fuseblock {
namespace {

void add_form(std::string& found, const std::string& what) {
  if (what.empty()) return;
  if (found.find(what) == std::string::npos) found += (found.empty() ? "" : ", ") + what;
}

// The forms of `p` that store_once's kernels emit and the recompute and fill kernels do not.
std::string store_once_forms_in(const Pipeline& p) {
  std::string found;
  if (p.channel_add()) add_form(found, "add_per_sample_channel");
  for (const Op& op : p.chain)
    if (op.kind == OpKind::PRelu) add_form(found, "prelu");
  return found;
}

// The forms `p` uses that no CUDA kernel emits, as spec keywords.
std::string forms_in(const Pipeline& p) {
  // instance_norm is GroupNorm with one channel a group, which every strategy runs; a dropout in
  // the chain runs in the shared epilogue (cuda/codegen/emit_epilogue.hpp), which draws one mask:
  // the dropout state holds one (seed, offset).
  int drawing = p.dropout.is_identity() ? 0 : 1;
  for (const Op& op : p.chain) drawing += op.kind == OpKind::Dropout && !op.dropout.is_identity();
  return drawing > 1 ? "more than one dropout that draws a mask" : "";
}

}  // namespace

std::optional<std::string> float32_only(const Plan& plan) {
  if (plan.pipeline.types.storage == DType::F32) return std::nullopt;
  return fmt::format("{} storage: this strategy's kernels are float32 only (store_once runs bf16 and f16)",
                     dtype_name(plan.pipeline.types.storage));
}

std::optional<std::string> store_once_only_forms(const Pipeline& p) {
  const std::string found = store_once_forms_in(p);
  if (found.empty()) return std::nullopt;
  // Why only store_once: its apply kernel reads the slopes and the per-(n, c) values once per
  // group from memory, and its statistics read the stored conv, so the add lands before them. The
  // recompute kernels compute the conv twice inside their engines' tiles (mma tf32, the sample
  // runs' pipelined tiles), whose statistics epilogues do not take a run-time input yet, and the
  // fill kernels fold the chain on the host, which prelu's run-time slopes and the add prevent.
  return fmt::format("the block uses {}: only store_once emits these (the recompute strategies' conv engines "
                     "take no per-(sample, channel) input or prelu slopes in their statistics and output "
                     "tiles yet, and constant_fill folds the chain on the host without run-time data)",
                     found);
}

bool needs_store_once(const Plan& plan) {
  return plan.pipeline.types.storage != DType::F32 || store_once_only_forms(plan.pipeline).has_value();
}

std::optional<std::string> recompute_unsupported_forms(const Plan& plan) {
  if (auto why = float32_only(plan)) return why;
  // Reached once these kernels take 16-bit storage: they read the norm parameters in it.
  if (plan.pipeline.types.norm_params)
    return fmt::format("the norm's parameters are {}: this strategy's kernels read them in the storage type "
                       "(store_once reads them in their own)",
                       dtype_name(*plan.pipeline.types.norm_params));
  if (auto why = cpu_only_forms(plan)) return why;
  return store_once_only_forms(plan.pipeline);
}

std::optional<std::string> cpu_only_forms(const Plan& plan) {
  std::string found = forms_in(plan.pipeline);
  if (plan.guard) add_form(found, forms_in(plan.fallback));
  // store_once, the one strategy with prelu and the add, runs neither a guarded plan nor a chain
  // that folds to a constant (constant_fill does, without them).
  if (plan.guard || plan.pipeline.fill_path()) {
    add_form(found, store_once_forms_in(plan.pipeline));
    if (plan.guard) add_form(found, store_once_forms_in(plan.fallback));
  }
  if (found.empty()) return std::nullopt;
  return fmt::format("the block uses {}, which run on the CPU backend in this version (the CUDA strategies "
                     "run conv -> [add_per_sample_channel] -> group_norm or instance_norm -> pointwise ops and prelu "
                     "with at most one dropout that draws a mask, anywhere in the chain; prelu and the add not in a "
                     "guarded block or one whose chain folds to a constant)",
                     found);
}

}  // namespace fuseblock
