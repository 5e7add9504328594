// NVRTC compilation and the ptxas report parser (nvrtc_compile.hpp).
#include "cuda/runtime/nvrtc_compile.hpp"

#include <algorithm>
#include <cstdio>
#include <algorithm>
#include <cctype>
#include <sstream>

#include "cuda/runtime/cubin_info.hpp"
#include "cuda/runtime/driver_api.hpp"
#include "fuseblock/error.hpp"

namespace fuseblock::cuda {

const KernelResources* CompiledProgram::find(const std::string& kernel) const {
  for (const auto& k : kernels)
    if (k.name == kernel) return &k;
  return nullptr;
}

std::string arch_name(int major, int minor) { return "sm_" + std::to_string(major) + std::to_string(minor); }

std::string nvrtc_version_string() {
  const NvrtcApi& api = nvrtc();
  return std::to_string(api.major) + "." + std::to_string(api.minor);
}

std::vector<std::string> nvrtc_options(const CompileRequest& req) {
  // -diag-suppress=177: emitted geometry constants are not all used by every kernel.
  std::vector<std::string> opts = {"--gpu-architecture=" + req.arch, "--std=c++17", "--ptxas-options=-v",
                                   "-diag-suppress=177"};
  opts.insert(opts.end(), req.options.begin(), req.options.end());
  return opts;
}

std::string number_lines(const std::string& source) {
  std::ostringstream out;
  std::istringstream in(source);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    char prefix[16];
    std::snprintf(prefix, sizeof prefix, "%5d | ", ++n);
    out << prefix << line << "\n";
  }
  return out.str();
}

std::vector<KernelResources> parse_ptxas_report(const std::string& log) {
  // ptxas prints, per entry function:
  //   ptxas info    : Compiling entry function 'name' for 'sm_90'
  //   ptxas info    : Function properties for name
  //   ptxas         .     16 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads
  //   ptxas info    : Used 40 registers, used 1 barriers, 8 bytes smem, 400 bytes cmem[0]
  // and "Function properties" blocks for non-entry functions (subroutines ptxas did not inline);
  // their frame lines belong to no kernel's own report. The "Used" line follows its entry.
  // Plain string scanning, not std::regex: inside a Python process next to PyTorch, libstdc++'s
  // regex instantiations can be taken from another library's copy (seen crashing on the H100).
  std::vector<KernelResources> out;
  auto find = [&](const std::string& name) -> KernelResources* {
    for (auto& k : out)
      if (k.name == name) return &k;
    return nullptr;
  };
  // The integer that ends right before `suffix` in `line` ("40 registers" -> 40), or -1.
  auto number_before = [](const std::string& line, const std::string& suffix) -> int {
    const size_t at = line.find(suffix);
    if (at == std::string::npos || at == 0) return -1;
    size_t b = at;
    while (b > 0 && std::isdigit(static_cast<unsigned char>(line[b - 1]))) --b;
    return b == at ? -1 : std::stoi(line.substr(b, at - b));
  };
  // The text after `prefix` up to `stop` (or the end of the word).
  auto text_after = [](const std::string& line, const std::string& prefix, char stop) -> std::string {
    const size_t at = line.find(prefix);
    if (at == std::string::npos) return {};
    const size_t b = at + prefix.size();
    size_t e = b;
    while (e < line.size() && line[e] != stop && !(stop == ' ' && std::isspace(static_cast<unsigned char>(line[e])))) ++e;
    return line.substr(b, e - b);
  };
  std::istringstream in(log);
  std::string line;
  KernelResources* compiling = nullptr;  // the entry whose "Used" line comes next
  KernelResources* framed = nullptr;     // the entry whose frame line comes next (null: a subroutine)
  while (std::getline(in, line)) {
    if (std::string name = text_after(line, "Compiling entry function '", '\''); !name.empty()) {
      if (!find(name)) {
        out.push_back({});
        out.back().name = name;
      }
      compiling = find(name);
      framed = nullptr;
      continue;
    }
    if (std::string name = text_after(line, "Function properties for ", ' '); !name.empty()) {
      framed = find(name);
      continue;
    }
    if (line.find(" bytes stack frame,") != std::string::npos) {
      if (framed) {
        framed->stack_bytes = number_before(line, " bytes stack frame");
        framed->spill_store_bytes = number_before(line, " bytes spill stores");
        framed->spill_load_bytes = number_before(line, " bytes spill loads");
      }
      framed = nullptr;
      continue;
    }
    if (compiling && line.find("Used ") != std::string::npos && line.find(" registers") != std::string::npos) {
      compiling->registers = number_before(line, " registers");
      compiling->barriers = std::max(0, number_before(line, " barriers"));
      compiling->shared_bytes = std::max(0, number_before(line, " bytes smem"));
      compiling = nullptr;
    }
  }
  return out;
}

