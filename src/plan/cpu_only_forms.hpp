// The blocks that only the CPU backend runs in this version (prelu, more than one dropout that
// draws a mask, the per-(sample, channel) input): every CUDA strategy's unsupported() and the
// device choice ask this one function, so that `--device auto` picks the CPU and `--device cuda`
// fails with the same reason. bf16/f16 storage is a strategy's limit, not the backend's: only
// store_once runs it (the recompute and fill strategies ask recompute_unsupported_forms).
#pragma once
#include <optional>
#include <string>

#include "fuseblock/plan.hpp"

namespace fuseblock {

// Why the CUDA backend cannot run the plan (its pipeline or its guard's fallback), or nothing.
std::optional<std::string> cpu_only_forms(const Plan& plan);
// Why a float32-only strategy cannot run the plan: bf16/f16 storage, or nothing.
std::optional<std::string> float32_only(const Plan& plan);
// float32_only, then cpu_only_forms: what the recompute and constant-fill strategies refuse.
std::optional<std::string> recompute_unsupported_forms(const Plan& plan);

}  // namespace fuseblock
