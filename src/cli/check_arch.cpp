#include "cli/check_arch.hpp"

#include <cctype>

#include <fmt/format.h>

#include "cuda/runtime/nvrtc_compile.hpp"
#include "fuseblock/error.hpp"

namespace fuseblock::cli {
namespace {

constexpr const char* kValidArchs = "sm_75, sm_80, sm_86, sm_89 (RTX 4090), sm_90 (H100, H200), sm_100, sm_120";

// sm_ followed by 2 or 3 digits and at most one of the suffixes NVRTC knows (sm_90a, sm_100f).
bool well_formed(const std::string& arch) {
  if (arch.rfind("sm_", 0) != 0) return false;
  size_t i = 3, digits = 0;
  while (i < arch.size() && std::isdigit(static_cast<unsigned char>(arch[i]))) ++i, ++digits;
  if (digits < 2 || digits > 3) return false;
  return i == arch.size() || (i + 1 == arch.size() && (arch[i] == 'a' || arch[i] == 'f'));
}

}  // namespace

void check_arch(const std::string& arch) {
  if (!well_formed(arch))
    throw UserError(fmt::format("'{}' is not a GPU architecture", arch),
                    fmt::format("give one as sm_XY, e.g. {}", kValidArchs));
  cuda::CompileRequest probe;
  probe.source = "extern \"C\" __global__ void fb_arch_probe() {}\n";
  probe.program_name = "arch_probe.cu";
  probe.arch = arch;
  try {
    cuda::compile_program(probe);
  } catch (const InternalError&) {  // an empty kernel fails only for an architecture NVRTC lacks
    throw UserError(fmt::format("NVRTC {} cannot compile for {}", cuda::nvrtc_version_string(), arch),
                    fmt::format("use an architecture this NVRTC supports, e.g. {}", kValidArchs));
  }
}

}  // namespace fuseblock::cli
