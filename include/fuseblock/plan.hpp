// The plan: what a backend runs. lower() (src/lower.cpp) makes it from a Block.
//
// A Pipeline is the canonical form of a block that every backend executes:
//   [conv -> [group_norm]] -> chain of pointwise ops -> dropout
// On the fill path the chain was folded to a constant under the guard: no conv, no norm, and the
// chain starts with a Fill op. The guard and the exact fallback pipeline then travel with it.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "fuseblock/ir.hpp"

namespace fuseblock {

// A pipeline's element types, separated as cuDNN frontend separates io, intermediate and compute
// types. `storage` is what memory holds: input, parameters and output, and every value PyTorch
// eager materialises in between (conv output, norm output, each pointwise result), so a backend
// rounds to it at each of those points. `compute` is what each op computes in before that rounding;
// `accumulation` is what sums use (conv, GroupNorm statistics, which the CPU takes further, to
// double). PyTorch computes bf16 and f16 ops in float32 (its "opmath" type), so both are F32 here.
struct ElementTypes {
  DType storage = DType::F32;
  DType compute = DType::F32;
  DType accumulation = DType::F32;
  // GroupNorm's affine parameters when they are kept in another type than storage: float32 in a
  // bf16/f16 block (GroupNormAttrs::param_dtype). nullopt: storage, as every other parameter.
  std::optional<DType> norm_params;
  DType norm_param_type() const { return norm_params.value_or(storage); }
  bool rounds() const { return storage != compute; }  // whether op results are rounded to storage
};

struct Pipeline {
  ElementTypes types;
  Shape input_shape;                   // [N, C_in, spatial...]
  Shape output_shape;                  // [N, C_out, spatial_out...]
  bool computes_conv = true;           // false on the fill path
  ConvAttrs conv;                      // valid when computes_conv (in_channels filled in)
  std::optional<GroupNormAttrs> norm;  // absent when the block has none (or on the fill path)
  std::vector<Op> chain;               // pointwise ops after the norm, in order, and any dropout
                                       // before the last op (kind Dropout: x * mask * scale there)
  DropoutAttrs dropout;                // the dropout that is the block's last op; p = 0 or
                                       // training = false when there is none
  bool fill_path() const { return !computes_conv; }
  // The block adds a per-(sample, channel) run-time input after the conv (ConvAttrs::channel_add).
  bool channel_add() const { return conv.channel_add; }
};

// The run-time condition under which the fill path equals the exact block, checked per sample.
// The analysis assumed |conv output| <= conv_output_bound; that holds when every input element
// of the sample is finite with |x| <= guard_input_bound(params, conv_output_bound) and every
// parameter is finite. Samples that fail run the exact fallback pipeline.
struct Guard {
  double conv_output_bound = 1e12;
  std::string why;  // the proof in words, for explain
};

// One kernel (CUDA) or loop nest (CPU) of the plan, as explain and verify show it.
struct KernelDesc {
  std::string name;
  std::vector<std::string> reads;   // tensor names: "input", "conv.weight", "stats", ...
  std::vector<std::string> writes;  // only "output" and O(N*G) scratch ("stats", "guard_flags")
  std::string note;
};

struct Plan {
  Block exact;                      // IR after infer_shapes + infer_ranges (no assumption)
  Block simplified;                 // IR after all passes
  Pipeline pipeline;                // what runs
  std::optional<Guard> guard;       // present when `pipeline` relies on one
  Pipeline fallback;                // the exact pipeline for guard failures (valid when guard)
  bool assume_finite = false;       // guard skipped on the user's word
  std::vector<KernelDesc> kernels;
};

std::string dump(const Pipeline& p);
std::string dump(const Plan& p);  // the plan as explain prints it

}  // namespace fuseblock
