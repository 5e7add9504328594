// A LaunchProgram: everything a run of a plan on the GPU is, as data. A conv
// strategy builds it (strategies/strategy.hpp); the executor launches it, and
// explain, verify, profile, the scratch layout and tune read it, so none of
// them re-derives what runs.
//
//   source   one NVRTC program holding every kernel of the run
//   buffers  each tensor the run touches: its role, bytes and kind (input,
//   output, parameter,
//            scratch, intermediate); scratch and intermediates live in one
//            caller-provided buffer
//   steps    in launch order: an NVRTC kernel or a driver memset, with its grid
//   rule, threads,
//            dynamic shared memory, arguments bound by role, what it reads and
//            writes, its FLOPs
//
// A program depends on the plan, the precision mode and the strategy's config,
// never on the device: grids are rules that the executor resolves against the
// device's residency.
#pragma once
#include <cstddef>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cuda/runtime/cudnn_conv.hpp"
#include "fuseblock/dtype.hpp"

namespace fuseblock::cuda {

enum class BufferKind { Input, Output, Parameter, Scratch, Intermediate };
const char* buffer_kind_name(BufferKind k);

// What a buffer is to the run. The caller binds the input, output and parameter roles
// (DeviceTensors); the executor places every scratch and intermediate buffer in the one scratch
// allocation. A strategy's own scratch (an engine's layout copy, per-(n, c) coefficients only its
// kernels read) is Private and carries the strategy's name for it, so adding one needs no new role.
enum class BufferRole {
  Input,   // x
  Output,  // y
  ConvWeight,
  ConvBias,
  NormWeight,     // GroupNorm gamma
  NormBias,       // GroupNorm beta
  PreluWeight,    // one per prelu op: BufferRef::index is its param_index (prelu_weight_key)
  ChannelAdd,     // the per-(sample, channel) run-time input [N, C_out] (Pipeline::channel_add())
  GuardFlags,     // N + 1 ints: per sample, and "some sample failed"
  GuardBound,     // 1 float: the guard's |x| bound, computed on the device from the parameters
  StatsPartials,  // partial statistics of the conv output
  NormScale,      // per-(n, c) scale (two-pass recompute)
  NormMean,       // per-(n, c) mean (two-pass recompute)
  DropoutState,   // 2 x u64 (seed, offset) in device memory: the caller's, or scratch the run fills
  ConvOutput,     // the conv output without its bias, in the storage type (store-once's intermediate)
  LibraryWorkspace,  // a library step's own workspace: appended by the executor, which alone knows its size
  Private,           // a strategy's own scratch, named by BufferRef::name
};
const char* buffer_role_name(BufferRole r);  // "input", "guard flags", ...

// One buffer of a program: its role, which one of that role (the k-th prelu's weights), and for a
// Private buffer the strategy's name for it. Converts from a role, so Arg::buffer(R::Input) reads
// as before.
struct BufferRef {
  BufferRole role = BufferRole::Input;
  int index = 0;
  std::string name;  // Private only
  BufferRef() = default;
  BufferRef(BufferRole r, int i = 0) : role(r), index(i) {}  // NOLINT: implicit by design
  static BufferRef scratch(std::string name) {
    BufferRef b(BufferRole::Private);
    b.name = std::move(name);
    return b;
  }
  bool operator==(const BufferRef&) const = default;
};
// "input", "prelu.weight[1]", or a Private buffer's own name.
std::string buffer_name(const BufferRef& b);

// A buffer that holds another's data in an engine's layout (store_once's igemm: the input
// channels-last, the weights packed), which `verify` does not count as statistics scratch but
// checks against its source: `rows` rows, in each the source's `channels` padded to a multiple of
// `channel_multiple`, each row then padded to a multiple of `row_multiple_bytes`, and no more
// (layout_copy_bound_bytes).
struct LayoutCopy {
  BufferRef source;
  int64_t rows = 1;
  int64_t channels = 1, channel_multiple = 1;
  int64_t row_multiple_bytes = 1;
};

struct Buffer {
  BufferRef ref;
  BufferKind kind = BufferKind::Scratch;
  size_t bytes = 0;
  std::optional<LayoutCopy> copy_of;  // set for a layout copy
  Buffer() = default;
  Buffer(BufferRef r, BufferKind k, size_t b, std::optional<LayoutCopy> copy = std::nullopt)
      : ref(std::move(r)), kind(k), bytes(b), copy_of(std::move(copy)) {}
};

// How a kernel's grid follows from the device (resident blocks of the kernel on
// all SMs).
enum class GridRule {
  Fixed,        // grid_x x grid_y as given
  GuardSlices,  // one wave: `samples` x blocks per sample, each checking a slice
                // of >= 1024 elements
  FillSlices,   // about one wave, each block a slice of one sample's input and a
                // run of 4-element steps
  ConvTiles,    // min(units, resident / grid_y) x grid_y, blocks striding over the
                // units
  SampleRuns,   // samples x clamp(resident / samples, 1, max_per_sample)
};

struct Grid {
  GridRule rule = GridRule::Fixed;
  int64_t grid_x = 1;          // Fixed
  unsigned grid_y = 1;         // Fixed, ConvTiles
  int64_t samples = 0;         // GuardSlices, FillSlices, SampleRuns
  int64_t sample_elems = 0;    // GuardSlices, FillSlices: input elements per sample
  int64_t output_elems = 0;    // FillSlices
  int64_t units = 0;           // ConvTiles
  int64_t max_per_sample = 0;  // SampleRuns
};

// A TMA descriptor (the driver's CUtensorMap, 128 bytes, 64-byte aligned) over a buffer: what the
// executor encodes on the host from the buffer's device address when it launches the step
// (cuTensorMapEncodeTiled / cuTensorMapEncodeIm2col) and passes by value, to a kernel parameter
// declared `const __grid_constant__ CUtensorMap`. Dimensions are innermost first, in elements;
// strides in bytes, of dimensions 1 .. rank-1 (dimension 0 is contiguous), multiples of 16.
enum class TensorMapMode { Tiled, Im2col };
enum class TensorMapSwizzle { None, Bytes32, Bytes64, Bytes128 };
struct TensorMapDesc {
  TensorMapMode mode = TensorMapMode::Tiled;
  DType dtype = DType::F32;
  int rank = 1;  // 1..5 (Im2col: 3..5)
  std::array<uint64_t, 5> dims{};
  std::array<uint64_t, 5> strides_bytes{};  // [0] unused
  // Tiled: the box, innermost first (each <= 256; box[0] * element bytes a multiple of 16).
  std::array<uint32_t, 5> box{};
  std::array<uint32_t, 5> element_strides{1, 1, 1, 1, 1};
  // Im2col: the box's corners over the spatial dimensions (rank - 2 of them, innermost first),
  // the channels of a pixel and the pixels of a column one load brings.
  std::array<int, 3> lower_corner{}, upper_corner{};
  uint32_t channels_per_pixel = 0, pixels_per_column = 0;
  TensorMapSwizzle swizzle = TensorMapSwizzle::None;
  bool fill_nan = false;  // out-of-bounds elements: NaN (a signalling fill) instead of zeros
};
// "tiled bf16 [64 x 128] box [64 x 32]" for explain and errors.
std::string describe(const TensorMapDesc& t);

// One kernel argument, in parameter order.
enum class ArgKind {
  Buffer,           // the device pointer of `ref`
  TensorMap,        // a CUtensorMap over `ref` (tensor_map), by value: 128 bytes, not an 8-byte slot
  DropoutSeed,      // unsigned long long
  DropoutOffset,    // unsigned long long
  BlocksPerSample,  // int: of step `step`'s resolved grid
  SliceElems,       // long long: of step `step`
  QuadsPerBlock,    // long long: of step `step`
};

struct Arg {
  ArgKind kind = ArgKind::Buffer;
  BufferRef ref;  // Buffer, TensorMap: the buffer
  int step = -1;         // BlocksPerSample, SliceElems, QuadsPerBlock: -1 = this step
  TensorMapDesc tensor_map;  // TensorMap
  static Arg buffer(BufferRef r) { return {ArgKind::Buffer, std::move(r), -1, {}}; }
  static Arg scalar(ArgKind k, int step = -1) { return {k, BufferRef(), step, {}}; }
  static Arg map(BufferRef r, const TensorMapDesc& t) { return {ArgKind::TensorMap, std::move(r), -1, t}; }
};

// Kernel: an NVRTC kernel of the source. Memset: a driver memset. LibraryConv: a conv that a
// library (cuDNN, cuda/runtime/cudnn_conv.hpp) runs, its engine chosen on the device at run time.
enum class StepKind { Kernel, Memset, LibraryConv };

// Which runs launch a step. Dropout's (seed, offset) live in device memory (DropoutState): either
// the caller's (drawn on the device, e.g. from PyTorch's generator, so a captured CUDA graph reads
// fresh values on every replay) or, with explicit seeds (the C++ API, the CLI), scratch that the
// run's first step fills from RunArgs.
enum class StepWhen {
  Always,
  ExplicitDropoutSeeds,  // the caller gave seeds by value: write them into the scratch state
  AdvanceDropoutState,   // the caller's device state, which the run advances for the next one
};
const char* step_kind_name(StepKind k);

struct Step {
  StepKind kind = StepKind::Kernel;
  StepWhen when = StepWhen::Always;
  std::string name;                               // the kernel's name; for a memset "memset <role>"
  unsigned threads = 0;                           // Kernel
  size_t dynamic_smem = 0;                        // Kernel
  Grid grid;                                      // Kernel
  std::vector<Arg> args;                          // Kernel
  BufferRef memset_target = BufferRole::Output;   // Memset: 32-bit words of this buffer ...
  uint32_t memset_bits = 0;                       // ... set to these bits
  int64_t memset_words = 0;
  // LibraryConv: the conv, reading Input and ConvWeight and writing ConvOutput; its workspace is
  // the LibraryWorkspace buffer.
  LibraryConvDesc library_conv;
  // Launched as a programmatic dependent of the step before it where the device
  // allows (sm_90+): the gated fallback's kernels, which mostly exit at once.
  bool programmatic = false;
  // Runs only for samples that failed the guard (the exact fallback): it reads
  // the flags and exits at once for the others, so its bytes and FLOPs count as
  // the flags alone.
  bool gated = false;
  std::vector<BufferRef> reads, writes;  // what the step moves through device memory
  double flops = 0;  // of a full run (a gated step: 0 when every sample passes)
  std::string note;  // what the step does, for explain and profile
};

struct LaunchProgram {
  std::string strategy;  // the strategy that built it ("recompute_two_pass", ...)
  std::string config;    // its config, described
  std::string source;    // empty when the run is memsets alone
  // The architecture the source is compiled for: empty for the device's own ("sm_90" on an H100);
  // "sm_90a" for a program using sm_90's architecture-specific instructions (wgmma, setmaxnreg),
  // which then runs only on compute capability 9.0.
  std::string target;
  std::vector<Buffer> buffers;
  std::vector<Step> steps;
  std::string geometry;       // the conv's tiling in one line (empty without a conv),
                              // for explain
  bool tensor_cores = false;  // the conv runs on the TF32 MMA engine (for the cost model)
  bool half_tensor_cores = false;  // the conv runs on bf16/f16 MMA (store_once's igemm engine; cost model)

