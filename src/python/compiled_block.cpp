#include "python/compiled_block.hpp"

#include <filesystem>
#include <sstream>

#include <fmt/format.h>

#include "params/param_slots.hpp"
#include "plan/cpu_only_forms.hpp"

namespace fuseblock::python {

namespace {

// The parameter names (as in a KernelBench model's state_dict, and each prelu's weight) are the
// slots of the block's exact pipeline: params/param_slots.hpp.

void override_training(Block& b, bool training) {
  for (Op& op : b.ops)
    if (op.kind == OpKind::Dropout) op.dropout.training = training;
}

}  // namespace

CompiledBlock::CompiledBlock(const std::string& text, const std::string& source_name, const std::string& folder,
                             const CompileOptions& opts)
    : block_(parse_spec(text, source_name)), folder_(folder) {
  if (opts.training) override_training(block_, *opts.training);
  if (opts.input_shape) block_.ops.front().shape = *opts.input_shape;
  if (opts.storage) block_.ops.front().dtype = *opts.storage;  // infer_shapes carries it to every op
  if (opts.norm_params)
    for (Op& op : block_.ops)
      if (op.kind == OpKind::GroupNorm) op.norm.param_dtype = *opts.norm_params;  // infer_shapes checks the pair
  lower_options_.assume_finite = opts.assume_finite;
  plan_ = lower(block_, lower_options_);
}

std::optional<std::string> CompiledBlock::cuda_refusal() const { return cpu_only_forms(plan_); }

double CompiledBlock::dropout_p() const {
  const Op* d = block_.find(OpKind::Dropout);
  return d ? d->dropout.p : 0.0;
}

std::string CompiledBlock::explain() const {
  std::ostringstream out;
  lower(block_, lower_options_, [&](const std::string& step, const Block& ir) {
    out << "-- after " << step << ":\n" << dump(ir);
  });
  out << "\n" << dump(plan_);
  return out.str();
}

Params CompiledBlock::spec_params() const {
  const ParamSource& src = block_.params;
  if (src.safetensors.empty()) return init_params(src.init_seed);
  std::filesystem::path file(src.safetensors);
  if (file.is_relative() && !folder_.empty()) file = std::filesystem::path(folder_) / file;
  return load_params(param_pipeline(), file.string());
}

Params CompiledBlock::init_params(uint64_t seed) const { return fuseblock::init_params(param_pipeline(), seed); }

Params CompiledBlock::params_from(std::map<std::string, Tensor> tensors) const {
  Params p;
  const std::vector<detail::ParamSlot> slots = detail::param_slots(param_pipeline());
  std::string names;
  for (const detail::ParamSlot& s : slots) {
    names += (names.empty() ? "" : ", ") + s.name;
    auto it = tensors.find(s.name);
    if (it == tensors.end()) continue;
    s.of(p) = std::move(it->second);
    tensors.erase(it);
  }
  if (!tensors.empty())
    throw UserError(fmt::format("unknown parameter '{}'", tensors.begin()->first), "the parameters are " + names);
  // Arrays arrive as float32: in a bf16 or f16 block they are rounded to its type (the norm's to
  // its own, float32 where it is kept so), as module.to(dtype) rounds a module's parameters (f16
  // arrays convert exactly).
  for (const detail::ParamSlot& s : slots) s.of(p).round_to(s.dtype);
  check_params(param_pipeline(), p);
  return p;
}

void CompiledBlock::check_param_shapes(const std::map<std::string, Shape>& shapes) const {
  std::map<std::string, Tensor> stand_ins;  // parameters are small: zeros of each shape
  for (const auto& [name, shape] : shapes) stand_ins[name] = Tensor(shape, 0.0f);
  params_from(std::move(stand_ins));
}

std::map<std::string, Tensor> CompiledBlock::params_to_map(const Params& p) const {
  std::map<std::string, Tensor> out;
  for (const detail::ParamSlot& s : detail::param_slots(param_pipeline()))
    if (!s.of(p).empty()) out[s.name] = s.of(p);
  return out;
}

Tensor CompiledBlock::run(const Params& params, const Tensor& x, Device device, bool allow_tf32,
                          const std::optional<DropoutStream>& dropout, const Tensor* channel_add) const {
  RunOptions ro;
  ro.device = device;
  ro.allow_tf32 = allow_tf32;
  // The input arrives as float32 (the Python layer converts float16 arrays exactly): rounded to
  // the block's type, as torch's .to(dtype) would round it.
  const bool rounds = plan_.pipeline.types.rounds();
  const Tensor rounded = rounds ? rounded_to(x, plan_.pipeline.types.storage) : Tensor();
  const Tensor& in = rounds ? rounded : x;
  const Tensor add = channel_add && rounds ? rounded_to(*channel_add, plan_.pipeline.types.storage) : Tensor();
  const Tensor* add_in = channel_add && rounds ? &add : channel_add;
  auto run_plan = [&](const Plan& plan) {
    return add_in ? fuseblock::run(plan, params, in, *add_in, ro) : fuseblock::run(plan, params, in, ro);
  };
  if (!dropout) return run_plan(plan_);
  // Another mask than the spec's: the same plan with the stream's seed and offset, for every
  // dropout (inside the chain too). The k-th dropout that draws a mask (identities do not count)
  // uses offset + k, so several draw independent masks, as PyTorch's do, and a block's one drawing
  // dropout uses the offset itself, wherever it stands: what the CUDA kernels read from a device
  // dropout state.
  Plan plan = plan_;
  for (Pipeline* p : {&plan.pipeline, &plan.fallback}) {
    uint64_t k = 0;
    for (Op& op : p->chain)
      if (op.kind == OpKind::Dropout) {
        op.dropout.seed = dropout->seed, op.dropout.offset = dropout->offset + k;
        k += !op.dropout.is_identity();
      }
    p->dropout.seed = dropout->seed;
    p->dropout.offset = dropout->offset + k;
  }
  return run_plan(plan);
}

}  // namespace fuseblock::python
