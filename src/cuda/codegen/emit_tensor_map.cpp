// The device-side tensor-map type (emit_tensor_map.hpp).
#include "cuda/codegen/emit_tensor_map.hpp"

namespace fuseblock::cuda {

void emit_tensor_map_type(SourceWriter& w) {
  // The driver's CUtensorMap: 16 x u64, 64-byte aligned (cuda.h's CU_TENSOR_MAP_NUM_QWORDS).
  w.line("struct __align__(64) {} {{ unsigned long long opaque[16]; }};", kTensorMapType);
}

}  // namespace fuseblock::cuda
