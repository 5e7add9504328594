// Device helpers for a program's storage type: `fb_st` (the element as memory holds it), fb_ld
// (to float), fb_to_st (from float, rounded to nearest even as PyTorch and the CPU backend's
// round_to do) and fb_round (a float rounded to the storage type and back). bf16/f16 elements are
// their 16 bits (unsigned short): NVRTC finds cuda_bf16.h / cuda_fp16.h only through an include
// path, which the cubin cache's key and the GPU machines' layouts would then depend on, and the
// conversions are a few instructions each.
#pragma once
#include "cuda/codegen/source_writer.hpp"
#include "fuseblock/dtype.hpp"

namespace fuseblock::cuda {

void emit_storage_helpers(SourceWriter& w, DType storage);

}  // namespace fuseblock::cuda
