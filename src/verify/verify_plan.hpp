// `fuseblock verify`: checks, without running anything, that a plan keeps the seed's fusion rule
// at three levels, and says which check failed and why.
//   plan   - from the LaunchProgram: every buffer a step writes is the output, declared scratch
//            (small) or a declared intermediate; every writable kernel parameter is bound to one.
//   PTX    - every global store's address derives from a writable (output or scratch) pointer
//            parameter; stores counted per kernel; no local memory (no spills, no stack).
//   launch - block sizes a power of two in [32, 1024]; with a GPU, grids > 0 and within the
//            device's limits, shared memory within its opt-in limit.
#pragma once
#include <string>
#include <vector>

#include "cuda/program/launch_program.hpp"
#include "fuseblock/plan.hpp"
#include "verify/ptx_stores.hpp"

namespace fuseblock::verify {

struct Check {
  std::string level;  // "plan", "ptx", "launch"
  std::string what;
  bool ok = true;
  std::string detail;
};

struct VerifyReport {
  std::string arch;
  bool on_gpu = false;  // launch checks used the device's real grids
  std::vector<Check> checks;
  std::vector<PtxKernelReport> kernels;
  bool ok() const;
  std::string text() const;  // what the CLI prints
};

struct VerifyOptions {
  bool allow_tf32 = true;
  std::string arch;  // empty: the GPU's, or sm_90 where there is none
};

VerifyReport verify_plan(const Plan& plan, const VerifyOptions& opts = {});

// The checks on a given program text (tests plant broken kernels through this).
VerifyReport verify_source(const Plan& plan, const cuda::LaunchProgram& program, const std::string& source,
                           const std::string& arch);

}  // namespace fuseblock::verify
