"""Which dtypes a block's tensors may have, as eager PyTorch accepts them (torch 2.15, CPU and CUDA):

- the conv's weight and bias, a per-(sample, channel) input and PReLU slopes have the input's dtype
  (F.conv2d, `+` of a bf16 and a float32 tensor and F.prelu refuse or promote otherwise);
- the norm's weight and bias have one dtype: the input's, or float32 after a bfloat16/float16 conv
  ("norms kept in float32"). F.group_norm then computes in float32 and rounds its output once to the
  input's dtype, which the block's `param_dtype=f32` does. The reverse (a float32 input with 16-bit
  norm parameters) and bf16 with f16 are refused by PyTorch ("mixed dtype (CPU): expect parameter to
  have scalar type of Float"), so fuseblock refuses them too.

Shared by the torch op (which raises TypeError on a combination it cannot run) and FusedBlock and
fuse() (which leave such a block to its modules, so a model never fails where eager runs)."""
from __future__ import annotations

from typing import Optional

import torch

# The block's storage type for each tensor dtype the op takes (the spec's `input` names).
DTYPES = {torch.float32: "f32", torch.bfloat16: "bf16", torch.float16: "f16"}
_HALF = (torch.bfloat16, torch.float16)


def norm_param_dtype(x_dtype: torch.dtype, norm_dtype: Optional[torch.dtype]) -> Optional[str]:
    """The block's param_dtype for norm parameters of norm_dtype after an x_dtype input: "f32" when
    they are kept in float32 in a 16-bit block, else None (the storage type)."""
    return "f32" if norm_dtype == torch.float32 and x_dtype in _HALF else None


def dtype_problem(x_dtype: torch.dtype, same_as_x: dict, norm: dict, x_name: str = "x") -> Optional[str]:
    """Why a block cannot run tensors of these dtypes (None when it can). same_as_x: name -> tensor
    that must have x's dtype (conv parameters, extra inputs); norm: name -> the norm's parameters.
    None values are skipped; x_name names what has x_dtype in the sentence."""
    if x_dtype not in DTYPES:
        return f"{x_name} is {x_dtype}; fuseblock runs float32, bfloat16 or float16 tensors"
    for name, t in same_as_x.items():
        if t is not None and t.dtype != x_dtype:
            return (f"{x_name} is {x_dtype} but {name} is {t.dtype}: they must have one dtype (convert the module "
                    f"with .to({x_dtype}) or the input with .to({t.dtype}))")
    present = {name: t.dtype for name, t in norm.items() if t is not None}
    kinds = set(present.values())
    if len(kinds) > 1:
        return f"the norm's parameters have different dtypes ({present}): give them one dtype"
    if kinds and (d := kinds.pop()) != x_dtype and norm_param_dtype(x_dtype, d) is None:
        name = next(iter(present))
        return (f"{x_name} is {x_dtype} but {name} is {d}: norm parameters have the input's dtype, or float32 after a "
                "bfloat16/float16 conv (PyTorch refuses other mixes too)")
    return None


def module_dtype_problem(conv, norm) -> Optional[str]:
    """dtype_problem for a conv -> norm pair of modules, with the conv weight's dtype as the input's
    (fuse() checks the model as it is; a later .to(dtype) is checked again at each call)."""
    dtype = conv.weight.dtype
    if dtype not in DTYPES:
        return None  # float64 and the like: FusedBlock runs the modules (eager's dtype) at each call
    return dtype_problem(dtype, {"conv.bias": conv.bias},
                         {"norm.weight": getattr(norm, "weight", None), "norm.bias": getattr(norm, "bias", None)},
                         x_name="conv.weight")
