// The one translation unit that includes the cuDNN frontend (cudnn_conv_plan.hpp): a conv as a
// one-node frontend graph, its plans cached per (device, desc.key()), and the cuDNN handles.
//
// The frontend runs in its dynamic-loading mode (NV_CUDNN_FRONTEND_USE_DYNAMIC_LOADING, set by
// CMake on this file alone): every cuDNN call is looked up in `cudnn_frontend::cudnn_dlhandle`,
// which this file defines and points at cudnn_library()'s libcudnn, so nothing links cuDNN.
//
// Nor does anything link the CUDA runtime. In that mode the frontend dlopen's libcudart.so.12 or
// .13 itself, lazily, at its first runtime call, and the path taken here makes none it needs:
// - check_support() asks the runtime for the device's compute capability unless the graph has
//   it: set_sm_version() gives it from the driver's DeviceInfo;
// - execute() asks the runtime whether the stream is being captured into a CUDA graph, to hand
//   the graph a reference to plans whose kernels were compiled at run time: retention NONE turns
//   that off, which is safe because the plans here are never destroyed (cudnn_conv_plan());
// - execute() looks up cuCtxGetCurrent through the runtime to bind a context to a thread that
//   has none; without libcudart the lookup fails quietly and does nothing, and CudnnConv::run
//   makes the plan's device current first anyway.
// The rest of the frontend's runtime calls (CUDA graph population, autotuning, workspace
// memsets of other node kinds, tensor dumps) are not on this path. Should one be reached with
// no libcudart, the frontend throws std::runtime_error, which becomes a UserError here.
#include "cuda/runtime/cudnn_conv_plan.hpp"

#include <fmt/format.h>

#include <map>
#include <mutex>

#include "cuda/runtime/cudnn_library.hpp"
#include "cuda/runtime/device_context.hpp"
#include "fuseblock/error.hpp"

#if FUSEBLOCK_CUDNN_FRONTEND
#include <cudnn_frontend.h>

#if CUDNN_MAJOR < 9  // libcudnn.so.9 is what is loaded
#error "cudnn.h is not cuDNN 9's: point FUSEBLOCK_CUDNN_INCLUDE_DIR at cuDNN 9's headers"
#endif

namespace cudnn_frontend {
void* cudnn_dlhandle = nullptr;  // declared by the frontend's shim; the application defines it
}

namespace fuseblock::cuda {
namespace {

namespace fe = cudnn_frontend;

// The tensors' uids, in the order execute() takes their pointers (ascending uid).
enum : int64_t { kUidX = 1, kUidW = 2, kUidY = 3 };

// A frontend message can list every engine config that failed; a user needs its start.
std::string clipped(std::string s) {
  constexpr size_t kMax = 1500;
  if (s.size() > kMax) s = s.substr(0, kMax) + fmt::format(" ... ({} more characters)", s.size() - kMax);
  return s;
}

std::string status_text(cudnnStatus_t s) {
  const char* text = fe::detail::get_error_string(s);
  std::string out = fmt::format("{} ({})", text ? text : "unknown status", static_cast<int>(s));
  if (std::string last = fe::detail::get_last_error_string_(); !last.empty()) out += ": " + last;
  return out;
}

void check(fe::error_t status, const char* step, const LibraryConvDesc& desc) {
  if (status.is_good()) return;
  throw UserError(
      fmt::format("cuDNN cannot run the conv {}: {} failed: {}", desc.key(), step, clipped(status.get_message())),
      "use a conv strategy that does not need cuDNN, or another cuDNN 9 (FUSEBLOCK_CUDNN_LIBRARY); "
      "CUDNN_FRONTEND_LOG_INFO=1 CUDNN_FRONTEND_LOG_FILE=stderr shows cuDNN's reasons");
}

// cuDNN handles of one device. A handle must not be used by two threads at once, so each run
// borrows one and gives it back: a device ends up with as many as it had runs at one time.
// They live as long as the process, as the device's primary context does (destroying them in
// static destructors would race the driver's own teardown at exit).
class HandlePool {
 public:
  cudnnHandle_t take(int device) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!idle_.empty()) {
        cudnnHandle_t h = idle_.back();
        idle_.pop_back();
        return h;
      }
    }
    cudnnHandle_t h = nullptr;
    if (cudnnStatus_t s = fe::detail::create_handle(&h); s != CUDNN_STATUS_SUCCESS)
      throw UserError(fmt::format("cudnnCreate failed on cuda:{}: {}", device, status_text(s)),
                      "cuDNN 9 needs a driver as new as the CUDA it was built for and a GPU it supports; "
                      "FUSEBLOCK_CUDNN_LIBRARY picks another libcudnn.so.9");
    return h;
  }
  void give(cudnnHandle_t h) {
    std::lock_guard<std::mutex> lock(mu_);
    idle_.push_back(h);
  }

 private:
  std::mutex mu_;
  std::vector<cudnnHandle_t> idle_;
};

