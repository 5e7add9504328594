// Compiling, loading and launching a plan's kernels on device pointers (executor.hpp).
#include "cuda/executor.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <future>
#include <map>
#include <mutex>

#include <fmt/format.h>

#include "cuda/cubin_cache.hpp"
#include "cuda/device_context.hpp"
#include "cuda/emit_lean.hpp"
#include "cuda/driver_api.hpp"
#include "cuda/emit_fill.hpp"
#include "fuseblock/error.hpp"
#include "tune/tuning_key.hpp"

namespace fuseblock::cuda {
namespace {

constexpr unsigned kFillThreads = 256;
constexpr unsigned kFinalizeThreads = 256;
constexpr size_t kScratchAlign = 256;

size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

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
    throw UserError(fmt::format("NVRTC {}.{} cannot compile for this GPU's architecture {}", api.major, api.minor, arch),
                    "use --device cpu, or a CUDA toolkit that supports this GPU");
}

}  // namespace

ScratchLayout scratch_layout(const EmittedProgram& program, int64_t samples) {
  ScratchLayout l;
  size_t at = 0;
  if (program.guard) {
    l.flags = at;
    at = align_up(at + static_cast<size_t>(samples + 1) * 4, kScratchAlign);  // per sample, and "any"
  }
  if (program.general && program.norm && program.lean) {  // partials, then a and b per (n, c)
    const ConvGeometry& g = program.geometry;
    l.partials = at;
    at = align_up(at + lean_partials_bytes(g), kScratchAlign);
    l.nscale = l.nmean = at;
    at = align_up(at + static_cast<size_t>(g.n * g.cout) * 8, kScratchAlign);
  } else if (program.general && program.norm) {
    const ConvGeometry& g = program.geometry;
    l.partials = at;
    at = align_up(at + static_cast<size_t>(g.n * g.cout * g.tiles) * 8, kScratchAlign);
    l.nscale = at;
    at = align_up(at + static_cast<size_t>(g.n * g.cout) * 4, kScratchAlign);
    l.nmean = at;
    at = align_up(at + static_cast<size_t>(g.n * g.cout) * 4, kScratchAlign);
  }
  l.bytes = at;
  return l;
}

float guard_bound_as_float(double bound) {
  if (std::isnan(bound)) return NAN;
  if (bound >= static_cast<double>(FLT_MAX)) return FLT_MAX;
  float f = static_cast<float>(bound);
  if (static_cast<double>(f) > bound) f = std::nextafter(f, -INFINITY);
  return f;
}

