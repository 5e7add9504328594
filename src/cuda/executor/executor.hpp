// Runs a LaunchProgram on device pointers and a stream: the layer the host-tensor backend
// (cuda_backend) and the Python package (DLPack pointers, the caller's stream) share. An Executor
// compiles and loads the program for the current device, resolves each step's grid rule against
// the device's residency, and launches the steps asynchronously, binding every argument by its
// buffer role; it never synchronizes or allocates, so a whole run can be captured in a CUDA graph.
// The caller provides scratch_bytes() of scratch on the same stream. Executors are immutable once
// built and safe to use from several threads and streams at once.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cuda/runtime/cudnn_conv.hpp"
#include "cuda/runtime/nvrtc_compile.hpp"
#include "cuda/program/launch_program.hpp"
#include "cuda/select/select.hpp"
#include "fuseblock/plan.hpp"

struct CUmod_st;
struct CUfunc_st;
struct CUstream_st;

namespace fuseblock::cuda {

// The caller's device memory for one run, bound by buffer role (and index, for a role a block holds
// several times: its prelus' weights): the input and output (16-byte aligned), the parameters, a
// second run-time input (the per-(sample, channel) tensor), dropout's (seed, offset) as 2 x u64
// (16-byte aligned; unbound: RunArgs' explicit seeds, written into scratch by the run) and the one
// scratch allocation of Executor::scratch_bytes(), in which the executor places every scratch and
// intermediate buffer (a strategy's private ones included). A device dropout state is read by the
// kernels when they run, so a captured CUDA graph draws whatever the state holds at each replay.
// Fixed storage: building one allocates nothing (it is built for every call).
class DeviceTensors {
 public:
  static constexpr size_t kMaxBound = 16;
  DeviceTensors() = default;
  // Binds `role` (index `index`) to `ptr`, replacing an earlier binding; 0 unbinds. Scratch
  // roles are not bound (the executor places them): a UserError names the role.
  DeviceTensors& bind(BufferRole role, uint64_t ptr, int index = 0);
  // By the names the Python package passes: "input", "output", "scratch", "dropout state", and the
  // parameter keys ("conv.weight", "norm.bias", "prelu.weight", "prelu.1.weight", "channel add").
  DeviceTensors& bind(const std::string& name, uint64_t ptr);
  uint64_t get(BufferRole role, int index = 0) const;  // 0 when unbound
  uint64_t scratch = 0;

 private:
  struct Bound {
    BufferRole role;
    int index;
    uint64_t ptr;
  };
  std::array<Bound, kMaxBound> bound_{};
  size_t count_ = 0;
};

// Whether the caller binds this role (input, output, parameters, extra run-time inputs, the
// dropout state) or the executor places it in scratch.
bool caller_bound(BufferRole r);

struct RunArgs {
  uint64_t seed = 0, offset = 0;  // explicit dropout stream, used when DeviceTensors binds no dropout state
  // With a device dropout state: add one to its offset after the run, so the next run (or graph
  // replay) draws a fresh mask. Off for a caller that draws a new state for every run (the torch op).
  bool advance_dropout_state = true;
};

struct KernelLaunch {  // one step of a run as resolved on this device, for explain/profile and tests
  std::string kernel;  // the step's name
  unsigned grid_x = 0, grid_y = 0, threads = 0;
  size_t dynamic_smem = 0;
  int blocks_per_sm = 0;
  bool driver_memset = false;  // a cuMemsetD32Async, not a kernel
  bool library = false;        // a library call (cuDNN's conv), not a kernel of ours
  bool programmatic = false;   // launched as a programmatic dependent of the step before it (sm_90+)
  // Scalars the grid rule gave (GuardSlices, FillSlices, SampleRuns).
  int blocks_per_sample = 0;
  long long slice = 0, quads_per_block = 0;
};

class Executor {
 public:
  // Compiles (through the cubin cache) and loads `program`, built for `plan`, on the current device.
  Executor(const Plan& plan, LaunchProgram program);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  size_t scratch_bytes() const { return scratch_.bytes; }
  // Enqueues the whole run on `stream` (nullptr: the legacy default stream). `before_each`, when
  // given, is called with the step index before each step is enqueued (and with steps' count
  // after the last), so a profiler can record events between steps.
  void launch(const DeviceTensors& t, const RunArgs& args, CUstream_st* stream,
              const std::function<void(size_t)>& before_each = {}) const;
  // The steps as resolved on this device, in program order.
  const std::vector<KernelLaunch>& launches() const { return launches_; }
  const LaunchProgram& program() const { return program_; }
  const CompiledProgram& compiled() const { return compiled_; }
  const ScratchLayout& scratch() const { return scratch_; }
  bool cache_hit() const { return cache_hit_; }

 private:
  // Where each buffer comes from, resolved once when built: the caller's binding or a scratch offset.
  struct Placement {
    bool declared = false;  // a buffer the program has (else its pointer is 0: the kernel ignores it)
    bool caller = false;    // bound by the caller (DropoutState: when bound, else the scratch copy)
    size_t scratch_offset = 0;
  };
  Placement place(const BufferRef& r) const;
  uint64_t pointer_of(const BufferRef& r, const Placement& at, const DeviceTensors& t) const;
  uint64_t pointer_of(const BufferRef& r, const DeviceTensors& t) const { return pointer_of(r, place(r), t); }

  Plan plan_;
  LaunchProgram program_;
  CompiledProgram compiled_;
  bool cache_hit_ = false;
  CUmod_st* module_ = nullptr;
  std::vector<CUfunc_st*> functions_;  // per step (nullptr for a memset or a library call)
  std::vector<std::unique_ptr<CudnnConv>> library_convs_;  // per step (nullptr but for a LibraryConv)
  std::vector<KernelLaunch> launches_;
  std::vector<std::vector<Placement>> arg_places_;  // per step, per argument (Buffer and TensorMap)
  ScratchLayout scratch_;
};

// The plan's executor for the current device, built once per (program, device) and kept for the
// process's life; thread-safe. It runs the selection's winner: the cost model's choice, or the
// strategy and config that `fuseblock tune` stored for this program on this device.
std::shared_ptr<const Executor> executor_for(const Plan& plan, bool allow_tf32);

// The current device's limits, as the strategies' unsupported() reads them.
DeviceLimits current_device_limits();

}  // namespace fuseblock::cuda
