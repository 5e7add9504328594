// run(): checks the input and parameters against the plan, then hands the work to a backend.
#include <fmt/format.h>

#include "cpu/cpu_backend.hpp"
#include "cuda/executor/cuda_backend.hpp"
#include "fuseblock/fuseblock.hpp"
#include "plan/cpu_only_forms.hpp"

namespace fuseblock {

Device resolve_device(Device requested, std::string* why) {
  std::string reason;
  if (requested == Device::Cpu) return Device::Cpu;
  const bool ok = cuda::available(&reason);
  if (why) *why = reason;
  if (requested == Device::Cuda && !ok)
    throw UserError("CUDA is not available: " + reason, "run with --device cpu (or --device auto)");
  return ok ? Device::Cuda : Device::Cpu;
}

Device parse_device(const std::string& name) {
  if (name == "auto") return Device::Auto;
  if (name == "cpu") return Device::Cpu;
  if (name == "cuda") return Device::Cuda;
  throw UserError(fmt::format("unknown device '{}'", name), "use auto, cpu or cuda");
}

Device resolve_device(Device requested, DType storage, std::string* why) {
  if (storage == DType::F32) return resolve_device(requested, why);
  // The CUDA kernels are float32 only for now; the CPU backend is the reference for bf16 and f16.
  const std::string reason = fmt::format("{} storage runs on the CPU backend only in this version", dtype_name(storage));
  if (requested == Device::Cuda) throw UserError(reason, "use --device cpu");
  if (why) *why = reason;
  return Device::Cpu;
}

Device resolve_device(Device requested, const Plan& plan, std::string* why) {
  if (const std::optional<std::string> reason = cpu_only_forms(plan)) {
    if (requested == Device::Cuda) throw UserError(*reason, "use --device cpu (or --device auto)");
    if (why) *why = *reason;
    return Device::Cpu;
  }
  return resolve_device(requested, plan.pipeline.types.storage, why);
}

const char* device_name(Device d) { return d == Device::Cuda ? "cuda" : d == Device::Cpu ? "cpu" : "auto"; }

Tensor run(const Plan& plan, const Params& params, const Tensor& x, const RunOptions& opts) {
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
  if (plan.guard) check_params(plan.fallback, params);
  Tensor y(p.output_shape);
  if (resolve_device(opts.device, plan) == Device::Cuda)
    cuda::run(plan, params, x, y, opts);
  else
    cpu::run(plan, params, x, y);
  y.round_to(storage);  // only tags it: every backend writes values of the storage type
  return y;
}

}  // namespace fuseblock
