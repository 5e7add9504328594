// PTX-level check of the seed's fusion rule: every global store's address must derive from a
// kernel parameter that is an output (or declared O(N*G) scratch), and no kernel may touch local
// memory. Works on PTX text, so it needs no GPU.
//
// The analysis is flow-insensitive and conservative: every register gets the set of kernel
// parameters its value can be derived from (through any arithmetic, moves and conversions),
// iterated to a fixed point over the kernel body. A value loaded from memory derives from no
// parameter, so a store through a loaded pointer counts as unknown, and fails.
#pragma once
#include <set>
#include <string>
#include <vector>

namespace fuseblock::verify {

struct StoreSite {
  int line = 0;                  // 1-based line in the PTX text
  std::string instruction;       // the PTX line, trimmed
  std::set<int> address_params;  // parameter indices the address derives from
  bool allowed = false;
};

struct PtxKernelReport {
  std::string name;
  int num_params = 0;
  std::vector<StoreSite> stores;        // st.global, st (generic), atom.global, red.global ...
  std::vector<std::string> local_uses;  // lines that use local memory (spills, stack arrays)
  bool ok() const;
  std::string describe() const;         // one line a store site, as verify prints it
};

// Analyses every .entry in `ptx`. A store is allowed when its address derives from at least one
// of the kernel's `allowed_params` (outputs, declared scratch) and from none of its
// `input_params` (pointers to the input or the parameters). Scalar parameters may mix in.
struct KernelRule {
  std::string kernel;
  std::set<int> allowed_params;
  std::set<int> input_params;
};
std::vector<PtxKernelReport> check_ptx_stores(const std::string& ptx, const std::vector<KernelRule>& rules);

}  // namespace fuseblock::verify
