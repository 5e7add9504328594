// Which parameter tensors a pipeline takes and their shapes: the one table that init_params,
// load_params and check_params all read.
#pragma once
#include <string>
#include <vector>

#include "fuseblock/params.hpp"

namespace fuseblock::detail {

struct ParamSlot {
  enum class Need {
    Required,  // the pipeline reads it: it must be there with exactly `shape`
    Absent,    // the block has no such parameter (conv bias=false): it must be empty
    Optional,  // not read by this pipeline (no norm, or affine=false): empty or `shape`
  };
  std::string name;  // KernelBench key: "conv.weight", ..., or a prelu's key (prelu_weight_key)
  Shape shape;
  Need need;
  Tensor Params::*member = nullptr;  // the tensor, or for a prelu slot nullptr and ...
  int prelu_index = -1;              // ... its index in Params::prelu_weight
  // The element type it holds: the storage type, or the norm's own (ElementTypes::norm_params).
  DType dtype = DType::F32;

  const Tensor& of(const Params& p) const;
  Tensor& of(Params& p) const;  // grows prelu_weight to hold the slot
};

// conv.weight [C_out, C_in, k...]; conv.bias [C_out]; norm.weight and norm.bias [C_out]; one
// slot per prelu op of p.chain, [num_parameters]. Each slot's dtype is p.types.storage, but the norm
// slots' is p.types.norm_param_type().
// Always from p.conv, which holds the conv attributes on the fill path too. GroupNorm parameters
// are Optional when the pipeline does not read them (no norm, or affine=false): on the fill path
// the norm was folded away, but the exact fallback (which runs with the same Params) may need them.
// Backends must therefore decide "affine" from p.norm->affine, never from the tensors being empty.
std::vector<ParamSlot> param_slots(const Pipeline& p);

}  // namespace fuseblock::detail
