// plan_fusion: the Pipeline a backend runs, and the kernels of the plan. The rule from the seed's
// optimization stage holds by construction: the only global writes are the output and O(N*G)
// scratch (GroupNorm statistics, per-sample guard flags); the conv output is never stored.
#include "passes/passes.hpp"

namespace fuseblock {

Pipeline to_pipeline(const Block& exact, const Block& simplified) {
  Pipeline p;
  p.types.storage = exact.storage_dtype();
  p.input_shape = exact.input().shape;
  p.output_shape = simplified.output().shape;
  const Op* conv = exact.find(OpKind::Conv);
  FB_ASSERT(conv != nullptr, "the exact block has its conv");
  p.conv = conv->conv;
  p.computes_conv = simplified.find(OpKind::Conv) != nullptr;
  if (const Op* n = simplified.find(OpKind::GroupNorm)) p.norm = n->norm;
  // From the exact block: on the fill path the norm is folded away, but its fallback (which runs
  // with the same parameters) still reads them in their own type.
  if (const Op* n = exact.find(OpKind::GroupNorm); n && n->norm.affine && n->norm.param_dtype &&
                                                   *n->norm.param_dtype != p.types.storage)
    p.types.norm_params = n->norm.param_dtype;
  // A dropout that is the block's last op is Pipeline::dropout (what every backend runs); one
  // earlier in the chain stays there as a chain op, which the CPU backend applies in place.
  p.dropout.p = 0.0;
  p.dropout.training = false;
  for (size_t i = 0; i < simplified.ops.size(); ++i) {
    const Op& op = simplified.ops[i];
    if (op.kind == OpKind::Dropout && i + 1 == simplified.ops.size())
      p.dropout = op.dropout;
    else if (is_pointwise(op.kind) || op.kind == OpKind::Dropout)
      p.chain.push_back(op);
  }
  return p;
}

std::vector<KernelDesc> plan_kernels(const Pipeline& p, bool guarded) {
  std::vector<KernelDesc> k;
  std::vector<std::string> conv_reads{"input", "conv.weight"};
  if (p.conv.bias) conv_reads.push_back("conv.bias");
  std::string tail = p.dropout.is_identity() ? "" : " -> dropout";
  if (p.fill_path()) {
    // Without a dropout mask the output is one constant: a memset writes it (the fastest write a
    // GPU has), and the guard is a read-only pass of its own.
    const bool constant = p.dropout.is_identity();
    if (constant) k.push_back({"fill_memset", {}, {"output"}, "writes the constant fill with a memset; reads nothing"});
    if (guarded) {
      if (constant)
        k.push_back({"guard", {"input"}, {"guard_flags"}, "reads each sample's input once and checks it against the guard"});
      else
        k.push_back({"guard_fill_dropout", {"input"}, {"output", "guard_flags"},
                     "one pass: checks each sample's input against the guard while writing fill" + tail});
      std::vector<std::string> r1 = conv_reads;
      r1.push_back("guard_flags");
      k.push_back({"fallback_conv_stats", r1, {"stats"}, "exact path, only samples that failed the guard"});
      std::vector<std::string> r2 = r1;
      r2.insert(r2.end(), {"norm.weight", "norm.bias", "stats"});
      k.push_back({"fallback_conv_norm_chain_dropout", r2, {"output"}, "recomputes the conv; overwrites failed samples"});
    } else if (!constant) {
      k.push_back({"fill_dropout", {}, {"output"}, "writes fill" + tail + "; reads nothing"});
    }
    return k;
  }
  if (p.norm) {
    k.push_back({"conv_stats", conv_reads, {"stats"}, "conv tile by tile, reduces per-(sample, group) statistics; stores no conv output"});
    std::vector<std::string> r2 = conv_reads;
    if (p.norm->affine) r2.insert(r2.end(), {"norm.weight", "norm.bias"});
    r2.push_back("stats");
    k.push_back({"conv_norm_chain_dropout", r2, {"output"}, "recomputes the conv, normalizes, chain" + tail + " in registers"});
  } else {
    k.push_back({"conv_chain_dropout", conv_reads, {"output"}, "conv, chain" + tail + " in registers"});
  }
  return k;
}

}  // namespace fuseblock
