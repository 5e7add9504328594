// The blocks that only the CPU backend runs in this version (more than one dropout that draws a
// mask; prelu or the per-(sample, channel) input where store_once cannot run the plan: a guarded
// plan or a chain that folds to a constant): every CUDA strategy's unsupported() and the device
// choice ask this one function, so that `--device auto` picks the CPU and `--device cuda` fails
// with the same reason. bf16/f16 storage, prelu and the per-(sample, channel) input are a
// strategy's limits, not the backend's: only store_once runs them (the recompute and fill
// strategies ask recompute_unsupported_forms).
#pragma once
#include <optional>
#include <string>

#include "fuseblock/plan.hpp"

namespace fuseblock {

// Why the CUDA backend cannot run the plan (its pipeline or its guard's fallback), or nothing.
std::optional<std::string> cpu_only_forms(const Plan& plan);
// Why a float32-only strategy cannot run the plan: bf16/f16 storage, or nothing.
std::optional<std::string> float32_only(const Plan& plan);
// The forms of the pipeline that only store_once runs on CUDA (prelu, add_per_sample_channel),
// as a reason, or nothing.
std::optional<std::string> store_once_only_forms(const Pipeline& p);
// Whether the CUDA backend runs the plan only through store_once: bf16/f16 storage or a
// store_once-only form (the device choice then asks store_once whether it runs here).
bool needs_store_once(const Plan& plan);
// float32_only, the norm's parameter type, cpu_only_forms, then store_once_only_forms: what the
// recompute and constant-fill strategies refuse.
std::optional<std::string> recompute_unsupported_forms(const Plan& plan);

}  // namespace fuseblock
