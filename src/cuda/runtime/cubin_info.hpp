// Per-kernel resources read from a cubin itself (its ELF .nv.info attributes): the register
// count and the stack frame. NVRTC's log carries ptxas's report too, but an NVRTC 13.0 on the
// H100 host returned, for some programs, an empty log; the cubin always has these.
#pragma once
#include <map>
#include <string>

namespace fuseblock::cuda {

struct CubinKernelInfo {
  int registers = -1;    // EIATTR_REGCOUNT, -1 when absent
  int frame_bytes = -1;  // EIATTR_FRAME_SIZE: local memory per thread (spills, stack arrays)
};

// Kernel name -> info; empty for bytes that are not a 64-bit ELF cubin.
std::map<std::string, CubinKernelInfo> read_cubin_info(const std::string& cubin);

}  // namespace fuseblock::cuda
