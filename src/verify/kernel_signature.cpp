#include "verify/kernel_signature.hpp"

#include <regex>

namespace fuseblock::verify {

static std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

std::vector<KernelSignature> parse_kernel_signatures(const std::string& source) {
  static const std::regex kernel_re(
      R"re(__global__\s+void\s+(?:__launch_bounds__\s*\(\s*(\d+)[^)]*\)\s*)?([A-Za-z_]\w*)\s*\(([^)]*)\))re");
  std::vector<KernelSignature> out;
  for (auto it = std::sregex_iterator(source.begin(), source.end(), kernel_re); it != std::sregex_iterator(); ++it) {
    KernelSignature k;
    k.name = (*it)[2].str();
    k.launch_bound_threads = (*it)[1].matched ? std::stoi((*it)[1].str()) : 0;
    std::string params = (*it)[3].str();
    size_t start = 0;
    while (start <= params.size()) {
      size_t comma = params.find(',', start);
      std::string decl = trim(params.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
      start = comma == std::string::npos ? params.size() + 1 : comma + 1;
      if (decl.empty()) continue;
      size_t name_at = decl.find_last_of(" *&");
      KernelParam p;
      p.name = decl.substr(name_at + 1);
      p.type = trim(decl.substr(0, name_at + 1));
      p.pointer = p.type.find('*') != std::string::npos;
      // "const T*" points to read-only data; "T* const" would be a const pointer to writable data.
      const size_t star = p.type.find('*');
      p.writable = p.pointer && p.type.substr(0, star).find("const") == std::string::npos;
      k.params.push_back(p);
    }
    out.push_back(std::move(k));
  }
  return out;
}

}  // namespace fuseblock::verify
