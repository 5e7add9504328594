// The blocks that only the CPU backend runs in this version (bf16/f16 storage, instance_norm, prelu, dropout
// before the chain's end, the per-(sample, channel) input): every CUDA strategy's unsupported()
// and the device choice ask this one function, so that `--device auto` picks the CPU and
// `--device cuda` fails with the same reason.
#pragma once
#include <optional>
#include <string>

#include "fuseblock/plan.hpp"

namespace fuseblock {

// Why the CUDA backend cannot run the plan (its pipeline or its guard's fallback), or nothing.
std::optional<std::string> cpu_only_forms(const Plan& plan);

}  // namespace fuseblock
