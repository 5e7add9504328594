// run(): checks the input and parameters against the plan, then hands the work to a backend.
#include <fmt/format.h>

#include "cpu/cpu_backend.hpp"
#include "cuda/executor/cuda_backend.hpp"
#include "cuda/executor/executor.hpp"
#include "cuda/runtime/cudnn_conv.hpp"
#include "cuda/strategies/strategy.hpp"
#include "fuseblock/fuseblock.hpp"
#include "plan/cpu_only_forms.hpp"

namespace fuseblock {

Device resolve_device(Device requested, std::string* why) {
  std::string reason;
  if (requested == Device::Cpu) return Device::Cpu;
  const bool ok = cuda::available(&reason);
  if (why) *why = reason;
  if (requested == Device::Cuda && !ok)
    throw UserError("CUDA is not available: " + reason, "run with --device cpu or auto (Python: device=\"cpu\" or \"auto\")");
  return ok ? Device::Cuda : Device::Cpu;
}

Device parse_device(const std::string& name) {
  if (name == "auto") return Device::Auto;
  if (name == "cpu") return Device::Cpu;
  if (name == "cuda") return Device::Cuda;
  throw UserError(fmt::format("unknown device '{}'", name), "use auto, cpu or cuda");
}

Device resolve_device(Device requested, DType storage, std::string* why) {
  if (storage == DType::F32 || requested == Device::Cpu) return resolve_device(requested, why);
  // bf16 and f16 run on CUDA only through store_once, whose conv is cuDNN's.
  std::string reason;
  if (resolve_device(Device::Auto, &reason) == Device::Cuda) {
    const std::optional<std::string> missing = cuda::cudnn_unavailable();
    if (!missing) return Device::Cuda;
    reason = *missing;
  }
  reason = fmt::format("{} storage runs on CUDA only through cuDNN's conv (store_once), and here: {}",
                       dtype_name(storage), reason);
  if (requested == Device::Cuda) throw UserError(reason, "use --device cpu (Python: device=\"cpu\")");
  if (why) *why = reason;
  return Device::Cpu;
}

Device resolve_device(Device requested, const Plan& plan, std::string* why) {
  if (const std::optional<std::string> reason = cpu_only_forms(plan)) {
    if (requested == Device::Cuda) throw UserError(*reason, "use --device cpu or auto (Python: device=\"cpu\" or \"auto\")");
    if (why) *why = *reason;
    return Device::Cpu;
  }
  if (!needs_store_once(plan)) return resolve_device(requested, why);
  // A half block, or one with prelu or the per-(sample, channel) input, runs on CUDA where
  // store_once supports it on this device: with cuDNN's conv, or with the igemm engine where cuDNN
  // cannot load (unsupported() says when neither can).
  const Device d = resolve_device(requested, why);
  if (d != Device::Cuda) return d;
  const cuda::ConvStrategy& st = *cuda::find_strategy("store_once");
  const std::optional<std::string> no = st.unsupported({&plan, true}, cuda::current_device_limits());
  if (!no) return d;
  const std::string what = plan.pipeline.types.storage != DType::F32
                               ? fmt::format("{} storage", dtype_name(plan.pipeline.types.storage))
                               : std::string("a block with prelu or add_per_sample_channel");
  const std::string reason = fmt::format("{} runs on CUDA only through store_once, which cannot run this block: {}",
                                         what, *no);
  if (requested == Device::Cuda) throw UserError(reason, "use --device cpu or auto (Python: device=\"cpu\" or \"auto\")");
  if (why) *why = reason;
  return Device::Cpu;
}

const char* device_name(Device d) { return d == Device::Cuda ? "cuda" : d == Device::Cpu ? "cpu" : "auto"; }

Shape channel_add_shape(const Plan& plan) {
  return {plan.pipeline.output_shape.at(0), plan.pipeline.output_shape.at(1)};
}

namespace {

void check_channel_add(const Plan& plan, const Tensor* add) {
  const Pipeline& p = plan.pipeline;
  const std::string shape = shape_str(channel_add_shape(plan));
  if (!p.channel_add() && add)
    throw UserError("a per-(sample, channel) input was given, but the block has no add_per_sample_channel",
                    fmt::format("add the line 'add_per_sample_channel' after the conv to add a {} input, or leave it out", shape));
  if (!p.channel_add()) return;
  if (!add)
    throw UserError(fmt::format("the block adds a per-(sample, channel) input of shape {} (add_per_sample_channel), "
                                "but none was given",
                                shape),
                    "give it: run(plan, params, x, channel_add), --channel-add FILE, or channel_add=array");
  if (add->shape() != channel_add_shape(plan))
    throw UserError(fmt::format("the per-(sample, channel) input has shape {}, but the block expects {}",
                                shape_str(add->shape()), shape),
                    "one value per (sample, conv output channel), as temb[:, :, None, None] broadcasts");
  const DType storage = p.types.storage;
  if (storage != DType::F32 && add->dtype() != storage)
    throw UserError(fmt::format("the per-(sample, channel) input holds {} values, but the block's storage is {}",
                                dtype_name(add->dtype()), dtype_name(storage)),
                    fmt::format("give a {} tensor (round_to converts one)", dtype_name(storage)));
}

Tensor run_checked(const Plan& plan, const Params& params, const Tensor& x, const Tensor* channel_add,
                   const RunOptions& opts) {
  const Pipeline& p = plan.pipeline;
  if (x.shape() != p.input_shape)
    throw UserError(fmt::format("the input tensor has shape {}, but the block expects {}", shape_str(x.shape()),
                                shape_str(p.input_shape)),
                    "give an input of the block's shape, or change the spec's input line");
  const DType storage = p.types.storage;
  if (storage != DType::F32 && x.dtype() != storage)
    throw UserError(fmt::format("the input tensor holds {} values, but the block's input is {}", dtype_name(x.dtype()),
                                dtype_name(storage)),
                    fmt::format("give a {} input (round_to(DType::{}) converts one), or change the spec's input line",
                                dtype_name(storage), dtype_info(storage).safetensors_name));
  check_params(p, params);
  check_channel_add(plan, channel_add);
  if (plan.guard) check_params(plan.fallback, params);
  Tensor y(p.output_shape);
  if (resolve_device(opts.device, plan) == Device::Cuda)
    cuda::run(plan, params, x, y, opts, channel_add);
  else
    cpu::run(plan, params, x, y, channel_add);
  y.round_to(storage);  // only tags it: every backend writes values of the storage type
  return y;
}

}  // namespace

Tensor run(const Plan& plan, const Params& params, const Tensor& x, const RunOptions& opts) {
  return run_checked(plan, params, x, nullptr, opts);
}

Tensor run(const Plan& plan, const Params& params, const Tensor& x, const Tensor& channel_add, const RunOptions& opts) {
  return run_checked(plan, params, x, &channel_add, opts);
}

}  // namespace fuseblock
