// Tensor-map arguments (ArgKind::TensorMap): the checks a TensorMapDesc must pass, which need no
// GPU (the driver's own rules for cuTensorMapEncodeTiled / cuTensorMapEncodeIm2col, so a bad
// description fails with a message naming the field rather than CUDA_ERROR_INVALID_VALUE), and the
// encoding on the host through the driver loaded at run time.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "cuda/program/launch_program.hpp"

namespace fuseblock::cuda {

inline constexpr size_t kTensorMapBytes = 128;  // sizeof(CUtensorMap)

// What is wrong with `t` over a buffer at `address` (0: the address is not checked), or nothing.
std::optional<std::string> tensor_map_invalid(const TensorMapDesc& t, uint64_t address = 0);

// Encodes `t` over the device buffer at `address` into the 128 bytes at `out` (a CUtensorMap,
// 64-byte aligned). Throws a UserError when the driver lacks tensor maps (before CUDA 12) and an
// InternalError naming the description when the checks or the driver refuse it.
void encode_tensor_map(const TensorMapDesc& t, uint64_t address, void* out);

}  // namespace fuseblock::cuda
