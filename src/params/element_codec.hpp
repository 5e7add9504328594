// Tensor data in a file's element type <-> the float values a Tensor holds (fuseblock/tensor.hpp):
// f32 bytes as they are, bf16 and f16 as 2-byte little-endian values converted exactly. The .npy
// and safetensors readers and writers share it, so both formats convert the same way.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "fuseblock/dtype.hpp"
#include "fuseblock/tensor.hpp"
#include "params/file_io.hpp"

namespace fuseblock::detail {

// Reads numel(shape) elements of type d at `offset` of f (the caller checked the byte count) into
// a Tensor tagged d.
Tensor read_elements(const InputFile& f, uint64_t offset, Shape shape, DType d, const std::string& what);

// The bytes of t's values in t's dtype. `storage` keeps converted data alive until the chunk is
// written; for f32 the chunk points at t itself.
Chunk element_bytes(const Tensor& t, std::vector<uint16_t>& storage);

}  // namespace fuseblock::detail
