// Compiling, loading and launching a LaunchProgram on device pointers (executor.hpp).
#include "cuda/executor/executor.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <future>
#include <map>
#include <mutex>

#include "cuda/codegen/emit_program_options.hpp"
#include "cuda/runtime/cubin_cache.hpp"
#include "cuda/runtime/device_context.hpp"
#include "cuda/runtime/driver_api.hpp"
#include "cuda/strategies/constant_fill/emit_fill.hpp"
#include "fuseblock/error.hpp"
#include "tune/tuning_key.hpp"

namespace fuseblock::cuda {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

constexpr size_t kMaxArgs = 16;  // the most arguments a step's kernel takes (checked when built)

CUfunction get_function(CUmodule m, const std::string& name) {
  CUfunction f = nullptr;
  FB_CU(cuModuleGetFunction(&f, m, name.c_str()));
  return f;
}

// Opts a kernel in to its dynamic shared memory and returns its resident blocks per SM.
int prepare(CUfunction f, unsigned threads, size_t smem, const DeviceInfo& dev, const std::string& name) {
  if (smem > static_cast<size_t>(dev.smem_per_block_optin))
    throw UserError(fmt::format("kernel {} needs {} bytes of shared memory; {} allows {}", name, smem, dev.name,
                                dev.smem_per_block_optin),
                    "use --device cpu");
  if (smem > 48 * 1024)
    FB_CU(cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, static_cast<int>(smem)));
  int blocks = 0;
  FB_CU(cuOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, f, static_cast<int>(threads), smem));
  if (blocks < 1) throw InternalError("kernel " + name + " cannot be resident on " + dev.name);
  return blocks;
}

void check_arch_supported(const std::string& arch) {
  const NvrtcApi& api = nvrtc();
  int n = 0;
  FB_NVRTC(nvrtcGetNumSupportedArchs(&n));
  std::vector<int> archs(static_cast<size_t>(n));
  FB_NVRTC(nvrtcGetSupportedArchs(archs.data()));
  const int want = std::stoi(arch.substr(3));
  if (std::find(archs.begin(), archs.end(), want) == archs.end())
    throw UserError(
        fmt::format("NVRTC {}.{} cannot compile for this GPU's architecture {}", api.major, api.minor, arch),
        "use --device cpu, or a CUDA toolkit that supports this GPU");
}

// A step's grid from its rule and the device's residency for it (per_sm blocks on each SM).
void resolve_grid(const Grid& g, int per_sm, const DeviceInfo& dev, KernelLaunch& l) {
  const int64_t resident = static_cast<int64_t>(per_sm) * dev.sm_count;
  const int64_t n = std::max<int64_t>(g.samples, 1);
  auto slice_of = [&](int64_t bps) { return ceil_div(ceil_div(g.sample_elems, bps), 4) * 4; };
  int64_t gx = g.grid_x;
  l.grid_y = 1;
  switch (g.rule) {
    case GridRule::Fixed:
      l.grid_y = g.grid_y;
      break;
    case GridRule::GuardSlices:
      l.blocks_per_sample = static_cast<int>(guard_blocks_per_sample(resident, g.samples, g.sample_elems));
      l.slice = slice_of(l.blocks_per_sample);
      gx = g.samples * l.blocks_per_sample;
      break;
    case GridRule::FillSlices:
      // Enough blocks to fill the chip once, each owning a slice of one sample's input.
      l.blocks_per_sample =
          static_cast<int>(std::max<int64_t>(1, std::min(ceil_div(resident, n), ceil_div(g.sample_elems, 1024))));
      l.slice = slice_of(l.blocks_per_sample);
      gx = g.samples * l.blocks_per_sample;
      l.quads_per_block = gx > 0 ? ceil_div(ceil_div(g.output_elems, 4), gx) : 0;
      break;
    case GridRule::ConvTiles: {
      const int64_t capacity = std::max<int64_t>(1, resident / g.grid_y);
      gx = std::max<int64_t>(1, std::min(g.units, capacity));
      l.grid_y = g.grid_y;
      break;
    }
    case GridRule::SampleRuns:
      l.blocks_per_sample = static_cast<int>(std::clamp<int64_t>(resident / n, 1, g.max_per_sample));
      gx = g.samples * l.blocks_per_sample;
      break;
  }
  l.grid_x = static_cast<unsigned>(gx);
}

}  // namespace

DeviceLimits current_device_limits() {
  const DeviceInfo& dev = use_device();
  DeviceLimits d;
  d.cc_major = dev.cc_major;
  d.cc_minor = dev.cc_minor;
  d.smem_per_block_optin = static_cast<size_t>(dev.smem_per_block_optin);
  d.probe_libraries = true;
  return d;
}

