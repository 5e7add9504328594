// The kernels of an emitted CUDA program as their signatures declare them: which pointer
// parameters are read-only (const) and which may be written, and the threads per block of
// __launch_bounds__. The verifier checks the PTX against what the signatures promise.
#pragma once
#include <string>
#include <vector>

namespace fuseblock::verify {

struct KernelParam {
  std::string name;
  std::string type;     // as written, e.g. "const float* __restrict__"
  bool pointer = false;
  bool writable = false;  // a pointer to non-const
};

struct KernelSignature {
  std::string name;
  std::vector<KernelParam> params;
  int launch_bound_threads = 0;  // 0 when no __launch_bounds__
};

std::vector<KernelSignature> parse_kernel_signatures(const std::string& source);

}  // namespace fuseblock::verify
