// Tensor-map arguments: checks and host-side encoding (tensor_map.hpp).
#include "cuda/executor/tensor_map.hpp"

#include <fmt/format.h>

#include "cuda/runtime/driver_api.hpp"
#include "fuseblock/error.hpp"

namespace fuseblock::cuda {

std::optional<std::string> tensor_map_invalid(const TensorMapDesc& t, uint64_t address) {
  const bool im2col = t.mode == TensorMapMode::Im2col;
  if (t.rank < (im2col ? 3 : 1) || t.rank > 5)
    return fmt::format("rank {} ({} map has {} to 5 dimensions)", t.rank, im2col ? "an im2col" : "a tiled",
                       im2col ? 3 : 1);
  const uint64_t elem = static_cast<uint64_t>(dtype_info(t.dtype).bytes);
  if (address % 16) return fmt::format("the buffer's address 0x{:x} is not 16-byte aligned", address);
  for (int i = 0; i < t.rank; ++i) {
    const size_t d = static_cast<size_t>(i);
    if (t.dims[d] == 0 || t.dims[d] > (uint64_t{1} << 32))
      return fmt::format("dimension {} has extent {} (1 to 2^32)", i, t.dims[d]);
    if (t.element_strides[d] == 0 || t.element_strides[d] > 8)
      return fmt::format("dimension {} has element stride {} (1 to 8)", i, t.element_strides[d]);
    if (i > 0) {
      if (t.strides_bytes[d] % 16 || t.strides_bytes[d] == 0 || t.strides_bytes[d] >= (uint64_t{1} << 40))
        return fmt::format("dimension {}'s stride {} B is not a positive multiple of 16 below 2^40", i,
                           t.strides_bytes[d]);
      // Dimensions do not overlap: each stride covers the one inside it.
      const uint64_t inner = i == 1 ? t.dims[0] * elem : t.strides_bytes[d - 1] * t.dims[d - 1];
      if (t.strides_bytes[d] < inner)
        return fmt::format("dimension {}'s stride {} B is less than the {} B of the dimensions inside it", i,
                           t.strides_bytes[d], inner);
    }
    if (!im2col && (t.box[d] == 0 || t.box[d] > 256))
      return fmt::format("box dimension {} is {} (1 to 256)", i, t.box[d]);
  }
  if (!im2col && (t.box[0] * elem) % 16)
    return fmt::format("the box's inner extent {} x {} B is not a multiple of 16 bytes", t.box[0], elem);
  if (im2col) {
    if (t.channels_per_pixel == 0 || t.channels_per_pixel > 256 || (t.channels_per_pixel * elem) % 16)
      return fmt::format("{} channels per pixel (1 to 256, a multiple of 16 bytes)", t.channels_per_pixel);
    if (t.pixels_per_column == 0 || t.pixels_per_column > 1024)
      return fmt::format("{} pixels per column (1 to 1024)", t.pixels_per_column);
    for (int i = 0; i < t.rank - 2; ++i) {
      const int lo = t.lower_corner[static_cast<size_t>(i)], hi = t.upper_corner[static_cast<size_t>(i)];
      const int range = t.rank == 3 ? 1 << 15 : t.rank == 4 ? 1 << 7 : 1 << 4;  // the driver's corner ranges
      if (lo < -range || lo >= range || hi < -range || hi >= range)
        return fmt::format("spatial dimension {}'s corners ({}, {}) lie outside [-{}, {})", i, lo, hi, range, range);
    }
  }
  const uint64_t inner_box_bytes = (im2col ? t.channels_per_pixel : t.box[0]) * elem;
  const uint64_t swizzle_span[] = {0, 32, 64, 128};
  if (t.swizzle != TensorMapSwizzle::None && inner_box_bytes > swizzle_span[static_cast<int>(t.swizzle)])
    return fmt::format("the box's inner extent is {} B, more than its {} B swizzle span", inner_box_bytes,
                       swizzle_span[static_cast<int>(t.swizzle)]);
  return std::nullopt;
}

void encode_tensor_map(const TensorMapDesc& t, uint64_t address, void* out) {
  if (std::optional<std::string> bad = tensor_map_invalid(t, address))
    throw InternalError("tensor map " + describe(t) + ": " + *bad);
  const DriverApi& api = driver();
  const CUtensorMapDataType type = t.dtype == DType::BF16  ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                   : t.dtype == DType::F16 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16
                                                           : CU_TENSOR_MAP_DATA_TYPE_FLOAT32;
  const CUtensorMapSwizzle swizzle[] = {CU_TENSOR_MAP_SWIZZLE_NONE, CU_TENSOR_MAP_SWIZZLE_32B,
                                        CU_TENSOR_MAP_SWIZZLE_64B, CU_TENSOR_MAP_SWIZZLE_128B};
  const CUtensorMapFloatOOBfill fill =
      t.fill_nan ? CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA : CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE;
  auto* map = static_cast<CUtensorMap*>(out);
  void* base = reinterpret_cast<void*>(static_cast<uintptr_t>(address));
  const cuuint64_t* strides = reinterpret_cast<const cuuint64_t*>(t.strides_bytes.data() + 1);
  static_assert(sizeof(cuuint64_t) == sizeof(uint64_t) && sizeof(cuuint32_t) == sizeof(uint32_t));
  const auto* dims = reinterpret_cast<const cuuint64_t*>(t.dims.data());
  const auto* estrides = reinterpret_cast<const cuuint32_t*>(t.element_strides.data());
  const auto rank = static_cast<cuuint32_t>(t.rank);
  if (t.mode == TensorMapMode::Tiled) {
    if (!api.cuTensorMapEncodeTiled)
      throw UserError("this CUDA driver has no tensor maps (cuTensorMapEncodeTiled)",
                      "use a driver for CUDA 12 or newer");
    check_cu(api.cuTensorMapEncodeTiled(map, type, rank, base, dims, strides,
                                        reinterpret_cast<const cuuint32_t*>(t.box.data()), estrides,
                                        CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle[static_cast<int>(t.swizzle)],
                                        CU_TENSOR_MAP_L2_PROMOTION_L2_128B, fill),
             "cuTensorMapEncodeTiled");
    return;
  }
  if (!api.cuTensorMapEncodeIm2col)
    throw UserError("this CUDA driver has no tensor maps (cuTensorMapEncodeIm2col)",
                    "use a driver for CUDA 12 or newer");
  check_cu(api.cuTensorMapEncodeIm2col(map, type, rank, base, dims, strides, t.lower_corner.data(),
                                       t.upper_corner.data(), t.channels_per_pixel, t.pixels_per_column, estrides,
                                       CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle[static_cast<int>(t.swizzle)],
                                       CU_TENSOR_MAP_L2_PROMOTION_L2_128B, fill),
           "cuTensorMapEncodeIm2col");
}

}  // namespace fuseblock::cuda