Executor::Executor(const Plan& plan, LaunchProgram program) : plan_(plan), program_(std::move(program)) {
  const DeviceInfo& dev = use_device();
  CUmodule m = nullptr;
  if (program_.has_kernels()) {  // an unguarded constant fill is a memset alone: nothing to compile
    check_arch_supported(dev.arch());
    CompileRequest req;
    req.source = program_.source;
    req.arch = dev.arch();
    req.options = program_compile_options();
    static const CubinCache cache;
    CacheStats stats;
    compiled_ = compile_cached(req, &cache, kGeneratorVersion, &stats);
    cache_hit_ = stats.hit;
    FB_CU(cuModuleLoadData(&m, compiled_.cubin.data()));
    module_ = m;
  }
  // Programmatic dependent launches (the gated fallback's kernels, which mostly exit at once, start
  // while the step before them ends): sm_90+, and drivers from CUDA 12.3 on, which also capture
  // them into graphs. On an H100 this took three gated launches from 9.7 to 6.4 us.
  int driver_version = 0;
  FB_CU(cuDriverGetVersion(&driver_version));
  const bool programmatic_ok = dev.cc_major >= 9 && driver().cuLaunchKernelEx && driver_version >= 12030;
  size_t library_workspace = 0;
  for (const Step& s : program_.steps) {
    KernelLaunch l;
    l.kernel = s.name;
    library_convs_.emplace_back();
    if (s.kind == StepKind::Memset) {
      l.driver_memset = true;
      functions_.push_back(nullptr);
      launches_.push_back(l);
      continue;
    }
    if (s.kind == StepKind::LibraryConv) {  // cuDNN picks its engine for this device now
      library_convs_.back() = std::make_unique<CudnnConv>(s.library_conv);
      library_workspace = std::max(library_workspace, library_convs_.back()->workspace_bytes());
      l.library = true;
      functions_.push_back(nullptr);
      launches_.push_back(l);
      continue;
    }
    FB_ASSERT(s.args.size() <= kMaxArgs, "step " + s.name + " has more arguments than the launch slots");
    CUfunction f = get_function(m, s.name);
    l.threads = s.threads;
    l.dynamic_smem = s.dynamic_smem;
    l.blocks_per_sm = prepare(f, s.threads, s.dynamic_smem, dev, s.name);
    resolve_grid(s.grid, l.blocks_per_sm, dev, l);
    l.programmatic = s.programmatic && programmatic_ok;
    functions_.push_back(f);
    launches_.push_back(l);
  }
  // Only the library knows its workspace: it joins the scratch here, so scratch_bytes() covers it.
  if (library_workspace > 0)
    program_.buffers.push_back({BufferRole::LibraryWorkspace, BufferKind::Scratch, library_workspace});
  scratch_ = scratch_layout(program_);
}

Executor::~Executor() {
  if (module_) driver().cuModuleUnload(module_);
}

uint64_t Executor::pointer_of(BufferRole r, const DeviceTensors& t, uint64_t scratch) const {
  if (!program_.find(r)) return 0;  // a buffer the program does not have: the kernel ignores it
  switch (r) {
    case BufferRole::Input:
      return t.x;
    case BufferRole::Output:
      return t.y;
    case BufferRole::ConvWeight:
      return t.weight;
    case BufferRole::ConvBias:
      return t.bias;
    case BufferRole::NormWeight:
      return t.gamma;
    case BufferRole::NormBias:
      return t.beta;
    case BufferRole::DropoutState:
      if (t.dropout_state) return t.dropout_state;
      break;  // explicit seeds: the scratch copy the run's first step fills
    default:
      break;
  }
  const std::optional<size_t> at = scratch_.offset_of(r);
  FB_ASSERT(at.has_value(), std::string("no place for buffer ") + buffer_role_name(r));
  return scratch + *at;
}

