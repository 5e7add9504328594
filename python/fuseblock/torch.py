"""fuseblock for PyTorch >= 2.4 (torch.library.custom_op). Import it explicitly,
`import fuseblock.torch`: plain `import fuseblock` needs no torch.

- `block_forward`: the custom op torch.ops.fuseblock.block_forward, with a fake implementation so
  torch.compile traces through it.
- `Block`: an nn.Module running a block, built from a spec or from existing modules
  (nn.Conv1d/2d/3d, nn.GroupNorm, pointwise modules or functions, nn.Dropout); it honours
  .train()/.eval() (dropout on/off, as nn.Dropout) and takes any input shape the block accepts.
- `ModelNew`: a drop-in for KernelBench level-2 problem 83 with the reference Model's
  state_dict keys (conv.weight, conv.bias, norm.weight, norm.bias).
- `fuse(model)`: finds the blocks in a model (nn.Sequential runs and torch.fx traces of forwards)
  and runs each fused, on the model's own parameters; returns a FuseReport.

The op has no backward: fuseblock runs forward passes (inference, benchmarks). CUDA tensors run
on their device pointers in PyTorch's current stream, with no copy (see block_forward).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

import fuseblock as _fb

from . import _module_spec as ms
from ._pointwise import Add, Clamp, Div, Maximum, Minimum, Mul, Sub, pointwise_spec_line
from ._torch_op import block_forward, compiled_block, draw_dropout_seed, forward_eager, runs_direct
from ._fuse import fuse
from ._fuse_report import FuseReport
from ._fused_block import FusedBlock

__all__ = ["Block", "ModelNew", "fuse", "FuseReport", "FusedBlock", "block_forward", "Minimum", "Maximum", "Clamp", "Add", "Sub", "Mul", "Div"]


class SpecParameters(nn.Module):
    """The weight and bias of one op of a spec-built Block, named as in PyTorch's modules, so the
    Block's state_dict keys are conv.weight, conv.bias, norm.weight, norm.bias."""

    def __init__(self, weight, bias, dtype=torch.float32):
        super().__init__()
        # numpy has no bfloat16: a bf16 block's arrays hold bf16 values in float32 (exact to convert)
        as_param = lambda a: None if a is None else nn.Parameter(torch.from_numpy(a).to(dtype))  # noqa: E731
        self.weight = as_param(weight)
        self.bias = as_param(bias)