HandlePool& handle_pool(int device) {
  static std::mutex mu;
  static auto* pools = new std::map<int, HandlePool>;  // never destroyed: see HandlePool
  std::lock_guard<std::mutex> lock(mu);
  return (*pools)[device];  // map nodes never move
}

class BorrowedHandle {
 public:
  explicit BorrowedHandle(int device) : pool_(handle_pool(device)), handle_(pool_.take(device)) {}
  ~BorrowedHandle() { pool_.give(handle_); }
  BorrowedHandle(const BorrowedHandle&) = delete;
  BorrowedHandle& operator=(const BorrowedHandle&) = delete;
  cudnnHandle_t get() const { return handle_; }

 private:
  HandlePool& pool_;
  cudnnHandle_t handle_;
};

fe::DataType_t io_type(DType d) {
  switch (d) {
    case DType::F32:
      return fe::DataType_t::FLOAT;
    case DType::BF16:
      return fe::DataType_t::BFLOAT16;
    case DType::F16:
      return fe::DataType_t::HALF;
  }
  throw InternalError("cudnn_conv_plan: unknown dtype");
}

std::shared_ptr<const CudnnConvPlan> build_plan(const LibraryConvDesc& desc, const DeviceInfo& device,
                                                const CudnnLibrary& library) {
  const CudnnConvTensors t = cudnn_conv_tensors(desc);
  const fe::DataType_t io = io_type(desc.dtype);
  auto graph = std::make_shared<fe::graph::Graph>();
  graph->set_io_data_type(io)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT)
      .set_sm_version(device.cc_major * 10 + device.cc_minor)     // see the top of the file
      .set_cuda_graph_retention(fe::CudaGraphRetention_t::NONE);  // likewise
  auto tensor = [&](const char* name, int64_t uid, const std::vector<int64_t>& dim,
                    const std::vector<int64_t>& stride) {
    return fe::graph::Tensor_attributes().set_name(name).set_uid(uid).set_dim(dim).set_stride(stride).set_data_type(io);
  };
  auto x = graph->tensor(tensor("x", kUidX, t.x_dim, t.x_stride));
  auto w = graph->tensor(tensor("w", kUidW, t.w_dim, t.w_stride));
  auto y = graph->conv_fprop(x, w,
                             fe::graph::Conv_fprop_attributes()
                                 .set_name("conv")
                                 .set_padding(t.padding)
                                 .set_stride(t.stride)
                                 .set_dilation(t.dilation)
                                 .set_compute_data_type(fe::DataType_t::FLOAT));
  y->set_output(true).set_uid(kUidY).set_dim(t.y_dim).set_stride(t.y_stride).set_data_type(io);

  BorrowedHandle handle(device.ordinal);
  check(graph->validate(), "validate", desc);
  check(graph->build_operation_graph(handle.get()), "build_operation_graph", desc);
  check(graph->create_execution_plans({fe::HeurMode_t::A, fe::HeurMode_t::FALLBACK}),
        "create_execution_plans (heuristics mode A, then fallback)", desc);
  // Strict fp32, as PyTorch does with TF32 off: no engine that rounds the inputs to a narrower
  // type, which is what a tensor-core engine does with fp32 data (TF32).
  if (desc.dtype == DType::F32 && !desc.allow_tf32)
    graph->deselect_numeric_notes({fe::NumericalNote_t::TENSOR_CORE, fe::NumericalNote_t::DOWN_CONVERT_INPUTS});
  check(graph->check_support(), "check_support", desc);
  // The first plan, in the heuristics' order, that builds: no autotuning, so construction
  // stays as fast as one plan build.
  check(graph->build_plans(fe::BuildPlanPolicy_t::HEURISTICS_CHOICE), "build_plans", desc);

  auto plan = std::make_shared<CudnnConvPlan>();
  plan->device = device.ordinal;
  int64_t workspace = 0;
  check(graph->get_workspace_size(workspace), "get_workspace_size", desc);
  plan->workspace_bytes = static_cast<size_t>(workspace);
  std::string name;
  check(graph->get_plan_name(name), "get_plan_name", desc);
  plan->engine = "cudnn " + cudnn_version_string(library.version) + " " + name;
  plan->graph = std::move(graph);
  return plan;
}

}  // namespace