namespace {

// Owns an nvrtcProgram for the duration of one compile.
struct Program {
  nvrtcProgram p = nullptr;
  ~Program() {
    if (p) nvrtc().nvrtcDestroyProgram(&p);
  }
};

std::string program_log(nvrtcProgram p) {
  size_t n = 0;
  FB_NVRTC(nvrtcGetProgramLogSize(p, &n));
  std::string log(n, '\0');
  if (n) FB_NVRTC(nvrtcGetProgramLog(p, log.data()));
  while (!log.empty() && log.back() == '\0') log.pop_back();
  return log;
}

}  // namespace

namespace {
int count_entries(const std::string& ptx) {
  int n = 0;
  for (size_t at = 0; (at = ptx.find(".entry ", at)) != std::string::npos; ++at) ++n;
  return n;
}
CompiledProgram compile_once(const CompileRequest& req);
}  // namespace

CompiledProgram compile_program(const CompileRequest& req) {
  CompiledProgram out = compile_once(req);
  complete_from_cubin(out);
  return out;
}

// NVRTC 13.0 on the H100 host (2026-11-24) returned, for some programs and every time, a
// successful compile with an empty log: the report then comes from the cubin's own attributes
// (registers and stack frame; spill bytes are only in the log, a frame > 0 shows local memory).
void complete_from_cubin(CompiledProgram& p) {
  if (static_cast<int>(p.kernels.size()) >= count_entries(p.ptx)) return;
  for (const auto& [name, info] : read_cubin_info(p.cubin)) {
    if (name.empty() || info.registers < 0 || p.find(name)) continue;  // subroutines have no REGCOUNT
    KernelResources k;
    k.name = name;
    k.registers = info.registers;
    k.stack_bytes = std::max(0, info.frame_bytes);
    k.from_cubin = true;
    p.kernels.push_back(k);
  }
}

namespace {
CompiledProgram compile_once(const CompileRequest& req) {
  Program prog;
  FB_NVRTC(nvrtcCreateProgram(&prog.p, req.source.c_str(), req.program_name.c_str(), 0, nullptr, nullptr));
  std::vector<std::string> opts = nvrtc_options(req);
  std::vector<const char*> argv;
  for (const auto& o : opts) argv.push_back(o.c_str());
  nvrtcResult r = nvrtc().nvrtcCompileProgram(prog.p, static_cast<int>(argv.size()), argv.data());
  CompiledProgram out;
  out.arch = req.arch;
  out.log = program_log(prog.p);
  if (r != NVRTC_SUCCESS) {
    std::string joined;
    for (const auto& o : opts) joined += " " + o;
    throw InternalError("NVRTC failed to compile " + req.program_name + " for " + req.arch + " (" +
                        nvrtc().nvrtcGetErrorString(r) + "), options:" + joined + "\n--- NVRTC log ---\n" +
                        out.log + "\n--- source ---\n" + number_lines(req.source));
  }
  size_t n = 0;
  FB_NVRTC(nvrtcGetCUBINSize(prog.p, &n));
  out.cubin.assign(n, '\0');
  FB_NVRTC(nvrtcGetCUBIN(prog.p, out.cubin.data()));
  FB_NVRTC(nvrtcGetPTXSize(prog.p, &n));
  out.ptx.assign(n, '\0');
  FB_NVRTC(nvrtcGetPTX(prog.p, out.ptx.data()));
  while (!out.ptx.empty() && out.ptx.back() == '\0') out.ptx.pop_back();
  out.kernels = parse_ptxas_report(out.log);
  return out;
}

}  // namespace

}  // namespace fuseblock::cuda
