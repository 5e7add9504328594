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
#include "cuda/executor/tensor_map.hpp"
#include "cuda/program/grid_rules.hpp"
#include "cuda/runtime/cubin_cache.hpp"
#include "cuda/runtime/device_context.hpp"
#include "cuda/runtime/driver_api.hpp"
#include "fuseblock/error.hpp"
#include "tune/tuning_key.hpp"

namespace fuseblock::cuda {
namespace {

constexpr size_t kMaxArgs = 16;        // the most arguments a step's kernel takes (checked when built)
constexpr size_t kMaxTensorMaps = 4;   // of which tensor maps (128 bytes each, by value)

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
  const int want = std::stoi(arch.substr(3));  // "sm_90a" -> 90: NVRTC lists the base architecture
  if (std::find(archs.begin(), archs.end(), want) == archs.end())
    throw UserError(
        fmt::format("NVRTC {}.{} cannot compile for this GPU's architecture {}", api.major, api.minor, arch),
        "use --device cpu, or a CUDA toolkit that supports this GPU");
}

// The architecture a program compiles for: its own target, else the device's; an
// architecture-specific target (sm_90a) runs only on its own compute capability.
std::string program_arch(const LaunchProgram& p, const DeviceInfo& dev) {
  if (p.target.empty()) return dev.arch();
  if (p.target.back() == 'a' && p.target.substr(0, p.target.size() - 1) != dev.arch())
    throw UserError(fmt::format("strategy {} ({}) is built for {}, whose instructions only {} GPUs have; {} is {}",
                                p.strategy, p.config, p.target, p.target.substr(0, p.target.size() - 1), dev.name,
                                dev.arch()),
                    "run this config on a matching GPU, or let selection choose another");
  return p.target;
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
    const std::string arch = program_arch(program_, dev);
    check_arch_supported(arch);
    CompileRequest req;
    req.source = program_.source;
    req.arch = arch;  // the cubin cache keys on it
    req.options = program_compile_options();
    static const CubinCache cache;
    CacheStats stats;
    compiled_ = compile_cached(req, &cache, kGeneratorVersion, &stats);
    cache_hit_ = stats.hit;
    FB_CU(cuModuleLoadData(&m, compiled_.cubin.data()));
    module_ = m;
  }
  // The destructor does not run when the constructor throws below (a tensor map, a shared-memory
  // limit, a cuDNN plan): unload the module then, or tune leaks one per rejected config.
  struct UnloadUnlessBuilt {
    CUmod_st*& module;
    bool built = false;
    ~UnloadUnlessBuilt() {
      if (!built && module) driver().cuModuleUnload(module), module = nullptr;
    }
  } unload_unless_built{module_};
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
    FB_ASSERT(std::count_if(s.args.begin(), s.args.end(), [](const Arg& a) { return a.kind == ArgKind::TensorMap; }) <=
                  static_cast<long>(kMaxTensorMaps),
              "step " + s.name + " has more tensor maps than the launch slots");
    for (const Arg& a : s.args)
      if (a.kind == ArgKind::TensorMap)
        if (std::optional<std::string> bad = tensor_map_invalid(a.tensor_map))
          throw InternalError(fmt::format("step {}: tensor map of {} ({}): {}", s.name, buffer_name(a.ref),
                                          describe(a.tensor_map), *bad));
    CUfunction f = get_function(m, s.name);
    l.threads = s.threads;
    l.dynamic_smem = s.dynamic_smem;
    l.blocks_per_sm = prepare(f, s.threads, s.dynamic_smem, dev, s.name);
    const ResolvedGrid rg = resolve_grid(s.grid, static_cast<int64_t>(l.blocks_per_sm) * dev.sm_count);
    l.grid_x = rg.grid_x;
    l.grid_y = rg.grid_y;
    l.blocks_per_sample = rg.blocks_per_sample;
    l.slice = rg.slice;
    l.quads_per_block = rg.quads_per_block;
    l.programmatic = s.programmatic && programmatic_ok;
    functions_.push_back(f);
    launches_.push_back(l);
  }
  // Only the library knows its workspace: it joins the scratch here, so scratch_bytes() covers it.
  if (library_workspace > 0)
    program_.buffers.push_back({BufferRole::LibraryWorkspace, BufferKind::Scratch, library_workspace});
  scratch_ = scratch_layout(program_);
  for (const Step& s : program_.steps) {  // each argument's buffer placed once, not per call
    arg_places_.emplace_back();
    for (const Arg& a : s.args) arg_places_.back().push_back(place(a.ref));
  }
  unload_unless_built.built = true;
}

