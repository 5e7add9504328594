// Compiles one CUDA C++ program with NVRTC for one architecture and returns its cubin, its PTX
// and ptxas's resource report per kernel. Needs no GPU: CI compiles every emitted kernel for
// sm_90 and sm_89 and checks the report (no spills) on a machine without one.
#pragma once
#include <string>
#include <vector>

namespace fuseblock::cuda {

// What ptxas reported for one kernel (--ptxas-options=-v).
struct KernelResources {
  std::string name;
  int registers = 0;
  int spill_store_bytes = 0;
  int spill_load_bytes = 0;
  int stack_bytes = 0;
  int shared_bytes = 0;  // static shared memory only; dynamic shared memory is the launcher's
  int barriers = 0;
  bool from_cubin = false;  // NVRTC's log lacked the report: registers and frame read from the cubin
};

struct CompileRequest {
  std::string source;
  std::string program_name = "fuseblock.cu";
  std::string arch = "sm_90";          // a real architecture: sm_XY, or sm_XYa for its specific instructions
  std::vector<std::string> options;   // extra NVRTC options (the architecture and -v are added)
};

struct CompiledProgram {
  std::string arch;
  std::string cubin;  // bytes
  std::string ptx;
  std::string log;    // NVRTC's log, ptxas's report included
  std::vector<KernelResources> kernels;
  const KernelResources* find(const std::string& kernel) const;
};

// The full option list NVRTC sees for a request (what the cache key hashes).
std::vector<std::string> nvrtc_options(const CompileRequest& req);
// Compiles; a compile error throws an InternalError holding NVRTC's log and the source with
// line numbers (the source is emitted by fuseblock, so an error there is fuseblock's bug).
CompiledProgram compile_program(const CompileRequest& req);
// "sm_90" from compute capability 9.0.
std::string arch_name(int major, int minor);
// Adds, for kernels the log's report lacks, registers and stack frame from the cubin itself.
void complete_from_cubin(CompiledProgram& p);
// Parses ptxas -v output into one entry per kernel.
std::vector<KernelResources> parse_ptxas_report(const std::string& log);
// The source with "   12 | " prefixes, for error messages.
std::string number_lines(const std::string& source);
// "13.0", from nvrtcVersion.
std::string nvrtc_version_string();

}  // namespace fuseblock::cuda
