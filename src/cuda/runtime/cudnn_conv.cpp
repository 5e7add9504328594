// A conv run by cuDNN (cudnn_conv.hpp): the description, the availability probe and the class;
// the graph, the plans and the handles are in cudnn_conv_plan.cpp, the one file that includes
// the cuDNN frontend.
#include "cuda/runtime/cudnn_conv.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <exception>

#include "cuda/runtime/cudnn_conv_plan.hpp"
#include "cuda/runtime/cudnn_library.hpp"
#include "cuda/runtime/device_context.hpp"
#include "cuda/runtime/driver_api.hpp"
#include "fuseblock/error.hpp"

namespace fuseblock::cuda {

std::string LibraryConvDesc::key() const {
  return fmt::format("cudnn_conv d{} n{} ci{} co{} in{} out{} k{} s{} p{} dil{} {} tf32={} cl={}", dims, n, c_in, c_out,
                     fmt::join(in, "x"), fmt::join(out, "x"), fmt::join(kernel, "x"), fmt::join(stride, "x"),
                     fmt::join(padding, "x"), fmt::join(dilation, "x"), dtype_name(dtype), allow_tf32 ? 1 : 0,
                     channels_last ? 1 : 0);
}

namespace {

// Strides of a dense tensor of `dim` ([N, C, spatial...]) stored in the order `order` lists
// the dimensions, outermost first.
std::vector<int64_t> dense_strides(const std::vector<int64_t>& dim, const std::vector<size_t>& order) {
  std::vector<int64_t> stride(dim.size());
  int64_t step = 1;
  for (size_t i = order.size(); i-- > 0;) {
    stride[order[i]] = step;
    step *= dim[order[i]];
  }
  return stride;
}

// Row-major (N, C, spatial...) or channels-last (N, spatial..., C) for a rank-`rank` tensor.
std::vector<size_t> storage_order(size_t rank, bool channels_last) {
  std::vector<size_t> order = {0};
  if (!channels_last) order.push_back(1);
  for (size_t i = 2; i < rank; ++i) order.push_back(i);
  if (channels_last) order.push_back(1);
  return order;
}

void check_desc(const LibraryConvDesc& d) {
  FB_ASSERT(d.dims >= 1 && d.dims <= 3, "a cuDNN conv has 1 to 3 spatial dimensions: " + d.key());
  FB_ASSERT(d.n > 0 && d.c_in > 0 && d.c_out > 0, "a cuDNN conv of empty tensors: " + d.key());
  for (int i = 0; i < d.dims; ++i) {
    const int64_t span = d.dilation[i] * (d.kernel[i] - 1) + 1;
    FB_ASSERT(d.in[i] > 0 && d.kernel[i] > 0 && d.stride[i] > 0 && d.dilation[i] > 0 && d.padding[i] >= 0,
              "a cuDNN conv with a non-positive size: " + d.key());
    FB_ASSERT(d.in[i] + 2 * d.padding[i] >= span && d.out[i] == (d.in[i] + 2 * d.padding[i] - span) / d.stride[i] + 1,
              "a cuDNN conv whose output size does not follow from its input: " + d.key());
  }
}

}  // namespace

CudnnConvTensors cudnn_conv_tensors(const LibraryConvDesc& d) {
  CudnnConvTensors t;
  // A 1-D conv becomes 2-D with a unit height in front: size 1, kernel 1, stride 1, no padding.
  auto spatial = [&](const std::array<int64_t, 3>& v, int64_t unit) {
    std::vector<int64_t> out;
    if (d.dims == 1) out.push_back(unit);
    for (int i = 0; i < d.dims; ++i) out.push_back(v[i]);
    return out;
  };
  t.x_dim = {d.n, d.c_in};
  t.w_dim = {d.c_out, d.c_in};
  t.y_dim = {d.n, d.c_out};
  for (int64_t v : spatial(d.in, 1)) t.x_dim.push_back(v);
  for (int64_t v : spatial(d.kernel, 1)) t.w_dim.push_back(v);
  for (int64_t v : spatial(d.out, 1)) t.y_dim.push_back(v);
  const size_t rank = t.x_dim.size();
  t.x_stride = dense_strides(t.x_dim, storage_order(rank, d.channels_last));
  t.y_stride = dense_strides(t.y_dim, storage_order(rank, d.channels_last));
  t.w_stride = dense_strides(t.w_dim, storage_order(rank, false));  // always PyTorch's [C_out, C_in, k...]
  t.padding = spatial(d.padding, 0);
  t.stride = spatial(d.stride, 1);
  t.dilation = spatial(d.dilation, 1);
  return t;
}

std::optional<std::string> cudnn_unavailable() {
  static const std::optional<std::string> why = []() -> std::optional<std::string> {
    try {
      if (std::string missing = cudnn_frontend_missing(); !missing.empty()) return missing;
      std::string reason;
      if (!cudnn_library(&reason)) return reason;
      if (!driver_available(&reason)) return "CUDA is not available: " + reason;
      return std::nullopt;
    } catch (const std::exception& e) {  // the contract is to never throw
      return std::string("probing cuDNN failed: ") + e.what();
    }
  }();
  return why;
}

struct CudnnConv::Impl {
  std::shared_ptr<const CudnnConvPlan> plan;
};

CudnnConv::CudnnConv(const LibraryConvDesc& desc) {
  if (std::optional<std::string> why = cudnn_unavailable())
    throw UserError("cuDNN is not available: " + *why,
                    "cuDNN is optional: fuseblock's own conv strategies run without it (the store-once strategy "
                    "and the GPU tests' oracle need it)");
  check_desc(desc);
  const DeviceInfo& device = use_device();
  impl_ = std::make_unique<Impl>();
  impl_->plan = cudnn_conv_plan(desc, device, *cudnn_library(nullptr));
}

CudnnConv::~CudnnConv() = default;

size_t CudnnConv::workspace_bytes() const { return impl_->plan->workspace_bytes; }

const std::string& CudnnConv::engine() const { return impl_->plan->engine; }

void CudnnConv::run(uint64_t x, uint64_t w, uint64_t y, uint64_t workspace, CUstream_st* stream) const {
  use_device(impl_->plan->device);  // the plan's device current on this thread, whichever ran before
  run_cudnn_conv_plan(*impl_->plan, x, w, y, workspace, stream);
}

}  // namespace fuseblock::cuda
