#include "cuda/program/launch_program.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "fuseblock/error.hpp"

namespace fuseblock::cuda {
namespace {

constexpr size_t kScratchAlign = 256;
size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

const char* grid_rule_name(GridRule r) {
  switch (r) {
    case GridRule::Fixed:
      return "fixed";
    case GridRule::GuardSlices:
      return "guard slices (one wave, >= 1024 input elements a block)";
    case GridRule::FillSlices:
      return "fill slices (one wave of sample slices)";
    case GridRule::ConvTiles:
      return "conv tiles (min(tiles, one wave) x channel chunks)";
    case GridRule::SampleRuns:
      return "sample runs (samples x runs of tiles filling one wave)";
  }
  return "?";
}

std::string arg_name(const Arg& a) {
  switch (a.kind) {
    case ArgKind::Buffer:
      return buffer_name(a.ref);
    case ArgKind::TensorMap:
      return fmt::format("tensor map of {} ({})", buffer_name(a.ref), describe(a.tensor_map));
    case ArgKind::DropoutSeed:
      return "dropout seed";
    case ArgKind::DropoutOffset:
      return "dropout offset";
    case ArgKind::BlocksPerSample:
      return a.step < 0 ? "blocks per sample" : fmt::format("blocks per sample of step {}", a.step + 1);
    case ArgKind::SliceElems:
      return "slice";
    case ArgKind::QuadsPerBlock:
      return "4-element steps per block";
  }
  return "?";
}

std::string roles(const std::vector<BufferRef>& rs) {
  std::string s;
  for (const BufferRef& r : rs) s += fmt::format("{}{}", s.empty() ? "" : ", ", buffer_name(r));
  return s.empty() ? "-" : s;
}

}  // namespace

const char* buffer_kind_name(BufferKind k) {
  switch (k) {
    case BufferKind::Input:
      return "input";
    case BufferKind::Output:
      return "output";
    case BufferKind::Parameter:
      return "parameter";
    case BufferKind::Scratch:
      return "scratch";
    case BufferKind::Intermediate:
      return "intermediate";
  }
  return "?";
}

const char* buffer_role_name(BufferRole r) {
  switch (r) {
    case BufferRole::Input:
      return "input";
    case BufferRole::Output:
      return "output";
    case BufferRole::ConvWeight:
      return "conv.weight";
    case BufferRole::ConvBias:
      return "conv.bias";
    case BufferRole::NormWeight:
      return "norm.weight";
    case BufferRole::NormBias:
      return "norm.bias";
    case BufferRole::GuardFlags:
      return "guard flags";
    case BufferRole::GuardBound:
      return "guard bound";
    case BufferRole::StatsPartials:
      return "stats partials";
    case BufferRole::NormScale:
      return "norm scale";
    case BufferRole::NormMean:
      return "norm mean";
    case BufferRole::DropoutState:
      return "dropout state";
    case BufferRole::ConvOutput:
      return "conv output";
    case BufferRole::LibraryWorkspace:
      return "library workspace";
    case BufferRole::PreluWeight:
      return "prelu.weight";
    case BufferRole::ChannelAdd:
      return "channel add";
    case BufferRole::Private:
      return "private scratch";
  }
  return "?";
}

std::string buffer_name(const BufferRef& b) {
  if (b.role == BufferRole::Private) return b.name;
  // prelu_weight_key's numbering: one prelu is "prelu.weight", several "prelu.<k>.weight"; here
  // the index is shown for any role held more than once.
  if (b.index == 0) return buffer_role_name(b.role);
  return fmt::format("{}[{}]", buffer_role_name(b.role), b.index);
}

std::string describe(const TensorMapDesc& t) {
  std::string dims, box;
  for (int i = 0; i < t.rank; ++i) {
    dims += fmt::format("{}{}", i ? " x " : "", t.dims[static_cast<size_t>(i)]);
    box += fmt::format("{}{}", i ? " x " : "", t.box[static_cast<size_t>(i)]);
  }
  const char* swizzle[] = {"no swizzle", "32 B swizzle", "64 B swizzle", "128 B swizzle"};
  if (t.mode == TensorMapMode::Im2col)
    return fmt::format("im2col {} [{}] {} channels x {} pixels, {}", dtype_name(t.dtype), dims, t.channels_per_pixel,
                       t.pixels_per_column, swizzle[static_cast<int>(t.swizzle)]);
  return fmt::format("tiled {} [{}] box [{}], {}", dtype_name(t.dtype), dims, box,
                     swizzle[static_cast<int>(t.swizzle)]);
}

const char* step_kind_name(StepKind k) {
  switch (k) {
    case StepKind::Kernel:
      return "kernel";
    case StepKind::Memset:
      return "memset";
    case StepKind::LibraryConv:
      return "cudnn conv";
  }
  return "?";
}

const Buffer* LaunchProgram::find(const BufferRef& r) const {
  for (const Buffer& b : buffers)
    if (b.ref == r) return &b;
  return nullptr;
}

size_t LaunchProgram::bytes_of(const BufferRef& r) const {
  const Buffer* b = find(r);
  return b ? b->bytes : 0;
}

bool LaunchProgram::has_kernels() const {
  for (const Step& s : steps)
    if (s.kind == StepKind::Kernel) return true;
  return false;
}

const Step* LaunchProgram::find_step(const std::string& name) const {
  for (const Step& s : steps)
    if (s.name == name) return &s;
  return nullptr;
}

std::optional<size_t> ScratchLayout::offset_of(const BufferRef& r) const {
  for (const auto& [ref, at] : offsets)
    if (ref == r) return at;
  return std::nullopt;
}

size_t layout_copy_bound_bytes(const LayoutCopy& c, size_t source_bytes) {
  const int64_t rows = std::max<int64_t>(c.rows, 1), channels = std::max<int64_t>(c.channels, 1);
  const int64_t cm = std::max<int64_t>(c.channel_multiple, 1), rm = std::max<int64_t>(c.row_multiple_bytes, 1);
  const int64_t row = static_cast<int64_t>(source_bytes) / rows / channels * ((channels + cm - 1) / cm * cm);
  return static_cast<size_t>(rows * ((row + rm - 1) / rm * rm));
}

ScratchLayout scratch_layout(const LaunchProgram& p) {
  ScratchLayout l;
  size_t at = 0;
  for (const Buffer& b : p.buffers) {
    if (b.kind != BufferKind::Scratch && b.kind != BufferKind::Intermediate) continue;
    l.offsets.emplace_back(b.ref, at);
    at = align_up(at + b.bytes, kScratchAlign);
  }
  l.bytes = at;
  return l;
}

double step_read_bytes(const LaunchProgram& p, const Step& s) {
  if (s.gated) return static_cast<double>(p.bytes_of(BufferRole::GuardFlags));
  double b = 0;
  for (const BufferRef& r : s.reads) b += static_cast<double>(p.bytes_of(r));
  return b;
}

double step_write_bytes(const LaunchProgram& p, const Step& s) {
  if (s.gated) return 0;
  double b = 0;
  for (const BufferRef& r : s.writes) b += static_cast<double>(p.bytes_of(r));
  return b;
}

double floor_bytes(const LaunchProgram& p) {
  bool reads_input = false;
  for (const Step& s : p.steps)
    for (const BufferRef& r : s.reads) reads_input |= r == BufferRole::Input;
  return static_cast<double>(p.bytes_of(BufferRole::Output)) +
         (reads_input ? static_cast<double>(p.bytes_of(BufferRole::Input)) : 0.0);
}

std::string describe(const LaunchProgram& p) {
  std::string s = fmt::format("strategy {} ({})\n", p.strategy, p.config);
  if (!p.target.empty()) s += fmt::format("  target: {}\n", p.target);
  if (!p.geometry.empty()) s += fmt::format("  conv tiling: {}\n", p.geometry);
  s += "  buffers:\n";
  for (const Buffer& b : p.buffers)
    s += fmt::format("    {:<15} {:<12} {} B\n", buffer_name(b.ref), buffer_kind_name(b.kind), b.bytes);
  s += "  steps:\n";
  for (size_t i = 0; i < p.steps.size(); ++i) {
    const Step& st = p.steps[i];
    if (st.kind == StepKind::Memset) {
      s += fmt::format("    {}. memset {} ({} words of 0x{:08x})  writes [{}]  {}\n", i + 1,
                       buffer_name(st.memset_target), st.memset_words, st.memset_bits, roles(st.writes), st.note);
      continue;
    }
    if (st.kind == StepKind::LibraryConv) {
      s += fmt::format("    {}. cudnn conv (chosen at run time)  reads [{}]  writes [{}]{}  {}\n", i + 1, roles(st.reads),
                       roles(st.writes), st.flops > 0 ? fmt::format("  {:.2f} GFLOP", st.flops / 1e9) : "", st.note);
      continue;
    }
    std::string args;
    for (const Arg& a : st.args) args += fmt::format("{}{}", args.empty() ? "" : ", ", arg_name(a));
    const char* when = st.when == StepWhen::ExplicitDropoutSeeds  ? " [only with explicit seeds]"
                       : st.when == StepWhen::AdvanceDropoutState ? " [only with a device dropout state]"
                                                                  : "";
    s += fmt::format("    {}. {}<<<{}, {} threads, {} B shared>>>({}){}{}{}\n", i + 1, st.name,
                     grid_rule_name(st.grid.rule), st.threads, st.dynamic_smem, args, st.gated ? " [gated]" : "",
                     st.programmatic ? " [programmatic dependent]" : "", when);
    s += fmt::format("       reads [{}]  writes [{}]{}  {}\n", roles(st.reads), roles(st.writes),
                     st.flops > 0 ? fmt::format("  {:.2f} GFLOP", st.flops / 1e9) : "", st.note);
  }
  return s;
}

}  // namespace fuseblock::cuda
