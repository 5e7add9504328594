// fuseblock's C++ library: spec -> IR -> passes -> plan -> backend.
#pragma once
#include <functional>
#include <string>
#include <string_view>

#include "fuseblock/error.hpp"
#include "fuseblock/ir.hpp"
#include "fuseblock/params.hpp"
#include "fuseblock/plan.hpp"
#include "fuseblock/tensor.hpp"

namespace fuseblock {

// The embedded default block: KernelBench level 2, problem 83.
extern const char* const kDefaultSpec;

// Parses the block spec text format (docs/spec.md). Errors are UserErrors with line:col.
Block parse_spec(std::string_view text, const std::string& source_name = "<spec>");

struct LowerOptions {
  bool assume_finite = false;  // skip the guard: the caller promises finite, bounded input
  bool simplify = true;        // false keeps the exact pipeline (for tests and comparison)
};
// Runs the passes in order; `on_step(name, ir)` sees the IR after each one (explain, FUSEBLOCK_DUMP).
using StepObserver = std::function<void(const std::string& step, const Block& ir)>;
Plan lower(const Block& block, const LowerOptions& opts = {}, const StepObserver& on_step = {});

enum class Device { Auto, Cpu, Cuda };

struct RunOptions {
  Device device = Device::Auto;
  bool allow_tf32 = true;  // CUDA: TF32 matrix units, as PyTorch's cudnn.allow_tf32 default
};

// The device a request resolves to: Auto is Cuda where a usable GPU is found, else Cpu. Cuda when
// none is usable throws a UserError saying why. `why` (optional) gets the reason CUDA is not used.
Device resolve_device(Device requested, std::string* why = nullptr);
// The same for a block of that storage type: bf16 and f16 run on CUDA only through cuDNN (the
// store_once strategy), so without it Auto gives Cpu (`why` says so) and Cuda is a UserError.
Device resolve_device(Device requested, DType storage, std::string* why = nullptr);
// The same for a plan: a bf16/f16 plan runs on CUDA where store_once supports it on the device
// (cuDNN's conv, or the igemm engine where cuDNN cannot load), and the forms that run on the CPU
// only in this version (instance_norm, prelu, dropout before the chain's end,
// add_per_sample_channel) never do.
Device resolve_device(Device requested, const Plan& plan, std::string* why = nullptr);
const char* device_name(Device d);
// "auto", "cpu" or "cuda"; anything else is a UserError naming the choices.
Device parse_device(const std::string& name);

// Runs the plan on `x` (shape plan.pipeline.input_shape, and for a bf16 or f16 block that dtype,
// as are the parameters: check_params); returns the output, tagged with the block's dtype.
// A block with add_per_sample_channel needs the other overload (a UserError here names the shape).
Tensor run(const Plan& plan, const Params& params, const Tensor& x, const RunOptions& opts = {});
// The same with the block's per-(sample, channel) input: shape [N, C_out], in the block's storage
// type, added to the conv output before the norm. A block without add_per_sample_channel refuses it.
Tensor run(const Plan& plan, const Params& params, const Tensor& x, const Tensor& channel_add,
           const RunOptions& opts = {});
// The shape a block's per-(sample, channel) input must have: [N, C_out].
Shape channel_add_shape(const Plan& plan);

}  // namespace fuseblock