std::string cudnn_frontend_missing() { return {}; }

std::shared_ptr<const CudnnConvPlan> cudnn_conv_plan(const LibraryConvDesc& desc, const DeviceInfo& device,
                                                     const CudnnLibrary& library) {
  // Builds are serialized: constructions are few, and each is a heuristics query and one plan
  // build. The cache is never destroyed: CUDA graphs may hold its plans' kernels (see the top),
  // and cuDNN's descriptors must not be destroyed after the driver's teardown at exit.
  static std::mutex mu;
  static auto* cache = new std::map<std::string, std::shared_ptr<const CudnnConvPlan>>;
  std::lock_guard<std::mutex> lock(mu);
  if (!fe::cudnn_dlhandle) fe::cudnn_dlhandle = library.handle;  // before the frontend's first call
  const std::string key = std::to_string(device.ordinal) + "|" + desc.key();
  if (auto it = cache->find(key); it != cache->end()) return it->second;
  std::shared_ptr<const CudnnConvPlan> plan;
  try {
    plan = build_plan(desc, device, library);
  } catch (const UserError&) {
    throw;
  } catch (const std::exception& e) {  // the frontend's own exceptions (a symbol or libcudart missing)
    throw UserError(fmt::format("cuDNN cannot run the conv {}: {}", desc.key(), e.what()),
                    "check that libcudnn.so.9 is complete (FUSEBLOCK_CUDNN_LIBRARY picks another)");
  }
  cache->emplace(key, plan);
  return plan;
}

void run_cudnn_conv_plan(const CudnnConvPlan& plan, uint64_t x, uint64_t w, uint64_t y, uint64_t workspace,
                         CUstream_st* stream) {
  const auto& graph = *static_cast<const fe::graph::Graph*>(plan.graph.get());
  BorrowedHandle handle(plan.device);
  if (cudnnStatus_t s = fe::detail::set_stream(handle.get(), stream); s != CUDNN_STATUS_SUCCESS)
    throw UserError("cudnnSetStream failed: " + status_text(s), "pass a stream of the conv's device");
  void* pointers[] = {reinterpret_cast<void*>(x), reinterpret_cast<void*>(w), reinterpret_cast<void*>(y)};
  fe::error_t status;
  try {
    status = graph.execute(handle.get(), pointers, 3, reinterpret_cast<void*>(workspace));
  } catch (const std::exception& e) {
    throw UserError(std::string("cuDNN's conv failed: ") + e.what(), "see the top of cudnn_conv_plan.cpp");
  }
  if (status.is_bad())
    throw UserError("cuDNN's conv failed: " + clipped(status.get_message()),
                    "the pointers must be device memory of the conv's device, 16-byte aligned, with a workspace of "
                    "workspace_bytes()");
}

}  // namespace fuseblock::cuda

#else  // built without the frontend's headers

namespace fuseblock::cuda {

std::string cudnn_frontend_missing() {
  return "this fuseblock was built without the cuDNN frontend's headers: pip install --no-deps -r "
         "requirements-headers.txt (scripts/install-deps.sh does), or set FUSEBLOCK_CUDNN_FRONTEND_DIR, and "
         "configure again";
}

std::shared_ptr<const CudnnConvPlan> cudnn_conv_plan(const LibraryConvDesc&, const DeviceInfo&, const CudnnLibrary&) {
  throw UserError("cuDNN is not available: " + cudnn_frontend_missing());
}

void run_cudnn_conv_plan(const CudnnConvPlan&, uint64_t, uint64_t, uint64_t, uint64_t, CUstream_st*) {
  throw UserError("cuDNN is not available: " + cudnn_frontend_missing());
}

}  // namespace fuseblock::cuda

#endif
