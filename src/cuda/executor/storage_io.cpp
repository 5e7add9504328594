#include "cuda/executor/storage_io.hpp"

#include <cstring>

namespace fuseblock::cuda {

std::vector<uint8_t> storage_bytes(const Tensor& t, DType d) {
  const std::vector<float>& v = t.vec();
  if (d == DType::F32) {
    std::vector<uint8_t> out(v.size() * 4);
    if (!v.empty()) std::memcpy(out.data(), v.data(), out.size());
    return out;
  }
  std::vector<uint8_t> out(v.size() * 2);
  for (size_t i = 0; i < v.size(); ++i) {
    const uint16_t b = d == DType::BF16 ? float_to_bf16_bits(v[i]) : float_to_f16_bits(v[i]);
    std::memcpy(out.data() + 2 * i, &b, 2);
  }
  return out;
}

DeviceBuffer to_device_as(const Tensor& t, DType d) {
  const std::vector<uint8_t> bytes = storage_bytes(t, d);
  DeviceBuffer b(bytes.size());
  if (!bytes.empty()) b.upload(bytes.data(), bytes.size());
  return b;
}

void download_as(const DeviceBuffer& b, DType d, Tensor& y) {
  const size_t n = static_cast<size_t>(y.numel());
  if (d == DType::F32) {
    b.download(y.data(), n * 4);
    return;
  }
  std::vector<uint16_t> bits(n);
  b.download(bits.data(), n * 2);
  for (size_t i = 0; i < n; ++i)
    y.data()[i] = d == DType::BF16 ? bf16_bits_to_float(bits[i]) : f16_bits_to_float(bits[i]);
}

}  // namespace fuseblock::cuda