Executor::~Executor() {
  if (module_) driver().cuModuleUnload(module_);
}

bool caller_bound(BufferRole r) {
  switch (r) {
    case BufferRole::Input:
    case BufferRole::Output:
    case BufferRole::ConvWeight:
    case BufferRole::ConvBias:
    case BufferRole::NormWeight:
    case BufferRole::NormBias:
    case BufferRole::PreluWeight:
    case BufferRole::ChannelAdd:
    case BufferRole::DropoutState:  // or, unbound, the scratch copy the run fills
      return true;
    default:
      return false;
  }
}

DeviceTensors& DeviceTensors::bind(BufferRole role, uint64_t ptr, int index) {
  if (!caller_bound(role))
    throw UserError(fmt::format("'{}' is scratch that the executor places; a caller binds only the input, output, "
                                "parameters, run-time inputs and the dropout state",
                                buffer_role_name(role)),
                    "pass the scratch allocation as `scratch`");
  for (size_t i = 0; i < count_; ++i)
    if (bound_[i].role == role && bound_[i].index == index) {
      bound_[i].ptr = ptr;
      return *this;
    }
  if (count_ == kMaxBound)
    throw UserError(fmt::format("more than {} buffers bound to one run", kMaxBound), "bind each buffer once");
  bound_[count_++] = {role, index, ptr};
  return *this;
}

DeviceTensors& DeviceTensors::bind(const std::string& name, uint64_t ptr) {
  if (name == "scratch") {
    scratch = ptr;
    return *this;
  }
  static const std::pair<const char*, BufferRole> kNames[] = {
      {"input", BufferRole::Input},           {"output", BufferRole::Output},
      {"conv.weight", BufferRole::ConvWeight}, {"conv.bias", BufferRole::ConvBias},
      {"norm.weight", BufferRole::NormWeight}, {"norm.bias", BufferRole::NormBias},
      {"prelu.weight", BufferRole::PreluWeight}, {"channel add", BufferRole::ChannelAdd},
      {"dropout state", BufferRole::DropoutState}};
  for (const auto& [n, role] : kNames)
    if (name == n) return bind(role, ptr);
  // "prelu.<k>.weight": the k-th prelu of a block with several (prelu_weight_key).
  const std::string head = "prelu.", tail = ".weight";
  if (name.size() > head.size() + tail.size() && name.starts_with(head) && name.ends_with(tail)) {
    const std::string k = name.substr(head.size(), name.size() - head.size() - tail.size());
    if (k.find_first_not_of("0123456789") == std::string::npos && k.size() < 4)
      return bind(BufferRole::PreluWeight, ptr, std::stoi(k));
  }
  throw UserError(fmt::format("unknown buffer '{}'", name),
                  "bind input, output, scratch, dropout state, channel add or a parameter key (conv.weight, "
                  "conv.bias, norm.weight, norm.bias, prelu.weight, prelu.<k>.weight)");
}

uint64_t DeviceTensors::get(BufferRole role, int index) const {
  for (size_t i = 0; i < count_; ++i)
    if (bound_[i].role == role && bound_[i].index == index) return bound_[i].ptr;
  return 0;
}

Executor::Placement Executor::place(const BufferRef& r) const {
  Placement p;
  p.declared = program_.find(r) != nullptr;
  if (!p.declared) return p;
  p.caller = caller_bound(r.role);
  const std::optional<size_t> at = scratch_.offset_of(r);
  FB_ASSERT(at.has_value() || (p.caller && r.role != BufferRole::DropoutState),
            "no place for buffer " + buffer_name(r));
  p.scratch_offset = at.value_or(0);
  return p;
}

