// CompiledBlock's CUDA path on device pointers: what fuseblock.torch uses for CUDA tensors, on
// PyTorch's buffers and current stream, with no copy.
#include <fmt/format.h>

#include "cuda/codegen/emit_epilogue.hpp"
#include "cuda/runtime/device_context.hpp"
#include "fuseblock/error.hpp"
#include "python/compiled_block.hpp"

namespace fuseblock::python {

std::shared_ptr<const cuda::Executor> CompiledBlock::executor(bool allow_tf32, int device) const {
  // executor_for() keys its process-wide cache by the device and the program text; keeping the
  // result here spares every call that emission. The device's context is current on return.
  cuda::use_device(device);
  std::lock_guard<std::mutex> lock(executor_mu_);
  auto& slot = executors_[{device, allow_tf32}];
  if (!slot) slot = cuda::executor_for(plan_, allow_tf32);
  return slot;
}

size_t CompiledBlock::cuda_scratch_bytes(bool allow_tf32, int device) const {
  return executor(allow_tf32, device)->scratch_bytes();
}

void CompiledBlock::launch_cuda(const cuda::DeviceTensors& tensors, uint64_t stream, bool allow_tf32,
                                const std::optional<DropoutStream>& dropout, int device) const {
  // Device memory holds the block's storage type, the norm's parameters their own (float32 where
  // the block keeps them so; the torch op checked the tensors' dtypes); a strategy that cannot run
  // them was refused by selection when the executor was built.
  // The device's primary context, made current on this thread (PyTorch's context too).
  std::shared_ptr<const cuda::Executor> ex = executor(allow_tf32, device);
  const bool has_add = tensors.get(cuda::BufferRole::ChannelAdd) != 0;
  if (has_add != plan_.pipeline.channel_add())
    throw UserError(has_add ? "a per-(sample, channel) input was given, but the block has no add_per_sample_channel"
                            : "the block adds a per-(sample, channel) input (add_per_sample_channel), but none was given",
                    "pass channel_add (shape [N, C_out]) exactly when the block's spec has add_per_sample_channel");
  cuda::RunArgs args;
  // The spec's seeds are those of the one dropout that draws a mask, wherever it stands; a stream
  // of the caller's is used as is (run_host: the first drawing dropout takes the offset itself).
  const Pipeline& p = plan_.pipeline;
  args.seed = dropout ? dropout->seed : cuda::drawn_dropout(p).seed;
  args.offset = dropout ? dropout->offset : cuda::drawn_dropout(p).offset;
  args.advance_dropout_state = false;  // the caller draws a new state for every call
  ex->launch(tensors, args, reinterpret_cast<CUstream_st*>(stream));
}

}  // namespace fuseblock::python
