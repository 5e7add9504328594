// Text of a Pipeline and a Plan, as `fuseblock explain` and `run` print them.
#include <fmt/format.h>

#include "fuseblock/plan.hpp"

namespace fuseblock {

static std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s.empty() ? "-" : s;
}

std::string dump(const Pipeline& p) {
  std::string s = fmt::format("  input {} -> output {}\n", shape_str(p.input_shape), shape_str(p.output_shape));
  s += fmt::format("  types: storage {}, compute {}, accumulation {}{}\n", dtype_name(p.types.storage),
                   dtype_name(p.types.compute), dtype_name(p.types.accumulation),
                   p.types.norm_params ? fmt::format(", norm parameters {}", dtype_name(*p.types.norm_params)) : "");
  if (p.computes_conv)
    s += fmt::format("  conv{}d {} -> {} channels{}\n", p.conv.dims, p.conv.in_channels, p.conv.out_channels,
                     p.conv.channel_add ? " + add_per_sample_channel [N, C_out]" : "");
  if (p.norm && p.norm->instance) s += fmt::format("  instance_norm (group_norm groups={}) eps={:g} affine={}\n", p.norm->num_groups, p.norm->eps, p.norm->affine);
  else if (p.norm) s += fmt::format("  group_norm groups={} eps={:g} affine={}\n", p.norm->num_groups, p.norm->eps, p.norm->affine);
  std::string chain;
  for (const Op& op : p.chain)
    chain += fmt::format("{}{}", chain.empty() ? "" : " -> ", op.kind == OpKind::Fill ? fmt::format("fill({:g})", op.pw.a) : op_name(op.kind));
  if (!chain.empty()) s += "  chain: " + chain + "\n";
  if (!p.dropout.is_identity()) s += fmt::format("  dropout p={:g} seed={} offset={}\n", p.dropout.p, p.dropout.seed, p.dropout.offset);
  return s;
}

std::string dump(const Plan& p) {
  std::string s = fmt::format("plan: {} path\n", p.pipeline.fill_path() ? "fill" : "general (fused conv)");
  s += dump(p.pipeline);
  if (p.guard) {
    s += fmt::format("guard ({}): {}\n", p.assume_finite ? "skipped: assume_finite" : "checked per sample", p.guard->why);
    s += "fallback for samples that fail the guard (exact):\n" + dump(p.fallback);
  }
  s += "kernels:\n";
  for (const KernelDesc& k : p.kernels)
    s += fmt::format("  {:<34} reads {:<50} writes {}\n      {}\n", k.name, join(k.reads), join(k.writes), k.note);
  return s;
}

}  // namespace fuseblock
