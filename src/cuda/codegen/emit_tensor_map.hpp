// The device side of a tensor-map argument (ArgKind::TensorMap): NVRTC sees no cuda.h, so a
// program that takes a CUtensorMap declares its own 128-byte, 64-byte aligned stand-in for it and
// takes the parameter as `const __grid_constant__ fb_tensor_map name` (by value in parameter
// space, whose address the TMA instructions read; the host encodes it, executor/tensor_map.hpp).
#pragma once
#include "cuda/codegen/source_writer.hpp"

namespace fuseblock::cuda {

inline constexpr const char* kTensorMapType = "fb_tensor_map";

// The struct, once per program, before the first kernel that takes one.
void emit_tensor_map_type(SourceWriter& w);

}  // namespace fuseblock::cuda
