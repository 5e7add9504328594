// CompiledBlock: a parsed and lowered block with everything the Python package asks of it
// (explain, shapes, parameters, run). Plain C++ on the public API, no nanobind, so the binding
// (module.cpp) stays a thin layer of conversions.
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "cuda/executor/executor.hpp"
#include "fuseblock/fuseblock.hpp"

namespace fuseblock::python {

struct CompileOptions {
  bool assume_finite = false;
  std::optional<bool> training;     // overrides the spec's `dropout training=` (nn.Module.train/eval)
  std::optional<Shape> input_shape;  // overrides the spec's input line (a torch module takes any N)
  std::optional<DType> storage;      // overrides the input line's element type (the torch op plans
                                     // for its tensor's dtype, whatever the spec text says)
  std::optional<DType> norm_params;  // overrides the norm's param_dtype (the torch op plans for the
                                     // norm parameters' dtype: float32 ones after a bf16 conv)
};

// A dropout mask other than the spec's: torch draws a fresh seed for every forward call.
struct DropoutStream {
  uint64_t seed = 0;
  uint64_t offset = 0;
};

class CompiledBlock {
 public:
  // `folder` is where a relative `params file=` in the spec is looked up ("" = current folder).
  CompiledBlock(const std::string& text, const std::string& source_name, const std::string& folder,
                const CompileOptions& opts);

  const Plan& plan() const { return plan_; }
  const Shape& input_shape() const { return plan_.pipeline.input_shape; }
  const Shape& output_shape() const { return plan_.pipeline.output_shape; }
  // Why no CUDA strategy can run this block's form (prelu, instance_norm, ...), or nothing; asked
  // without a GPU, so that a caller can choose the CPU or its own fallback up front.
  std::optional<std::string> cuda_refusal() const;
  // The element type of the norm's affine parameters (the storage type unless kept in float32).
  DType norm_param_dtype() const { return param_pipeline().types.norm_param_type(); }
  // The dropout probability the spec gives (0 when it has no dropout), whatever the mode.
  double dropout_p() const;
  // The IR after every pass, then the plan with its guard and kernels (as `fuseblock explain`).
  std::string explain() const;

  // The parameters the spec names: its `params file=` if any, else PyTorch's default init from
  // its `params seed=` (0 when absent).
  Params spec_params() const;
  Params init_params(uint64_t seed) const;
  // Keys conv.weight, conv.bias, norm.weight, norm.bias; an unknown key is a UserError.
  Params params_from(std::map<std::string, Tensor> tensors) const;
  std::map<std::string, Tensor> params_to_map(const Params& p) const;
  // params_from's checks on shapes alone (for parameters that live on a GPU).
  void check_param_shapes(const std::map<std::string, Shape>& shapes) const;

  // Thread-safe: the plan is only read. `channel_add`: the block's per-(sample, channel) input
  // ([N, C_out], float32 holding the block's values, rounded as x is), or nullptr.
  Tensor run(const Params& params, const Tensor& x, Device device, bool allow_tf32,
             const std::optional<DropoutStream>& dropout, const Tensor* channel_add = nullptr) const;

  // The CUDA path on device pointers (compiled_block_cuda.cpp): the caller owns every buffer,
  // x and y 16-byte aligned, and `stream` orders the work; nothing is copied or synchronised.
  // The executor is built (NVRTC, cubin cache) on first use and kept, per device and TF32
  // setting. `device` is the CUDA ordinal of the tensors (cuda:N): its primary context is used.
  size_t cuda_scratch_bytes(bool allow_tf32, int device) const;
  // Enqueues the block on device pointers in the block's storage type, scratch among them. A bound
  // dropout state is the (seed, offset) the caller drew on the device for this call (read by the
  // kernels when they run, so a captured graph reads each replay's draw); else `dropout` (or the
  // spec's seed and offset) is used. A guarded block's bound is computed by the program on the device.
  void launch_cuda(const cuda::DeviceTensors& tensors, uint64_t stream, bool allow_tf32,
                   const std::optional<DropoutStream>& dropout, int device) const;

 private:
  // The pipeline whose parameter shapes are checked: the exact fallback when there is a guard
  // (the fill path reads no parameter, but a failing sample runs the exact pipeline).
  const Pipeline& param_pipeline() const { return plan_.guard ? plan_.fallback : plan_.pipeline; }

  std::shared_ptr<const cuda::Executor> executor(bool allow_tf32, int device) const;

  Block block_;
  LowerOptions lower_options_;
  Plan plan_;
  std::string folder_;
  mutable std::mutex executor_mu_;
  mutable std::map<std::pair<int, bool>, std::shared_ptr<const cuda::Executor>> executors_;  // (device, tf32)
};


}  // namespace fuseblock::python
