// A convolution run by cuDNN, through the cuDNN frontend's graph API, with libcudnn loaded at run
// time (the frontend's dynamic-loading mode), as the driver and NVRTC are: one fuseblock binary
// runs where cuDNN is missing, and says so (cudnn_unavailable()). The store-once strategy uses it
// for its conv; the GPU tests use it as the conv oracle.
//
// The conv is y = conv(x, w) without bias, in the storage type (fp32 accumulation): PyTorch's
// eager runs cuDNN's conv and then adds the bias as a separate op, so the stored conv output is
// rounded before the bias is added, and fuseblock's statistics kernel adds the bias after it.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "fuseblock/dtype.hpp"

struct CUstream_st;

namespace fuseblock::cuda {

struct LibraryConvDesc {
  int dims = 2;  // spatial dimensions: 1, 2 or 3
  int64_t n = 0, c_in = 0, c_out = 0;
  // Only the first `dims` entries are used, outermost first (d, h, w / h, w / w).
  std::array<int64_t, 3> in{1, 1, 1}, out{1, 1, 1}, kernel{1, 1, 1}, stride{1, 1, 1}, padding{0, 0, 0},
      dilation{1, 1, 1};
  DType dtype = DType::F32;  // x, w and y; accumulation in fp32
  bool allow_tf32 = true;    // F32 only: false keeps cuDNN off TF32 tensor-core engines
  // x and y stored as N, spatial..., C (PyTorch's channels_last / channels_last_3d) instead of
  // N, C, spatial...; w always [C_out, C_in, k...] (PyTorch's layout; cuDNN is told its strides).
  bool channels_last = false;

  std::string key() const;  // every field, for caches
};

// Why cuDNN cannot run in this process (libcudnn not found, too old, no device), or nothing.
// Probes once and remembers; never throws.
std::optional<std::string> cudnn_unavailable();

// One conv, its cuDNN execution plan built on the current device.
class CudnnConv {
 public:
  // Builds the graph and picks an execution plan (heuristics, then fallback). Throws UserError
  // naming the reason when cuDNN is unavailable or has no engine for desc.
  explicit CudnnConv(const LibraryConvDesc& desc);
  ~CudnnConv();
  CudnnConv(const CudnnConv&) = delete;
  CudnnConv& operator=(const CudnnConv&) = delete;

  size_t workspace_bytes() const;
  // Enqueues y = conv(x, w) on `stream` (device pointers, 16-byte aligned; workspace of
  // workspace_bytes()). Safe from several threads at once: the plan is shared read-only and each
  // run borrows a cuDNN handle of its own, kept for later runs. Never synchronizes or allocates,
  // but for creating a handle when more runs are in flight on the device than ever before (the
  // constructor leaves one, so one thread at a time, CUDA graph capture included, never
  // creates any). Makes the conv's device current on the calling thread.
  void run(uint64_t x, uint64_t w, uint64_t y, uint64_t workspace, CUstream_st* stream) const;
  // The engine cuDNN chose, for explain and profile ("cudnn 9.19.0 " and the frontend's plan
  // name). Executors of one conv on one device share one plan, and so this very string.
  const std::string& engine() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fuseblock::cuda