Executor::Executor(const Plan& plan, bool allow_tf32, const ConvTuning& tuning) : plan_(plan) {
  const DeviceInfo& dev = use_device();
  const bool tf32 = allow_tf32 && dev.cc_major >= 8;  // mma .tf32 needs sm_80
  program_ = emit_program(plan, tf32, tuning);
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

  const Pipeline& p = plan.pipeline;
  const int64_t n = p.input_shape.empty() ? 0 : p.input_shape[0];
  if (program_.fill) {
    const int64_t in_sample = n > 0 ? numel(p.input_shape) / n : 0;
    if (program_.fill_memset) {
      KernelLaunch memset;
      memset.kernel = "cuMemsetD32Async";
      memset.driver_memset = true;
      launches_.push_back(memset);
    }
    if (program_.guard_kernel()) {
      guard_ = get_function(m, "fb_guard");
      const int per_sm = prepare(guard_, kFillThreads, 0, dev, "fb_guard");
      fill_blocks_per_sample_ = guard_blocks_per_sample(static_cast<int64_t>(per_sm) * dev.sm_count, n, in_sample);
      fill_slice_ = ceil_div(ceil_div(in_sample, fill_blocks_per_sample_), 4) * 4;
      launches_.push_back({"fb_guard", static_cast<unsigned>(n * fill_blocks_per_sample_), 1, kFillThreads, 0, per_sm});
    }
    if (program_.fill_kernel()) {
      fill_ = get_function(m, "fb_fill");
      const int per_sm = prepare(fill_, kFillThreads, 0, dev, "fb_fill");
      const int64_t resident = static_cast<int64_t>(per_sm) * dev.sm_count;
      // Enough blocks to fill the chip once, each owning a slice of one sample's input.
      fill_blocks_per_sample_ = std::max<int64_t>(1, std::min(ceil_div(resident, std::max<int64_t>(n, 1)),
                                                              ceil_div(in_sample, 1024)));
      fill_slice_ = ceil_div(ceil_div(in_sample, fill_blocks_per_sample_), 4) * 4;
      const int64_t blocks = n * fill_blocks_per_sample_;
      fill_q_per_block_ = blocks > 0 ? ceil_div(ceil_div(numel(p.output_shape), 4), blocks) : 0;
      launches_.push_back({"fb_fill", static_cast<unsigned>(blocks), 1, kFillThreads, 0, per_sm});
    }
  }
  if (program_.general) {
    const size_t first_conv_launch = launches_.size();
    const ConvGeometry& g = program_.geometry;
    const size_t smem = g.smem_bytes();
    const unsigned threads = static_cast<unsigned>(g.threads);
    auto conv_launch = [&](CUfunction f, const std::string& name) {
      const int per_sm = prepare(f, threads, smem, dev, name);
      const int64_t capacity = std::max<int64_t>(1, static_cast<int64_t>(per_sm) * dev.sm_count / g.cchunks);
      const int64_t gx = std::max<int64_t>(1, std::min(g.n * g.tiles, capacity));
      launches_.push_back({name, static_cast<unsigned>(gx), static_cast<unsigned>(g.cchunks), threads, smem, per_sm});
    };
    if (program_.norm) {
      stats_ = get_function(m, program_.names.stats);
      finalize_ = get_function(m, program_.names.finalize);
    }
    output_ = get_function(m, program_.names.output);
    if (program_.lean) {  // (always with GroupNorm)
      // A block per (sample, run of tiles): as many runs per sample as fill the device once (each
      // kernel's own residency), at most lean_max_blocks_per_sample(). The partials follow the
      // statistics kernel's split; the output kernel reads only a and b.
      const size_t smem_s = lean_stats_smem_bytes(g), smem_o = lean_output_smem_bytes(g);
      const int per_sm_s = prepare(stats_, threads, smem_s, dev, program_.names.stats);
      const int per_sm_f = prepare(finalize_, kFinalizeThreads, 0, dev, program_.names.finalize);
      const int per_sm_o = prepare(output_, threads, smem_o, dev, program_.names.output);
      auto split = [&](int per_sm) {
        return static_cast<int>(std::clamp<int64_t>(static_cast<int64_t>(per_sm) * dev.sm_count / std::max<int64_t>(g.n, 1),
                                                    1, lean_max_blocks_per_sample(g)));
      };
      lean_blocks_per_sample_ = split(per_sm_s);
      lean_out_blocks_per_sample_ = split(per_sm_o);
      static_assert(kFinalizeThreads == 256, "fbl_finalize takes 8 (sample, group) pairs per block");
      const int64_t pairs = g.n * program_.conv_pipeline.norm->num_groups;  // a warp each
      launches_.push_back({program_.names.stats, static_cast<unsigned>(g.n * lean_blocks_per_sample_), 1, threads, smem_s,
                           per_sm_s});
      launches_.push_back({program_.names.finalize, static_cast<unsigned>(ceil_div(pairs, kFinalizeThreads / 32)), 1,
                           kFinalizeThreads, 0, per_sm_f});
      launches_.push_back({program_.names.output, static_cast<unsigned>(g.n * lean_out_blocks_per_sample_), 1, threads,
                           smem_o, per_sm_o});
    } else {
      if (program_.norm) {
        conv_launch(stats_, program_.names.stats);
        const int per_sm = prepare(finalize_, kFinalizeThreads, 0, dev, program_.names.finalize);
        const int64_t groups = program_.conv_pipeline.norm->num_groups;
        launches_.push_back({program_.names.finalize, static_cast<unsigned>(g.n * groups), 1, kFinalizeThreads, 0,
                             per_sm});
      }
      conv_launch(output_, program_.names.output);
    }
    // The gated fallback's kernels exit at once when no sample failed, so their cost is mostly
    // launch latency: on sm_90+ each is launched as a programmatic dependent of the kernel before
    // it (launch overlapped with that kernel's end; the kernel waits for its writes first). On an
    // H100 this took the three gated launches from 9.7 to 6.4 us (dev/fill_variants.cpp v17, v19).
    // Drivers from CUDA 12.3 on also capture such launches into graphs.
    int driver_version = 0;
    FB_CU(cuDriverGetVersion(&driver_version));
    if (program_.gated && dev.cc_major >= 9 && driver().cuLaunchKernelEx && driver_version >= 12030)
      for (size_t i = first_conv_launch; i < launches_.size(); ++i) launches_[i].programmatic = true;
  }
  scratch_ = scratch_layout(program_, n);
  scratch_bytes_ = scratch_.bytes;
}

