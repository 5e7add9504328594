// Element types, as one table (tinygrad's "dtype as a table row"): every name a dtype has in the
// spec, in .npy and safetensors files and in emitted C/CUDA, its size and its 16-byte pack width
// come from its row, so that adding a dtype is adding a row. Plus the exact conversions between
// float32 and the two 16-bit types.
//
// Conversions round to nearest, ties to even, as IEEE 754, PyTorch (c10::BFloat16, c10::Half)
// and the CUDA intrinsics (__float2bfloat16_rn, __float2half_rn) do: denormals are kept, -0.0
// stays -0.0, a magnitude past the largest finite value by half an ulp or more becomes +-inf
// (f16: 65520 and up), NaN stays NaN (quiet, sign and leading payload bits kept).
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fuseblock {

enum class DType : uint8_t { F32, BF16, F16 };

struct DTypeInfo {
  DType dtype;
  const char* spec_name;         // "f32": the spec's `input f32[...]`, dumps, messages
  const char* long_name;         // "float32": also accepted in a spec; numpy / PyTorch's name
  int bytes;                     // storage size of one element
  const char* npy_descr;         // "<f4"; nullptr where numpy has no such type (bf16)
  const char* safetensors_name;  // "F32"
  const char* c_type;            // the element's type in emitted C/CUDA: "float", "__half"
  int pack_elems;                // elements per 16-byte vector load/store
  double max_finite;             // the largest finite value
  double epsilon;                // the gap between 1 and the next value
};

const std::array<DTypeInfo, 3>& dtype_table();
const DTypeInfo& dtype_info(DType d);
inline const char* dtype_name(DType d) { return dtype_info(d).spec_name; }

// Lookups by each of a row's names; nullopt when no row has it.
std::optional<DType> dtype_from_spec_name(std::string_view name);  // "f32" or "float32", ...
std::optional<DType> dtype_from_safetensors(std::string_view name);
std::optional<DType> dtype_from_npy_descr(std::string_view descr);

// Every spec name ("f32", "bf16", "f16"), for messages and "did you mean".
std::string dtype_spec_names();

// The exact conversions (round to nearest even; see the top of this file).
uint16_t float_to_bf16_bits(float v);
float bf16_bits_to_float(uint16_t bits);
uint16_t float_to_f16_bits(float v);
float f16_bits_to_float(uint16_t bits);

// v rounded to the nearest value of `d` (F32: v itself), as a float.
float round_to(DType d, float v);
// Rounds n floats in place.
void round_to(DType d, float* v, int64_t n);

}  // namespace fuseblock
