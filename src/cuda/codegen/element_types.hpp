// The C names emitted kernels use for a pipeline's element types, taken from the dtype table
// (include/fuseblock/dtype.hpp) so that no emitter spells a storage type itself: the tensors the
// kernels read and write (input, output, parameters) are `storage`, their 16-byte vectors `pack`
// (`pack_elems` elements); arithmetic is in `compute`.
#pragma once
#include <string>

#include "fuseblock/plan.hpp"

namespace fuseblock::cuda {

struct EmittedTypes {
  std::string storage;  // "float"
  std::string pack;     // "float4": 16 bytes of storage elements
  int pack_elems = 4;
  std::string compute;  // "float"
};

EmittedTypes emitted_types(const ElementTypes& types);

}  // namespace fuseblock::cuda