  const Buffer* find(const BufferRef& r) const;
  size_t bytes_of(const BufferRef& r) const;  // 0 for a buffer the program does not have
  bool has_kernels() const;
  const Step* find_step(const std::string& name) const;
};

// The most bytes a layout copy of a `source_bytes` buffer may take (LayoutCopy).
size_t layout_copy_bound_bytes(const LayoutCopy& c, size_t source_bytes);

// Where each scratch or intermediate buffer lies in the caller's one scratch
// allocation: in declaration order, each 256-byte aligned.
struct ScratchLayout {
  std::vector<std::pair<BufferRef, size_t>> offsets;
  size_t bytes = 0;
  std::optional<size_t> offset_of(const BufferRef& r) const;
};
ScratchLayout scratch_layout(const LaunchProgram& p);

// A step's bytes: each buffer it reads or writes, once (a gated step: the guard
// flags alone).
double step_read_bytes(const LaunchProgram& p, const Step& s);
double step_write_bytes(const LaunchProgram& p, const Step& s);

// The fewest bytes the whole run must move: the output written once, plus the
// input read once where some step reads it.
double floor_bytes(const LaunchProgram& p);

// The program as explain prints it: buffers, then steps with grid rule,
// arguments, reads, writes.
std::string describe(const LaunchProgram& p);

}  // namespace fuseblock::cuda
