#include "profile/ncu_report.hpp"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>

#include <fmt/format.h>

extern char** environ;

namespace fuseblock::profile {
namespace {

// One CSV line into fields ("" inside quotes is a quote).
std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> f;
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') cur += '"', ++i;
      else if (c == '"') quoted = false;
      else cur += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      f.push_back(cur), cur.clear();
    } else if (c != '\r') {
      cur += c;
    }
  }
  f.push_back(cur);
  return f;
}

// A number as ncu prints it (thousands separators allowed); -1 for "n/a" and the like.
double number(const std::string& s) {
  std::string t;
  for (char c : s)
    if (c != ',' && c != ' ') t += c;
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  return t.empty() || end != t.c_str() + t.size() ? -1 : v;
}

double to_ms(double v, const std::string& unit) {
  if (v < 0) return v;
  if (unit == "nsecond" || unit == "ns") return v / 1e6;
  if (unit == "usecond" || unit == "us") return v / 1e3;
  if (unit == "msecond" || unit == "ms") return v;
  if (unit == "second" || unit == "s") return v * 1e3;
  return -1;
}

const std::string kStallPrefix = "smsp__average_warps_issue_stalled_";
const std::string kStallSuffix = "_per_issue_active.ratio";

}  // namespace

std::vector<NcuKernel> parse_ncu_raw_csv(const std::string& text) {
  std::vector<NcuKernel> out;
  std::istringstream in(text);
  std::string line;
  std::vector<std::string> header, units;
  std::map<std::string, size_t> col;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] != '"') continue;  // ncu's own messages, the program's output
    std::vector<std::string> f = csv_fields(line);
    if (header.empty()) {
      // The raw page's header: "ID", launch columns, then one column per metric.
      if (f.empty() || f[0] != "ID" || std::none_of(f.begin(), f.end(), [](const std::string& h) {
            return h.rfind("gpu__", 0) == 0 || h.rfind("dram__", 0) == 0;
          }))
        continue;
      header = f;
      for (size_t i = 0; i < header.size(); ++i) col[header[i]] = i;
      continue;
    }
    if (units.empty() && !f.empty() && number(f[0]) < 0) {  // the units row right after it has no launch ID
      units = f;
      continue;
    }
    auto get = [&](const std::string& name) -> std::pair<double, std::string> {
      auto it = col.find(name);
      if (it == col.end() || it->second >= f.size()) return {-1, ""};
      return {number(f[it->second]), it->second < units.size() ? units[it->second] : ""};
    };
    NcuKernel k;
    for (const char* name : {"Kernel Name", "Function Name", "Demangled Name"})
      if (auto it = col.find(name); k.kernel.empty() && it != col.end() && it->second < f.size()) k.kernel = f[it->second];
    const auto [dur, unit] = get("gpu__time_duration.sum");
    k.duration_ms = to_ms(dur, unit);
    k.dram_pct = get("dram__throughput.avg.pct_of_peak_sustained_elapsed").first;
    k.achieved_occupancy_pct = get("sm__warps_active.avg.pct_of_peak_sustained_active").first;
    k.theoretical_occupancy_pct = get("sm__maximum_warps_per_active_cycle_pct").first;
    for (const auto& [name, i] : col) {
      if (name.rfind(kStallPrefix, 0) != 0 || name.size() <= kStallPrefix.size() + kStallSuffix.size() ||
          name.compare(name.size() - kStallSuffix.size(), kStallSuffix.size(), kStallSuffix) != 0)
        continue;
      const std::string reason = name.substr(kStallPrefix.size(), name.size() - kStallPrefix.size() - kStallSuffix.size());
      // "selected" is the issuing warp itself and "not_issued" a sum of the rest: neither is a cause.
      if (reason == "selected" || reason == "not_issued") continue;
      const double v = i < f.size() ? number(f[i]) : -1;
      if (v > 0) k.stalls.emplace_back(reason, v);
    }
    std::sort(k.stalls.begin(), k.stalls.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    out.push_back(std::move(k));
  }
  return out;
}

std::string ncu_summary(const std::vector<NcuKernel>& kernels, size_t stalls) {
  auto pct = [](double v) { return v < 0 ? std::string("-") : fmt::format("{:.1f}%", v); };
  std::string s = fmt::format("{:<20} {:>9} {:>8} {:>11} {:>11}  {}\n", "kernel (ncu)", "ms", "DRAM", "achieved occ",
                              "theor. occ", "top stall reasons (warps stalled per issued instruction)");
  for (const NcuKernel& k : kernels) {
    std::string st;
    for (size_t i = 0; i < std::min(stalls, k.stalls.size()); ++i)
      st += fmt::format("{}{} {:.2f}", i ? ", " : "", k.stalls[i].first, k.stalls[i].second);
    s += fmt::format("{:<20} {:>9} {:>8} {:>11} {:>11}  {}\n", k.kernel,
                     k.duration_ms < 0 ? std::string("-") : fmt::format("{:.4f}", k.duration_ms), pct(k.dram_pct),
                     pct(k.achieved_occupancy_pct), pct(k.theoretical_occupancy_pct), st.empty() ? "-" : st);
  }
  return s;
}

std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (!path) return "";
  std::istringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    const std::filesystem::path p = std::filesystem::path(dir) / name;
    if (::access(p.c_str(), X_OK) == 0 && std::filesystem::is_regular_file(p)) return p.string();
  }
  return "";
}

int run_under_ncu(const std::string& ncu, const std::vector<std::string>& args, const std::string& log_path) {
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  // Our kernels only (not the driver's memsets); clocks as the timed runs saw them.
  std::vector<std::string> argv = {ncu,           "--csv",          "--page",     "raw",
                                   "--log-file",  log_path,         "--clock-control", "none",
                                   "--kernel-name", "regex:^fb_",    "--section",  "SpeedOfLight",
                                   "--section",   "Occupancy",      "--section",  "WarpStateStats",
                                   "--metrics",
                                   "dram__throughput.avg.pct_of_peak_sustained_elapsed,"
                                   "sm__warps_active.avg.pct_of_peak_sustained_active,gpu__time_duration.sum",
                                   self};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (std::string& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  pid_t pid = 0;
  if (::posix_spawn(&pid, ncu.c_str(), nullptr, nullptr, cargv.data(), environ) != 0) return -1;
  int status = 0;
  if (::waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace fuseblock::profile
