// Element conversion for tensor files (element_codec.hpp).
#include "params/element_codec.hpp"

#include <bit>

namespace fuseblock::detail {

static_assert(std::endian::native == std::endian::little, "tensor files are read by memcpy on a little-endian host");

Tensor read_elements(const InputFile& f, uint64_t offset, Shape shape, DType d, const std::string& what) {
  Tensor t(std::move(shape));
  const uint64_t n = static_cast<uint64_t>(t.numel());
  if (d == DType::F32) {
    f.read_at(offset, t.data(), n * 4, what);
    return t;
  }
  std::vector<uint16_t> raw(static_cast<size_t>(n));
  f.read_at(offset, raw.data(), n * 2, what);
  float* out = t.data();
  if (d == DType::BF16)
    for (uint64_t i = 0; i < n; ++i) out[i] = bf16_bits_to_float(raw[i]);
  else
    for (uint64_t i = 0; i < n; ++i) out[i] = f16_bits_to_float(raw[i]);
  t.round_to(d);  // tags it; the values are already of d
  return t;
}

Chunk element_bytes(const Tensor& t, std::vector<uint16_t>& storage) {
  const size_t n = static_cast<size_t>(t.numel());
  if (t.dtype() == DType::F32) return {t.data(), n * 4};
  storage.resize(n);
  const float* v = t.data();
  if (t.dtype() == DType::BF16)
    for (size_t i = 0; i < n; ++i) storage[i] = float_to_bf16_bits(v[i]);
  else
    for (size_t i = 0; i < n; ++i) storage[i] = float_to_f16_bits(v[i]);
  return {storage.data(), n * 2};
}

}  // namespace fuseblock::detail