class Block(nn.Module):
    """A fuseblock block as an nn.Module.

    Block(spec): from spec text or a spec file (None: the default block, KernelBench level-2
      problem 83); its parameters are the spec's (`params file=` or PyTorch's default init from
      `params seed=`, drawn with fuseblock's generator) and become this module's parameters, in
      the spec's input type (float32, bfloat16 or float16).
    Block.from_modules(conv, [norm], *chain): from PyTorch modules, which it keeps as submodules
      (so their parameters, and any later change to them, are the block's). norm: nn.GroupNorm or
      nn.InstanceNorm1d/2d/3d; chain: pointwise modules or functions (nn.PReLU included) and at
      most one nn.Dropout, anywhere in it (MONAI's norm -> dropout -> activation order).

    forward(x, channel_add=None) plans the block for each input shape and dtype it meets (float32,
    bfloat16 or float16; the parameters must have x's dtype: `.to(torch.bfloat16)` the module).
    channel_add: [N, C_out], added to the conv output before the norm (diffusers' time embedding,
    conv(x) + temb[:, :, None, None]). The module's .training decides dropout, whatever the
    spec's `training=`. assume_finite: no run-time guard; the caller promises finite, bounded inputs.
    """

    def __init__(self, spec=None, *, assume_finite: bool = False, modules: Optional[Sequence] = None):
        super().__init__()
        self.assume_finite = assume_finite
        if modules is not None:
            if spec is not None:
                raise ValueError("give a spec or modules, not both")
            self._init_from_modules(list(modules))
            return
        planned = _fb.Block(spec, assume_finite=assume_finite)
        params = planned.params()
        dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[planned.dtype]
        self._spec_text = planned.spec_text
        self._dropout_p = planned._compiled.dropout_p
        self.conv = SpecParameters(params["conv.weight"], params.get("conv.bias"), dtype)
        has_norm = "norm.weight" in params or "norm.bias" in params
        self.norm = SpecParameters(params.get("norm.weight"), params.get("norm.bias"), dtype) if has_norm else None
        # prelu.weight, or prelu.0.weight, prelu.1.weight, ... in spec order
        prelu = sorted((k for k in params if k.startswith("prelu")), key=lambda k: int(k.split(".")[1]) if k.count(".") == 2 else 0)
        self.prelu = nn.ParameterList([nn.Parameter(torch.from_numpy(params[k]).to(dtype)) for k in prelu])

    @classmethod
    def from_modules(cls, *modules, assume_finite: bool = False) -> "Block":
        return cls(modules=modules, assume_finite=assume_finite)

    def _init_from_modules(self, modules: list) -> None:
        self._spec_text = None
        if not modules:
            raise ValueError("a Block needs at least a convolution")
        self.conv = modules.pop(0)
        ms.conv_line(self.conv)  # checks the type and options now rather than at the first forward
        self.norm = modules.pop(0) if modules and ms.is_norm(modules[0]) else None
        if self.norm is not None and ms.norm_problem(self.norm, self.conv):
            raise ValueError(ms.norm_problem(self.norm, self.conv))
        dropouts = [m for m in modules if type(m) is nn.Dropout]
        if len(dropouts) > 1:
            raise ValueError("a Block has at most one nn.Dropout")
        self.dropout = dropouts[0] if dropouts else None
        for m in modules:
            if type(m) is nn.Dropout:
                continue
            if isinstance(m, (nn.GroupNorm, nn.Dropout)) or ms.is_norm(m) or isinstance(m, nn.modules.conv._ConvNd):
                raise ValueError(f"{type(m).__name__} is out of place: a block is conv, [GroupNorm or InstanceNorm], "
                                 "pointwise ops and at most one Dropout (nn.Dropout, not Dropout1d/2d/3d)")
            pointwise_spec_line(m)
        self._chain_ops = modules
        self.chain = nn.ModuleList([m for m in modules if isinstance(m, nn.Module) and type(m) is not nn.Dropout])
        self._last_spec = {}
        compiled_block(self.spec, True, self.assume_finite, None)  # errors now, not at the first forward

    def _spec_for(self, channel_add: bool) -> str:
        if self._spec_text is not None:
            return self._spec_text
        header = ("# generated by fuseblock.torch.Block.from_modules; the input line is a placeholder,\n"
                  "# forward() plans the block for each input shape and dtype")
        return ms.block_spec(self.conv, self.norm, self._chain_ops, channel_add=channel_add, header=header)

    @property
    def spec(self) -> str:
        """The block as spec text (from modules: generated from their current attributes)."""
        return self._spec_for(False)

    @property
    def dropout_p(self) -> float:
        if self._spec_text is not None:
            return self._dropout_p
        return 0.0 if self.dropout is None else float(self.dropout.p)

    def explain(self, input_shape: Sequence[int]) -> str:
        """fuseblock's plan for this block and an input shape, in the current mode."""
        shape = tuple(_fb._int_in_range(f"input_shape[{i}]", d, 0, _fb._INT64_MAX) for i, d in enumerate(input_shape))
        return compiled_block(self.spec, self.training, self.assume_finite, shape).explain()

    def _forward_spec(self, channel_add: bool) -> str:
        # The spec text is generated from the modules once per (channel add, dropout p): a changed
        # dropout.p counts, as with nn.Dropout; other attributes (padding, eps, slopes' count) are
        # read when first used, since regenerating the text on every call costs more host time
        # than a small block's kernels. Under torch.compile the text is a constant of the graph.
        if self._spec_text is not None:
            return self._spec_text
        key = (channel_add, self.dropout_p)
        spec = self._last_spec.get(key)
        if spec is None:
            if len(self._last_spec) > 16:
                self._last_spec.clear()
            spec = self._last_spec[key] = self._spec_for(channel_add)
        return spec

    def _needs_op(self, x, channel_add=None) -> bool:
        """Whether the call must go through the custom op: under torch.compile, torch.jit.trace or
        another tracer (x not a plain tensor: FakeTensor, fx Proxy), or while autograd records a
        graph through x, channel_add or the parameters (the op's backward then says there is none,
        rather than gradients going missing). Otherwise Block.forward runs the op's body directly
        (_torch_op.forward_eager)."""
        if not runs_direct(x):
            return True
        if torch.is_grad_enabled():
            return (x.requires_grad or (channel_add is not None and channel_add.requires_grad)
                    or any(p.requires_grad for p in self.parameters()))
        return False

    def forward(self, x: torch.Tensor, channel_add: Optional[torch.Tensor] = None) -> torch.Tensor:
        for name, t in (("x", x), ("channel_add", channel_add)):
            if not isinstance(t, (torch.Tensor, torch.fx.Proxy)) and (t is not None or name == "x"):
                raise TypeError(f"fuseblock.torch.Block: {name} must be a torch.Tensor, not {type(t).__name__}")
        norm_weight = self.norm.weight if self.norm is not None else None
        norm_bias = self.norm.bias if self.norm is not None else None
        if self._spec_text is not None:
            prelu = list(self.prelu) or None
        else:
            prelu = ms.prelu_weights(self._chain_ops)
        seed = draw_dropout_seed(x.device) if self.training and self.dropout_p > 0 else None
        run = block_forward if self._needs_op(x, channel_add) else forward_eager
        return run(x.contiguous(), self.conv.weight, self.conv.bias, norm_weight, norm_bias, seed,
                   self._forward_spec(channel_add is not None), self.training, self.assume_finite,
                   None if channel_add is None else channel_add.contiguous(), prelu)


class ModelNew(Block):
    """KernelBench level-2 problem 83 (Conv3d -> GroupNorm -> min -> clamp -> Dropout) run by
    fuseblock. Same constructor and state_dict keys as the reference Model, and its submodules
    are made in the same order, so under one torch.manual_seed both start with the same weights."""

    def __init__(self, in_channels, out_channels, kernel_size, groups, min_value, max_value, dropout_p):
        conv = nn.Conv3d(in_channels, out_channels, kernel_size)
        norm = nn.GroupNorm(groups, out_channels)
        dropout = nn.Dropout(dropout_p)
        super().__init__(modules=[conv, norm, Minimum(min_value), Clamp(min=min_value, max=max_value), dropout])
