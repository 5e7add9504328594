#include "profile/kernel_io.hpp"

namespace fuseblock::profile {
namespace {
constexpr double kF32 = 4.0;
}

double KernelIo::read_bytes() const {
  double b = 0;
  for (const TensorBytes& t : reads) b += t.bytes;
  return b;
}

double KernelIo::write_bytes() const {
  double b = 0;
  for (const TensorBytes& t : writes) b += t.bytes;
  return b;
}

std::vector<KernelIo> kernel_io(const Plan& plan, const cuda::EmittedProgram& prog) {
  const Pipeline& p = plan.pipeline;
  const double in = kF32 * static_cast<double>(numel(p.input_shape));
  const double out = kF32 * static_cast<double>(numel(p.output_shape));
  const double n = p.input_shape.empty() ? 0 : static_cast<double>(p.input_shape[0]);
  const TensorBytes flags{"guard flags", kF32 * (n + 1)};
  std::vector<KernelIo> io;
  if (prog.fill_memset) io.push_back({"cuMemsetD32Async", {}, {{"output", out}}, 0, "driver memset of the constant"});
  if (prog.guard_kernel()) io.push_back({"fb_guard", {{"input", in}}, {flags}, 0, "checks the guard per sample"});
  if (prog.fill_kernel()) {
    KernelIo k{"fb_fill", {}, {{"output", out}}, 0, "constant x dropout mask"};
    if (prog.guard) k.reads.push_back({"input", in}), k.writes.push_back(flags);
    io.push_back(k);
  }
  if (!prog.general) return io;

  const cuda::ConvGeometry& g = prog.geometry;
  const Pipeline& cp = prog.conv_pipeline;
  const double cout = static_cast<double>(g.cout);
  const double pass_flops = 2.0 * static_cast<double>(g.n * g.cout) * static_cast<double>(g.out[0] * g.out[1] * g.out[2]) *
                            static_cast<double>(g.kred);
  const TensorBytes weight{"conv.weight", kF32 * cout * static_cast<double>(g.kred)};
  const TensorBytes bias{"conv.bias", cp.conv.bias ? kF32 * cout : 0};
  const TensorBytes partials{"stats partials", 8.0 * n * cout * static_cast<double>(g.tiles)};
  const TensorBytes nscale{"norm scale", kF32 * n * cout}, nmean{"norm mean", kF32 * n * cout};
  const bool affine = prog.norm && cp.norm->affine;
  auto conv_reads = [&] {
    std::vector<TensorBytes> r{{"input", in}, weight};
    if (cp.conv.bias) r.push_back(bias);
    return r;
  };
  if (prog.gated) {
    const std::string why = "gated fallback: reads the flags, exits for samples that passed the guard";
    if (prog.norm) {
      io.push_back({prog.names.stats, {flags}, {}, 0, why});
      io.push_back({prog.names.finalize, {flags}, {}, 0, why});
    }
    io.push_back({prog.names.output, {flags}, {}, 0, why});
    return io;
  }
  if (prog.norm) {
    io.push_back({prog.names.stats, conv_reads(), {partials}, pass_flops, "conv pass 1: statistics, no conv output stored"});
    KernelIo fin{prog.names.finalize, {partials}, {nscale, nmean}, 0, "merges statistics into per-(n, c) scale and mean"};
    if (affine) fin.reads.push_back({"norm.weight", kF32 * cout});
    io.push_back(fin);
  }
  KernelIo o{prog.names.output, conv_reads(), {{"output", out}}, pass_flops,
             prog.norm ? "conv pass 2: normalize, chain, dropout, store" : "conv, chain, dropout, store"};
  if (prog.norm) {
    o.reads.push_back(nscale), o.reads.push_back(nmean);
    if (affine) o.reads.push_back({"norm.bias", kF32 * cout});
  }
  io.push_back(o);
  return io;
}

const KernelIo* find_io(const std::vector<KernelIo>& io, const std::string& kernel) {
  for (const KernelIo& k : io)
    if (k.kernel == kernel) return &k;
  return nullptr;
}

double block_floor_bytes(const Plan& plan, const cuda::EmittedProgram& prog) {
  const Pipeline& p = plan.pipeline;
  const double out = kF32 * static_cast<double>(numel(p.output_shape));
  const bool reads_input = !(prog.fill && !prog.guard);
  return out + (reads_input ? kF32 * static_cast<double>(numel(p.input_shape)) : 0.0);
}

}  // namespace fuseblock::profile
