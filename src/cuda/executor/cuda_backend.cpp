// The CUDA backend on host tensors (cuda_backend.hpp).
#include "cuda/executor/cuda_backend.hpp"

#include <fmt/format.h>

#include "cuda/runtime/device_context.hpp"
#include "cuda/runtime/device_memory.hpp"
#include "cuda/runtime/driver_api.hpp"
#include "cuda/executor/executor.hpp"
#include "cuda/executor/storage_io.hpp"

namespace fuseblock::cuda {

bool available(std::string* why) {
  std::string reason;
  bool ok = driver_available(&reason) && nvrtc_available(&reason);
  if (ok) {
    try {
      const DeviceInfo& d = use_device();
      if (d.cc_major < 7) {
        reason = fmt::format("{} has compute capability {}.{}; fuseblock needs 7.0 or newer", d.name, d.cc_major,
                             d.cc_minor);
        ok = false;
      }
    } catch (const std::exception& e) {
      reason = e.what();
      ok = false;
    }
  }
  if (!ok && why) *why = reason;
  return ok;
}

void run(const Plan& plan, const Params& params, const Tensor& x, Tensor& y, const RunOptions& opts) {
  use_device();
  const Pipeline& p = plan.pipeline;
  FB_ASSERT(y.shape() == p.output_shape, "output tensor of the wrong shape");
  if (y.numel() == 0) return;
  std::shared_ptr<const Executor> ex = executor_for(plan, opts.allow_tf32);
  const LaunchProgram& prog = ex->program();
  // In the storage type (bf16/f16: 2 bytes an element), as the kernels read and write it.
  const DType d = p.types.storage;
  DeviceBuffer dx = to_device_as(x, d);
  DeviceBuffer dy(static_cast<size_t>(y.numel()) * static_cast<size_t>(dtype_info(d).bytes));
  DeviceBuffer dw, db, dg, dbeta;  // the parameters the program declares
  if (prog.find(BufferRole::ConvWeight)) dw = to_device_as(params.conv_weight, d);
  if (prog.find(BufferRole::ConvBias)) db = to_device_as(params.conv_bias, d);
  const DType dn = p.types.norm_param_type();  // the norm's parameters in their own type
  if (prog.find(BufferRole::NormWeight)) dg = to_device_as(params.norm_weight, dn);
  if (prog.find(BufferRole::NormBias)) dbeta = to_device_as(params.norm_bias, dn);
  DeviceBuffer scratch(ex->scratch_bytes());
  RunArgs args;
  args.seed = p.dropout.seed;
  args.offset = p.dropout.offset;
  DeviceTensors t{dx.ptr(), dy.ptr(), dw.ptr(), db.ptr(), dg.ptr(), dbeta.ptr()};
  ex->launch(t, scratch.ptr(), args, nullptr);
  synchronize();
  download_as(dy, d, y);
}

}  // namespace fuseblock::cuda