void Executor::launch(const DeviceTensors& t, uint64_t scratch, const RunArgs& args, CUstream_st* stream,
                      const std::function<void(size_t)>& before_each) const {
  if (numel(plan_.pipeline.output_shape) == 0) return;
  if ((t.x % 16) || (t.y % 16))
    throw UserError("the CUDA backend needs 16-byte aligned input and output buffers", "pass contiguous tensors");
  if (t.dropout_state % 16) throw UserError("the dropout state must be 16-byte aligned device memory", "");
  FB_ASSERT(scratch_.bytes == 0 || scratch != 0, "scratch missing");
  for (size_t i = 0; i < program_.steps.size(); ++i) {
    if (before_each) before_each(i);
    const Step& s = program_.steps[i];
    const KernelLaunch& l = launches_[i];
    if (s.when == StepWhen::ExplicitDropoutSeeds && t.dropout_state) continue;
    if (s.when == StepWhen::AdvanceDropoutState && !(t.dropout_state && args.advance_dropout_state)) continue;
    if (s.kind == StepKind::Memset) {
      FB_CU(cuMemsetD32Async(pointer_of(s.memset_target, t, scratch), s.memset_bits,
                             static_cast<size_t>(s.memset_words), stream));
      continue;
    }
    if (s.kind == StepKind::LibraryConv) {
      library_convs_[i]->run(pointer_of(BufferRole::Input, t, scratch), pointer_of(BufferRole::ConvWeight, t, scratch),
                             pointer_of(BufferRole::ConvOutput, t, scratch),
                             pointer_of(BufferRole::LibraryWorkspace, t, scratch), stream);
      continue;
    }
    if (l.grid_x == 0) continue;
    // Every argument in an 8-byte slot; the kernel reads its parameter's size from the slot's start.
    // No allocation on this path (it runs for every call): arguments in fixed slots.
    std::array<uint64_t, kMaxArgs> slots{};
    std::array<void*, kMaxArgs> params{};
    for (size_t a = 0; a < s.args.size(); ++a) {
      const Arg& arg = s.args[a];
      const KernelLaunch& of = launches_[arg.step < 0 ? i : static_cast<size_t>(arg.step)];
      void* slot = &slots[a];
      switch (arg.kind) {
        case ArgKind::Buffer:
          slots[a] = pointer_of(arg.role, t, scratch);
          break;
        case ArgKind::DropoutSeed:
          slots[a] = args.seed;
          break;
        case ArgKind::DropoutOffset:
          slots[a] = args.offset;
          break;
        case ArgKind::BlocksPerSample: {
          const int v = of.blocks_per_sample;
          std::memcpy(slot, &v, sizeof v);
          break;
        }
        case ArgKind::SliceElems: {
          const long long v = of.slice;
          std::memcpy(slot, &v, sizeof v);
          break;
        }
        case ArgKind::QuadsPerBlock: {
          const long long v = of.quads_per_block;
          std::memcpy(slot, &v, sizeof v);
          break;
        }
      }
      params[a] = slot;
    }
    if (l.programmatic) {
      CUlaunchAttribute attr{};
      attr.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
      attr.value.programmaticStreamSerializationAllowed = 1;
      CUlaunchConfig c{};
      c.gridDimX = l.grid_x;
      c.gridDimY = l.grid_y;
      c.gridDimZ = c.blockDimY = c.blockDimZ = 1;
      c.blockDimX = l.threads;
      c.sharedMemBytes = static_cast<unsigned>(l.dynamic_smem);
      c.hStream = stream;
      c.attrs = &attr;
      c.numAttrs = 1;
      FB_CU(cuLaunchKernelEx(&c, functions_[i], params.data(), nullptr));
      continue;
    }
    FB_CU(cuLaunchKernel(functions_[i], l.grid_x, l.grid_y, 1, l.threads, 1, 1, static_cast<unsigned>(l.dynamic_smem),
                         stream, params.data(), nullptr));
  }
  if (before_each) before_each(program_.steps.size());
}

std::shared_ptr<const Executor> executor_for(const Plan& plan, bool allow_tf32) {
  const DeviceInfo& dev = use_device();
  const DeviceLimits limits = current_device_limits();
  const ConvProblem problem{&plan, allow_tf32 && dev.cc_major >= 8};  // mma .tf32 needs sm_80
  const LaunchProgram baseline = default_program(plan, problem.allow_tf32, limits);
  const std::string& baseline_source = baseline.source;
  const std::string key = std::to_string(dev.ordinal) + "|" + (allow_tf32 ? "tf32|" : "fp32|") + baseline_source;
  // One build per program: the first thread to ask builds it (outside the lock, so different
  // programs compile in parallel), later ones wait for that build.
  static std::mutex mu;
  static std::map<std::string, std::shared_future<std::shared_ptr<const Executor>>> built;
  std::promise<std::shared_ptr<const Executor>> promise;
  std::shared_future<std::shared_ptr<const Executor>> future;
  bool builder = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = built.find(key);
    if (it == built.end()) {
      future = promise.get_future().share();
      built.emplace(key, future);
      builder = true;
    } else {
      future = it->second;
    }
  }
  if (builder) {
    try {
      // `fuseblock tune`'s decision for this program on this device, driver and NVRTC, if any.
      const std::optional<TunedChoice> tuned = tune::cached_choice(plan, baseline_source);
      promise.set_value(std::make_shared<const Executor>(
          plan, tuned ? build_selected(problem, select_strategy(problem, limits, tuned)) : baseline));
    } catch (...) {
      {
        std::lock_guard<std::mutex> lock(mu);
        built.erase(key);  // a later call may succeed (e.g. after freeing memory)
      }
      promise.set_exception(std::current_exception());
    }
  }
  return future.get();
}

}  // namespace fuseblock::cuda
