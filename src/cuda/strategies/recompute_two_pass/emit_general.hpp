// Emission of the general path (a chain that does not fold): see emit_general.cpp.
#pragma once
#include <string>

#include "cuda/engines/conv_geometry.hpp"
#include "cuda/codegen/source_writer.hpp"
#include "fuseblock/plan.hpp"

namespace fuseblock::cuda {

struct GeneralKernelNames {
  std::string stats;     // empty without GroupNorm
  std::string finalize;  // empty without GroupNorm
  std::string output;
};

void emit_general_kernels(SourceWriter& w, const Pipeline& p, const ConvGeometry& g, bool gated,
                          GeneralKernelNames* names);

}  // namespace fuseblock::cuda
