#include "cuda/codegen/element_types.hpp"

#include <fmt/format.h>

#include "fuseblock/error.hpp"

namespace fuseblock::cuda {
namespace {

// CUDA's 16-byte vector of a type: its own vector type where CUDA has one (float4), else raw
// bytes (uint4) that the kernel reinterprets.
std::string pack_of(const DTypeInfo& row) { return row.bytes == 4 ? std::string(row.c_type) + "4" : "uint4"; }

}  // namespace

EmittedTypes emitted_types(const ElementTypes& types) {
  const DTypeInfo& storage = dtype_info(types.storage);
  const DTypeInfo& compute = dtype_info(types.compute);
  FB_ASSERT(storage.bytes * storage.pack_elems == 16, "a pack is 16 bytes");
  return {storage.c_type, pack_of(storage), storage.pack_elems, compute.c_type};
}

}  // namespace fuseblock::cuda
