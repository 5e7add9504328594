// Device memory owned by RAII buffers, with host copies; the header needs no CUDA headers, so
// tests and the benchmark use it as plain C++ (a device pointer is a 64-bit integer).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace fuseblock::cuda {

using DevicePtr = uint64_t;

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);  // uninitialised; 0 bytes allocates nothing
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  DevicePtr ptr() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  void upload(const void* src, size_t bytes, size_t offset = 0);
  void download(void* dst, size_t bytes, size_t offset = 0) const;
  void fill_u32(uint32_t value);  // every 4-byte word (poisoning outputs)

 private:
  DevicePtr ptr_ = 0;
  size_t bytes_ = 0;
};

// A buffer holding `data` (nothing allocated for an empty vector: ptr() is 0).
DeviceBuffer to_device(const std::vector<float>& data);

// Waits for all work on the current context; surfaces asynchronous errors.
void synchronize();

}  // namespace fuseblock::cuda
