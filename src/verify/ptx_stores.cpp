#include "verify/ptx_stores.hpp"

#include <cctype>
#include <map>
#include <regex>
#include <sstream>

#include <fmt/format.h>

#include "fuseblock/error.hpp"

namespace fuseblock::verify {
namespace {

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r"), b = s.find_last_not_of(" \t\r");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

// The registers (%r12, %rd3, %f1, %p2 ...) named in a piece of PTX.
std::vector<std::string> registers_in(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') continue;
    size_t j = i + 1;
    while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
    std::string name = s.substr(i, j - i);
    // Special registers (%tid.x, %ctaid.x, %ntid ...) carry no parameter.
    if (j < s.size() && s[j] == '.') { i = j; continue; }
    out.push_back(name);
    i = j - 1;
  }
  return out;
}

// Splits "op.a.b  dst, src1, [src2+8];" into opcode and top-level operands.
struct Instr {
  std::string opcode;
  std::vector<std::string> operands;
  std::string text;
  int line;
};

bool parse_instr(const std::string& raw, int line, Instr& out) {
  std::string s = trim(raw);
  if (s.empty() || s[0] == '.' || s[0] == '/' || s[0] == '{' || s[0] == '}' || s.back() == ':') return false;
  if (s.back() != ';') return false;
  s.pop_back();
  if (s[0] == '@') {  // predicate guard: "@%p1 bra ..." / "@!%p1 st ..."
    size_t sp = s.find_first_of(" \t");
    if (sp == std::string::npos) return false;
    s = trim(s.substr(sp));
  }
  size_t sp = s.find_first_of(" \t");
  out.opcode = s.substr(0, sp);
  out.text = trim(raw);
  out.line = line;
  out.operands.clear();
  if (sp == std::string::npos) return true;
  std::string rest = s.substr(sp);
  int depth = 0;
  std::string cur;
  for (char c : rest) {
    if (c == '{' || c == '[' || c == '(') ++depth;
    if (c == '}' || c == ']' || c == ')') --depth;
    if (c == ',' && depth == 0) {
      out.operands.push_back(trim(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!trim(cur).empty()) out.operands.push_back(trim(cur));
  return true;
}

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

// Opcodes that write memory through their first operand's address and have no register result.
bool is_store(const std::string& op) { return starts_with(op, "st.") || op == "st" || starts_with(op, "red."); }
bool is_atomic(const std::string& op) { return starts_with(op, "atom."); }  // result, [addr], value
bool has_no_destination(const std::string& op) {
  return is_store(op) || starts_with(op, "bar") || starts_with(op, "bra") || op == "ret" || op == "exit" ||
         starts_with(op, "membar") || starts_with(op, "fence") || starts_with(op, "prefetch") ||
         starts_with(op, "call") || starts_with(op, "trap") || starts_with(op, "cp.async") ||
         starts_with(op, "mbarrier") || starts_with(op, "griddepcontrol");
}
// A store whose state space can reach global memory: .global, or generic (no space named).
bool store_reaches_global(const std::string& op) {
  for (const char* space : {".shared", ".local", ".param", ".const"})
    if (op.find(space) != std::string::npos) return false;
  return true;
}

struct Entry {
  std::string name;
  std::vector<std::string> params;
  std::vector<Instr> body;
};

std::vector<Entry> split_entries(const std::string& ptx) {
  std::vector<Entry> entries;
  std::istringstream in(ptx);
  std::string line;
  int line_no = 0;
  Entry* cur = nullptr;
  bool in_params = false;
  static const std::regex entry_re(R"(\.entry\s+([A-Za-z_$][\w$]*))");
  static const std::regex param_re(R"(\.param\s+[^,)]*?\s([A-Za-z_$][\w$]*)\s*(\[\d+\])?\s*,?\s*\)?\s*$)");
  int depth = 0;
  while (std::getline(in, line)) {
    ++line_no;
    std::smatch m;
    if (std::regex_search(line, m, entry_re)) {
      entries.push_back({m[1].str(), {}, {}});
      cur = &entries.back();
      in_params = true;
      depth = 0;
      continue;
    }
    if (!cur) continue;
    if (in_params) {
      if (std::regex_search(line, m, param_re)) cur->params.push_back(m[1].str());
      if (line.find('{') != std::string::npos) in_params = false, depth = 1;
      continue;
    }
    for (char c : line) depth += (c == '{') - (c == '}');
    Instr ins;
    if (parse_instr(line, line_no, ins)) cur->body.push_back(ins);
    if (depth <= 0) cur = nullptr;
  }
  return entries;
}

std::set<int> origins_of(const std::string& operand, const std::map<std::string, std::set<int>>& origin,
                         const std::vector<std::string>& params) {
  std::set<int> out;
  for (const std::string& r : registers_in(operand)) {
    auto it = origin.find(r);
    if (it != origin.end()) out.insert(it->second.begin(), it->second.end());
  }
  return out;
}

}  // namespace

bool PtxKernelReport::ok() const {
  if (!local_uses.empty()) return false;
  for (const StoreSite& s : stores)
    if (!s.allowed) return false;
  return true;
}

std::string PtxKernelReport::describe() const {
  std::string s = fmt::format("{}: {} global store site{}, {} local-memory use{}\n", name, stores.size(),
                              stores.size() == 1 ? "" : "s", local_uses.size(), local_uses.size() == 1 ? "" : "s");
  for (const StoreSite& st : stores) {
    std::string from;
    for (int p : st.address_params) from += fmt::format("{}param {}", from.empty() ? "" : ", ", p);
    s += fmt::format("  {} line {}: {}  (address from {})\n", st.allowed ? "ok  " : "FAIL", st.line, st.instruction,
                     from.empty() ? "no parameter: unknown" : from);
  }
  for (const std::string& l : local_uses) s += "  FAIL local memory: " + l + "\n";
  return s;
}

std::vector<PtxKernelReport> check_ptx_stores(const std::string& ptx, const std::vector<KernelRule>& rules) {
  std::vector<PtxKernelReport> reports;
  for (const Entry& e : split_entries(ptx)) {
    const KernelRule* rule = nullptr;
    for (const KernelRule& r : rules)
      if (r.kernel == e.name) rule = &r;
    if (!rule) throw InternalError("verify: no store rule for PTX kernel " + e.name);
    std::map<std::string, int> param_index;
    for (size_t i = 0; i < e.params.size(); ++i) param_index[e.params[i]] = static_cast<int>(i);

    // Registers -> parameters they derive from, to a fixed point.
    std::map<std::string, std::set<int>> origin;
    for (bool changed = true; changed;) {
      changed = false;
      for (const Instr& ins : e.body) {
        if (has_no_destination(ins.opcode) || ins.operands.empty()) continue;
        std::set<int> from;
        if (starts_with(ins.opcode, "ld.param")) {
          for (const auto& [pname, idx] : param_index)
            if (ins.operands.size() > 1 && ins.operands[1].find(pname) != std::string::npos) from.insert(idx);
        } else if (starts_with(ins.opcode, "ld.") || is_atomic(ins.opcode) || starts_with(ins.opcode, "tex") ||
                   starts_with(ins.opcode, "shfl")) {
          // A value read from memory (or another lane) carries no parameter's address.
        } else {
          for (size_t i = 1; i < ins.operands.size(); ++i) {
            std::set<int> o = origins_of(ins.operands[i], origin, e.params);
            from.insert(o.begin(), o.end());
          }
        }
        // The destination may be "{%r1, %r2}" or "%p1|%p2".
        for (const std::string& d : registers_in(ins.operands[0])) {
          std::set<int>& cur = origin[d];
          size_t before = cur.size();
          cur.insert(from.begin(), from.end());
          changed |= cur.size() != before;
        }
      }
    }

    PtxKernelReport rep;
    rep.name = e.name;
    rep.num_params = static_cast<int>(e.params.size());
    for (const Instr& ins : e.body) {
      if (ins.opcode.find(".local") != std::string::npos) rep.local_uses.push_back(fmt::format("line {}: {}", ins.line, ins.text));
      const bool store = is_store(ins.opcode), atomic = is_atomic(ins.opcode);
      if (!(store || atomic) || !store_reaches_global(ins.opcode)) continue;
      const std::string& addr = store ? ins.operands.at(0) : ins.operands.at(1);
      StoreSite site;
      site.line = ins.line;
      site.instruction = ins.text;
      site.address_params = origins_of(addr, origin, e.params);
      site.allowed = false;
      for (int p : site.address_params) site.allowed |= rule->allowed_params.count(p) > 0;
      for (int p : site.address_params) site.allowed &= rule->input_params.count(p) == 0;
      rep.stores.push_back(site);
    }
    reports.push_back(std::move(rep));
  }
  return reports;
}

}  // namespace fuseblock::verify