uint64_t Executor::pointer_of(const BufferRef& r, const Placement& at, const DeviceTensors& t) const {
  if (!at.declared) return 0;  // a buffer the program does not have: the kernel ignores it
  if (at.caller) {
    const uint64_t bound = t.get(r.role, r.index);
    if (bound || r.role != BufferRole::DropoutState) return bound;
    // explicit seeds: the scratch copy the run's first step fills
  }
  return t.scratch + at.scratch_offset;
}

void Executor::launch(const DeviceTensors& t, const RunArgs& args, CUstream_st* stream,
                      const std::function<void(size_t)>& before_each) const {
  if (numel(plan_.pipeline.output_shape) == 0) return;
  if ((t.get(BufferRole::Input) % 16) || (t.get(BufferRole::Output) % 16))
    throw UserError("the CUDA backend needs 16-byte aligned input and output buffers", "pass contiguous tensors");
  const uint64_t dropout_state = t.get(BufferRole::DropoutState);
  if (dropout_state % 16)
    throw UserError("the dropout state must be 16-byte aligned device memory",
                    "pass a fresh tensor from draw_dropout_seed(), or .clone() a view of a larger one");
  FB_ASSERT(scratch_.bytes == 0 || t.scratch != 0, "scratch missing");
  // Before any step runs (nothing half-written): every buffer the caller must bind is bound (a
  // missing one would reach a kernel as address 0).
  for (size_t i = 0; i < program_.steps.size(); ++i)
    for (size_t a = 0; a < program_.steps[i].args.size(); ++a) {
      const Arg& arg = program_.steps[i].args[a];
      const Placement& at = arg_places_[i][a];
      if (arg.kind == ArgKind::Buffer && at.declared && at.caller && arg.ref.role != BufferRole::DropoutState &&
          !t.get(arg.ref.role, arg.ref.index))
        throw UserError(fmt::format("the block's program reads {} but the call bound no tensor for it (step {})",
                                    buffer_name(arg.ref), program_.steps[i].name),
                        "bind every tensor the block takes (its parameters, a per-(sample, channel) input, "
                        "PReLU weights) before launching");
    }
  for (size_t i = 0; i < program_.steps.size(); ++i) {
    if (before_each) before_each(i);
    const Step& s = program_.steps[i];
    const KernelLaunch& l = launches_[i];
    if (s.when == StepWhen::ExplicitDropoutSeeds && dropout_state) continue;
    if (s.when == StepWhen::AdvanceDropoutState && !(dropout_state && args.advance_dropout_state)) continue;
    if (s.kind == StepKind::Memset) {
      FB_CU(cuMemsetD32Async(pointer_of(s.memset_target, t), s.memset_bits, static_cast<size_t>(s.memset_words),
                             stream));
      continue;
    }
    if (s.kind == StepKind::LibraryConv) {
      library_convs_[i]->run(pointer_of(BufferRole::Input, t), pointer_of(BufferRole::ConvWeight, t),
                             pointer_of(BufferRole::ConvOutput, t), pointer_of(BufferRole::LibraryWorkspace, t),
                             stream);
      continue;
    }
    if (l.grid_x == 0) continue;
    // A scalar or pointer in an 8-byte slot (the kernel reads its parameter's size from the slot's
    // start), a tensor map in a 128-byte one: kernelParams points at each argument's own storage and
    // the driver copies each parameter by the size and alignment the kernel declares. No allocation
    // on this path (it runs for every call): arguments in fixed slots.
    std::array<uint64_t, kMaxArgs> slots{};
    std::array<CUtensorMap, kMaxTensorMaps> maps;
    static_assert(sizeof(CUtensorMap) == kTensorMapBytes && alignof(CUtensorMap) >= 64);
    size_t used_maps = 0;
    std::array<void*, kMaxArgs> params{};
    for (size_t a = 0; a < s.args.size(); ++a) {
      const Arg& arg = s.args[a];
      const KernelLaunch& of = launches_[arg.step < 0 ? i : static_cast<size_t>(arg.step)];
      void* slot = &slots[a];
      switch (arg.kind) {
        case ArgKind::Buffer:
          slots[a] = pointer_of(arg.ref, arg_places_[i][a], t);
          break;
        case ArgKind::TensorMap:
          slot = &maps[used_maps++];
          encode_tensor_map(arg.tensor_map, pointer_of(arg.ref, arg_places_[i][a], t), slot);
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
