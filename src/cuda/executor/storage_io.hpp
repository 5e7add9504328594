// Host tensors to and from device memory in the plan's storage type: a Tensor holds floats
// (fuseblock/tensor.hpp), the kernels read and write f32, bf16 or f16 elements.
#pragma once
#include <cstdint>
#include <vector>

#include "cuda/runtime/device_memory.hpp"
#include "fuseblock/tensor.hpp"

namespace fuseblock::cuda {

// The tensor's elements as `d` stores them (its values are representable in d: the tensor's promise).
std::vector<uint8_t> storage_bytes(const Tensor& t, DType d);
// A device buffer holding them (nothing allocated for an empty tensor).
DeviceBuffer to_device_as(const Tensor& t, DType d);
// Reads numel(y) elements of `d` from `b` into y's floats.
void download_as(const DeviceBuffer& b, DType d, Tensor& y);

}  // namespace fuseblock::cuda
