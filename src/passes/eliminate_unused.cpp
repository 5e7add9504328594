// eliminate_unused: once simplify has put a Fill in the chain, nothing before it reaches the
// output: the conv, the GroupNorm and the earlier pointwise ops are removed. The Fill keeps the
// output shape. (Whether that needs a guard is lower()'s decision: it knows which analysis
// proved the Fill.)
#include "passes/passes.hpp"

namespace fuseblock {

Block eliminate_unused(const Block& b) {
  Block r = b;
  size_t last_fill = 0;
  for (size_t i = 0; i < r.ops.size(); ++i)
    if (r.ops[i].kind == OpKind::Fill) last_fill = i;
  if (last_fill > 1) r.ops.erase(r.ops.begin() + 1, r.ops.begin() + static_cast<long>(last_fill));
  return r;
}

}  // namespace fuseblock
