// dev tool: builds the default LaunchProgram for a spec (default: problem 83, or a spec file), compiles it
// for an architecture with NVRTC (no GPU needed) and prints ptxas's resource report per kernel.
//   emit_inspect [spec-file|-] [sm_90] [--fp32] [--source] [--assume-finite] [--exact]
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cuda/select/select.hpp"
#include "cuda/nvrtc_compile.hpp"
#include "fuseblock/fuseblock.hpp"

using namespace fuseblock;

int main(int argc, char** argv) {
  std::string spec = kDefaultSpec, arch = "sm_90";
  bool tf32 = true, show = false;
  LowerOptions lo;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--fp32") tf32 = false;
    else if (a == "--source") show = true;
    else if (a == "--assume-finite") lo.assume_finite = true;
    else if (a == "--exact") lo.simplify = false;
    else if (a.rfind("sm_", 0) == 0) arch = a;
    else if (a == "-") spec = std::string(std::istreambuf_iterator<char>(std::cin), {});
    else {
      std::ifstream f(a);
      spec = std::string(std::istreambuf_iterator<char>(f), {});
    }
  }
  try {
    Plan plan = lower(parse_spec(spec, "<spec>"), lo);
    const cuda::LaunchProgram prog = cuda::default_program(plan, tf32);
    if (show) std::cout << prog.source;
    std::cout << cuda::describe(prog);
    cuda::CompileRequest req;
    req.source = prog.source;
    req.arch = arch;
    req.options = {"--fmad=false"};
    cuda::CompiledProgram c = cuda::compile_program(req);
    for (const auto& k : c.kernels)
      std::printf("%-20s %3d regs  %4d B stack  %4d/%4d B spill st/ld  %5d B smem\n", k.name.c_str(), k.registers,
                  k.stack_bytes, k.spill_store_bytes, k.spill_load_bytes, k.shared_bytes);
  } catch (const UserError& e) {
    std::fprintf(stderr, "%s\n", e.formatted().c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
