// The CUDA backend on host tensors (cuda_backend.hpp).
#include "cuda/executor/cuda_backend.hpp"

#include <fmt/format.h>

#include "cuda/codegen/emit_epilogue.hpp"
#include "cuda/runtime/device_context.hpp"
#include "cuda/runtime/device_memory.hpp"
#include "cuda/runtime/driver_api.hpp"
#include "cuda/executor/device_block.hpp"
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

void run(const Plan& plan, const Params& params, const Tensor& x, Tensor& y, const RunOptions& opts,
         const Tensor* channel_add) {
  use_device();
  const Pipeline& p = plan.pipeline;
  FB_ASSERT(y.shape() == p.output_shape, "output tensor of the wrong shape");
  if (y.numel() == 0) return;
  std::shared_ptr<const Executor> ex = executor_for(plan, opts.allow_tf32);
  DeviceBlock block(plan, &ex->program(), params, x, ex->scratch_bytes(), channel_add);
  RunArgs args;
  args.seed = drawn_dropout(p).seed;  // the one dropout that draws a mask, wherever it stands
  args.offset = drawn_dropout(p).offset;
  ex->launch(block.tensors(ex->scratch_bytes()), args, nullptr);
  synchronize();
  download_as(block.output(), block.storage(), y);
}

}  // namespace fuseblock::cuda
