// PLACEHOLDER, to be replaced by branch `cudnn`'s implementation at merge: it lets the store-once
// strategy link and be selected and explained before cuDNN support lands. Constructing a
// CudnnConv throws, so a store-once run fails with a clear reason instead of running anything.
#include "cuda/runtime/cudnn_conv.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "fuseblock/error.hpp"

namespace fuseblock::cuda {

struct CudnnConv::Impl {
  std::string engine;
};

std::string LibraryConvDesc::key() const {
  return fmt::format("dims {} n {} cin {} cout {} in {} out {} k {} s {} p {} d {} dtype {} tf32 {} cl {}", dims, n,
                     c_in, c_out, fmt::join(in, "x"), fmt::join(out, "x"), fmt::join(kernel, "x"),
                     fmt::join(stride, "x"), fmt::join(padding, "x"), fmt::join(dilation, "x"), dtype_name(dtype),
                     allow_tf32, channels_last);
}

std::optional<std::string> cudnn_unavailable() { return std::string("cuDNN support is being built"); }

CudnnConv::CudnnConv(const LibraryConvDesc&) { throw UserError("cuDNN support is being built", "use --device cpu"); }
CudnnConv::~CudnnConv() = default;
size_t CudnnConv::workspace_bytes() const { return 0; }
void CudnnConv::run(uint64_t, uint64_t, uint64_t, uint64_t, CUstream_st*) const {}
const std::string& CudnnConv::engine() const { return impl_->engine; }

}  // namespace fuseblock::cuda
