// A block's host tensors on the device (device_block.hpp).
#include "cuda/executor/device_block.hpp"

#include "cuda/executor/storage_io.hpp"
#include "fuseblock/error.hpp"

namespace fuseblock::cuda {

DeviceBlock::DeviceBlock(const Plan& plan, const LaunchProgram* program, const Params& params, const Tensor& x,
                         size_t scratch_bytes, const Tensor* channel_add)
    : storage_(plan.pipeline.types.storage),
      x_(to_device_as(x, storage_)),
      y_(static_cast<size_t>(numel(plan.pipeline.output_shape)) * static_cast<size_t>(dtype_info(storage_).bytes)),
      scratch_(scratch_bytes) {
  // Only what the program reads (a guarded fill run declares no parameter); an empty tensor
  // allocates nothing.
  auto wanted = [&](const BufferRef& r) { return !program || program->find(r); };
  if (wanted(BufferRole::ConvWeight)) weight_ = to_device_as(params.conv_weight, storage_);
  if (wanted(BufferRole::ConvBias)) bias_ = to_device_as(params.conv_bias, storage_);
  const DType norm_type = plan.pipeline.types.norm_param_type();  // the norm's parameters in their own type
  if (wanted(BufferRole::NormWeight)) gamma_ = to_device_as(params.norm_weight, norm_type);
  if (wanted(BufferRole::NormBias)) beta_ = to_device_as(params.norm_bias, norm_type);
  prelu_.resize(params.prelu_weight.size());
  for (size_t k = 0; k < params.prelu_weight.size(); ++k)
    if (wanted({BufferRole::PreluWeight, static_cast<int>(k)}))
      prelu_[k] = to_device_as(params.prelu_weight[k], storage_);
  FB_ASSERT(!plan.pipeline.channel_add() || channel_add, "a block with a per-(sample, channel) input run without it");
  if (channel_add && wanted(BufferRole::ChannelAdd)) channel_add_ = to_device_as(*channel_add, storage_);
}

DeviceTensors DeviceBlock::tensors(size_t scratch_bytes) {
  if (scratch_.bytes() < scratch_bytes) scratch_ = DeviceBuffer(scratch_bytes);
  DeviceTensors t;
  t.bind(BufferRole::Input, x_.ptr()).bind(BufferRole::Output, y_.ptr());
  t.bind(BufferRole::ConvWeight, weight_.ptr()).bind(BufferRole::ConvBias, bias_.ptr());
  t.bind(BufferRole::NormWeight, gamma_.ptr()).bind(BufferRole::NormBias, beta_.ptr());
  for (size_t k = 0; k < prelu_.size(); ++k)
    if (prelu_[k].ptr()) t.bind(BufferRole::PreluWeight, prelu_[k].ptr(), static_cast<int>(k));
  if (channel_add_.ptr()) t.bind(BufferRole::ChannelAdd, channel_add_.ptr());
  t.scratch = scratch_.ptr();
  return t;
}

}  // namespace fuseblock::cuda
