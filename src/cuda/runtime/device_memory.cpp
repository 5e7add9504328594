// Device buffers (device_memory.hpp).
#include "cuda/runtime/device_memory.hpp"

#include <utility>

#include "cuda/runtime/driver_api.hpp"
#include "fuseblock/error.hpp"

namespace fuseblock::cuda {

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  CUdeviceptr p = 0;
  FB_CU(cuMemAlloc(&p, bytes));
  ptr_ = p;
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) driver().cuMemFree(ptr_);  // no throw from a destructor
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, 0)), bytes_(std::exchange(o.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_) driver().cuMemFree(ptr_);
    ptr_ = std::exchange(o.ptr_, 0);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

void DeviceBuffer::upload(const void* src, size_t bytes, size_t offset) {
  FB_ASSERT(offset + bytes <= bytes_, "upload past the end of a device buffer");
  if (bytes) FB_CU(cuMemcpyHtoD(ptr_ + offset, src, bytes));
}

void DeviceBuffer::download(void* dst, size_t bytes, size_t offset) const {
  FB_ASSERT(offset + bytes <= bytes_, "download past the end of a device buffer");
  if (bytes) FB_CU(cuMemcpyDtoH(dst, ptr_ + offset, bytes));
}

void DeviceBuffer::fill_u32(uint32_t value) {
  if (bytes_ >= 4) {
    FB_CU(cuMemsetD32Async(ptr_, value, bytes_ / 4, nullptr));
    FB_CU(cuStreamSynchronize(nullptr));
  }
}

DeviceBuffer to_device(const std::vector<float>& data) {
  DeviceBuffer b(data.size() * sizeof(float));
  b.upload(data.data(), data.size() * sizeof(float));
  return b;
}

void synchronize() { FB_CU(cuCtxSynchronize()); }

}  // namespace fuseblock::cuda
