// Runs a plan on device pointers and a stream: the layer the host-tensor backend (cuda_backend)
// and the Python package (DLPack pointers, the caller's stream) share. An Executor holds the
// plan's compiled module for the current device and launches its kernels asynchronously; it
// never synchronizes or allocates, so a whole run can be captured in a CUDA graph. The caller
// provides scratch_bytes() of scratch (guard flags, O(N*C*tiles) partial statistics, per-(n, c)
// normalisation) on the same stream. Executors are immutable once built and safe to use from
// several threads and streams at once.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cuda/emit_program.hpp"
#include "cuda/nvrtc_compile.hpp"
#include "fuseblock/plan.hpp"

struct CUmod_st;
struct CUfunc_st;
struct CUstream_st;

namespace fuseblock::cuda {

struct DeviceTensors {
  uint64_t x = 0;       // input, plan.pipeline.input_shape, 16-byte aligned
  uint64_t y = 0;       // output, plan.pipeline.output_shape, 16-byte aligned
  uint64_t weight = 0;  // conv weight [C_out, C_in, k...]
  uint64_t bias = 0;    // conv bias, 0 when the conv has none
  uint64_t gamma = 0;   // GroupNorm weight, 0 when not affine
  uint64_t beta = 0;    // GroupNorm bias, 0 when not affine
};

struct RunArgs {
  uint64_t seed = 0, offset = 0;  // dropout stream (the plan's, unless the caller draws new ones)
  double guard_bound = 0;         // guard_input_bound(params, guard.conv_output_bound)
};

struct KernelLaunch {  // what one launch of a run looks like, for explain/profile and tests
  std::string kernel;
  unsigned grid_x = 0, grid_y = 0, threads = 0;
  size_t dynamic_smem = 0;
  int blocks_per_sm = 0;
  bool driver_memset = false;  // a cuMemsetD32Async of the output (a constant fill), not a kernel
  bool programmatic = false;   // launched as a programmatic dependent of the kernel before it (sm_90+)
};

// Where each scratch array lies in the caller's scratch buffer (byte offsets, 256-byte aligned):
// guard flags (N + 1 ints), partial statistics (N * C * tiles float2), per-(n, c) scale and mean.
// It depends on the program alone, not the device, so `verify` checks the layout the executor uses.
struct ScratchLayout {
  size_t flags = 0, partials = 0, nscale = 0, nmean = 0;
  size_t bytes = 0;  // the whole buffer
};
ScratchLayout scratch_layout(const EmittedProgram& program, int64_t samples);

class Executor {
 public:
  // Emits, compiles (through the cubin cache) and loads the plan's program for the current device.
  Executor(const Plan& plan, bool allow_tf32, const ConvTuning& tuning = {});
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  size_t scratch_bytes() const { return scratch_bytes_; }
  // Enqueues the whole run on `stream` (nullptr: the legacy default stream). `before_each`, when
  // given, is called with the index into launches() before each step (kernel or memset) is
  // enqueued (and with launches().size() after the last), so a profiler can record events
  // between steps.
  void launch(const DeviceTensors& t, uint64_t scratch, const RunArgs& args, CUstream_st* stream,
              const std::function<void(size_t)>& before_each = {}) const;
  // The launches a run makes, in order (the grids the device's properties gave).
  const std::vector<KernelLaunch>& launches() const { return launches_; }
  const EmittedProgram& program() const { return program_; }
  const CompiledProgram& compiled() const { return compiled_; }
  bool cache_hit() const { return cache_hit_; }

 private:
  Plan plan_;
  EmittedProgram program_;
  CompiledProgram compiled_;
  bool cache_hit_ = false;
  CUmod_st* module_ = nullptr;
  CUfunc_st *fill_ = nullptr, *guard_ = nullptr, *stats_ = nullptr, *finalize_ = nullptr, *output_ = nullptr;
  std::vector<KernelLaunch> launches_;
  ScratchLayout scratch_;
  size_t scratch_bytes_ = 0;
  int64_t fill_blocks_per_sample_ = 0, fill_slice_ = 0, fill_q_per_block_ = 0;
  int lean_blocks_per_sample_ = 0;      // the lean statistics kernel's blocks per sample (emit_lean.hpp)
  int lean_out_blocks_per_sample_ = 0;  // and the output kernel's
};

// The plan's executor for the current device, built once per (program source, device) and kept
// for the process's life; thread-safe. Its conv kernels take the ConvTuning that `fuseblock tune`
// stored for this program on this device (src/tune/tuning_key.hpp), else the defaults.
std::shared_ptr<const Executor> executor_for(const Plan& plan, bool allow_tf32);

// guard_bound as the kernels compare it: the largest float <= bound (so |x| <= it is exactly
// |x| <= bound for a float x), at most FLT_MAX (so an infinite x always fails), NaN kept.
float guard_bound_as_float(double bound);

}  // namespace fuseblock::cuda
