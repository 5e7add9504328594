// NVRTC options every program is compiled with: no FMA contraction (the pointwise formulas round
// as on the CPU; kernels call fmaf where they mean it) and line info for the sanitizers.
#pragma once
#include <string>
#include <vector>

namespace fuseblock::cuda {

inline std::vector<std::string> program_compile_options() { return {"--fmad=false", "-lineinfo"}; }

}  // namespace fuseblock::cuda