Executor::~Executor() {
  if (module_) driver().cuModuleUnload(module_);
}

void Executor::launch(const DeviceTensors& t, uint64_t scratch, const RunArgs& args, CUstream_st* stream,
                      const std::function<void(size_t)>& before_each) const {
  const Pipeline& p = plan_.pipeline;
  if (numel(p.output_shape) == 0) return;
  if ((t.x % 16) || (t.y % 16))
    throw UserError("the CUDA backend needs 16-byte aligned input and output buffers", "pass contiguous tensors");
  FB_ASSERT(scratch_bytes_ == 0 || scratch != 0, "scratch missing");
  uint64_t seed = args.seed, offset = args.offset;
  uint64_t x = t.x, y = t.y, w = t.weight, bias = t.bias, gamma = t.gamma, beta = t.beta;
  uint64_t flags = program_.guard ? scratch + scratch_.flags : 0;
  uint64_t partials = scratch + scratch_.partials, nscale = scratch + scratch_.nscale, nmean = scratch + scratch_.nmean;
  size_t li = 0;
  auto next_step = [&]() -> const KernelLaunch& {
    if (before_each) before_each(li);
    return launches_.at(li++);
  };
  // zero_flags: the guard flags start at zero every run (the caller's scratch holds anything);
  // that memset is part of the guard's step, so a profiler's time for the step includes it.
  auto go = [&](CUfunction f, void** params, bool zero_flags = false) {
    const KernelLaunch& l = next_step();
    if (zero_flags) FB_CU(cuMemsetD32Async(flags, 0, static_cast<size_t>(p.input_shape[0]) + 1, stream));
    if (l.grid_x == 0) return;
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
      FB_CU(cuLaunchKernelEx(&c, f, params, nullptr));
      return;
    }
    FB_CU(cuLaunchKernel(f, l.grid_x, l.grid_y, 1, l.threads, 1, 1, static_cast<unsigned>(l.dynamic_smem), stream,
                         params, nullptr));
  };
  if (program_.fill) {
    float bound = guard_bound_as_float(args.guard_bound);
    long long qpb = fill_q_per_block_, slice = fill_slice_;
    int bps = static_cast<int>(fill_blocks_per_sample_);
    if (program_.fill_memset) {
      // First: the fallback's output kernel overwrites failing samples later, and the guard
      // kernel then directly precedes the gated kernels, which launch as its dependents.
      next_step();
      FB_CU(cuMemsetD32Async(y, program_.fill_bits, static_cast<size_t>(numel(p.output_shape)), stream));
    }
    if (program_.guard_kernel()) {
      void* params[] = {&x, &flags, &bound, &bps, &slice};
      go(guard_, params, true);
    }
    if (program_.fill_kernel()) {
      void* params[] = {&x, &y, &flags, &bound, &seed, &offset, &qpb, &bps, &slice};
      go(fill_, params, program_.guard);
    }
  }
  if (program_.general && program_.lean) {
    int bps = lean_blocks_per_sample_, bps_out = lean_out_blocks_per_sample_;
    uint64_t ab = nscale;
    void* sp[] = {&x, &w, &partials, &bps};
    go(stats_, sp);
    void* fp[] = {&partials, &bias, &gamma, &beta, &ab, &bps};
    go(finalize_, fp);
    void* op[] = {&x, &w, &ab, &y, &bps_out, &seed, &offset};
    go(output_, op);
  } else if (program_.general) {
    if (program_.norm) {
      void* sp[] = {&x, &w, &bias, &partials, &flags};
      go(stats_, sp);
      void* fp[] = {&partials, &gamma, &nscale, &nmean, &flags};
      go(finalize_, fp);
    }
    void* op[] = {&x, &w, &bias, &nscale, &nmean, &beta, &y, &flags, &seed, &offset};
    go(output_, op);
  }
  if (before_each) before_each(launches_.size());
}

std::shared_ptr<const Executor> executor_for(const Plan& plan, bool allow_tf32) {
  const DeviceInfo& dev = use_device();
  const std::string baseline_source = emit_program(plan, allow_tf32 && dev.cc_major >= 8).source;
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
      const ConvTuning tuning = tune::cached_conv_tuning(plan, baseline_source).value_or(ConvTuning{});
      promise.set_value(std::make_shared<const Executor>(plan, allow_tf32, tuning));
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
