"""fuseblock for PyTorch >= 2.4 (torch.library.custom_op). Import it explicitly,
`import fuseblock.torch`: plain `import fuseblock` needs no torch.

- `block_forward`: the custom op torch.ops.fuseblock.block_forward, with a fake implementation so
  torch.compile traces through it.
- `Block`: an nn.Module running a block, built from a spec or from existing modules
  (nn.Conv1d/2d/3d, nn.GroupNorm, pointwise modules or functions, nn.Dropout); it honours
  .train()/.eval() (dropout on/off, as nn.Dropout) and takes any input shape the block accepts.
- `ModelNew`: a drop-in for KernelBench level-2 problem 83 with the reference Model's
  state_dict keys (conv.weight, conv.bias, norm.weight, norm.bias).

The op has no backward: fuseblock runs forward passes (inference, benchmarks). CUDA tensors run
on their device pointers in PyTorch's current stream, with no copy (see block_forward).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

import fuseblock as _fb

from ._pointwise import Add, Clamp, Div, Maximum, Minimum, Mul, Sub, pointwise_spec_line, spec_number
from ._torch_op import block_forward, compiled_block, draw_dropout_seed

__all__ = ["Block", "ModelNew", "block_forward", "Minimum", "Maximum", "Clamp", "Add", "Sub", "Mul", "Div"]


class SpecParameters(nn.Module):
    """The weight and bias of one op of a spec-built Block, named as in PyTorch's modules, so the
    Block's state_dict keys are conv.weight, conv.bias, norm.weight, norm.bias."""

    def __init__(self, weight, bias):
        super().__init__()
        self.weight = None if weight is None else nn.Parameter(torch.from_numpy(weight))
        self.bias = None if bias is None else nn.Parameter(torch.from_numpy(bias))


def _tuple(values: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(v)) for v in values) + ")"


def _conv_line(conv: nn.Module) -> str:
    dims = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}.get(type(conv))
    if dims is None:
        raise TypeError(f"a Block starts with nn.Conv1d, nn.Conv2d or nn.Conv3d, got {type(conv).__name__}")
    if conv.padding_mode != "zeros":
        raise ValueError(f"padding_mode={conv.padding_mode!r} is not supported; fuseblock pads with zeros")
    padding = conv.padding
    if padding == "valid":
        padding = (0,) * dims
    elif isinstance(padding, str):
        raise ValueError(f"padding={padding!r} is not supported; give the padding as numbers")
    return (f"conv{dims}d out_channels={conv.out_channels} kernel_size={_tuple(conv.kernel_size)} "
            f"stride={_tuple(conv.stride)} padding={_tuple(padding)} dilation={_tuple(conv.dilation)} "
            f"bias={'true' if conv.bias is not None else 'false'} groups={conv.groups} "
            f"in_channels={conv.in_channels}")


def _placeholder_shape(conv: nn.Module) -> list:
    # A shape the conv accepts, for the spec's input line; forward() replans for each input shape.
    padding = (0,) * len(conv.kernel_size) if isinstance(conv.padding, str) else conv.padding
    spatial = [max(1, d * (k - 1) + 1 - 2 * p) for k, d, p in zip(conv.kernel_size, conv.dilation, padding)]
    return [1, conv.in_channels] + spatial


class Block(nn.Module):
    """A fuseblock block as an nn.Module.

    Block(spec): from spec text or a spec file (None: the default block, KernelBench level-2
      problem 83); its parameters are the spec's (`params file=` or PyTorch's default init from
      `params seed=`, drawn with fuseblock's generator) and become this module's parameters.
    Block.from_modules(conv, [norm], *pointwise, [dropout]): from PyTorch modules, which it keeps
      as submodules (so their parameters, and any later change to them, are the block's).

    The spec's input line only gives the default shape: forward() plans the block for each input
    shape it meets. The module's .training decides dropout, whatever the spec's `training=`.
    assume_finite: no run-time guard; the caller promises finite, bounded inputs.
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
        self._spec_text = planned.spec_text
        self._dropout_p = planned._compiled.dropout_p
        self.conv = SpecParameters(params["conv.weight"], params.get("conv.bias"))
        has_norm = "norm.weight" in params or "norm.bias" in params
        self.norm = SpecParameters(params.get("norm.weight"), params.get("norm.bias")) if has_norm else None

    @classmethod
    def from_modules(cls, *modules, assume_finite: bool = False) -> "Block":
        return cls(modules=modules, assume_finite=assume_finite)

    def _init_from_modules(self, modules: list) -> None:
        self._spec_text = None
        if not modules:
            raise ValueError("a Block needs at least a convolution")
        self.conv = modules.pop(0)
        _conv_line(self.conv)  # checks the type and options now rather than at the first forward
        self.norm = modules.pop(0) if modules and type(modules[0]) is nn.GroupNorm else None
        self.dropout = modules.pop() if modules and type(modules[-1]) is nn.Dropout else None
        for m in modules:
            if isinstance(m, (nn.GroupNorm, nn.Dropout)) or isinstance(m, nn.modules.conv._ConvNd):
                raise ValueError(f"{type(m).__name__} is out of place: a block is conv, [GroupNorm], "
                                 "pointwise ops, [Dropout] (and only nn.Dropout, not Dropout1d/2d/3d)")
            pointwise_spec_line(m)
        self._chain_ops = modules
        self.chain = nn.ModuleList([m for m in modules if isinstance(m, nn.Module)])
        self._last_spec = self.spec
        compiled_block(self._last_spec, True, self.assume_finite, None)  # errors now, not at the first forward

    @property
    def spec(self) -> str:
        """The block as spec text (from modules: generated from their current attributes)."""
        if self._spec_text is not None:
            return self._spec_text
        lines = ["# generated by fuseblock.torch.Block.from_modules; the input line is a placeholder,",
                 "# forward() plans the block for each input shape",
                 "input f32[" + ", ".join(str(d) for d in _placeholder_shape(self.conv)) + "]", _conv_line(self.conv)]
        if self.norm is not None:
            n = self.norm
            lines.append(f"group_norm num_groups={n.num_groups} eps={spec_number(n.eps)} "
                         f"affine={'true' if n.affine else 'false'} num_channels={n.num_channels}")
        lines += [pointwise_spec_line(op) for op in self._chain_ops]
        if self.dropout is not None:
            lines.append(f"dropout p={spec_number(self.dropout.p)} training=true")
        return "\n".join(lines) + "\n"

    @property
    def dropout_p(self) -> float:
        if self._spec_text is not None:
            return self._dropout_p
        return 0.0 if self.dropout is None else float(self.dropout.p)

    def explain(self, input_shape: Sequence[int]) -> str:
        """fuseblock's plan for this block and an input shape, in the current mode."""
        return compiled_block(self.spec, self.training, self.assume_finite, tuple(int(d) for d in input_shape)).explain()

    def _forward_spec(self) -> str:
        # Eager calls regenerate the spec from the modules (a changed dropout.p counts); under
        # torch.compile the text of the last eager call or of construction is a constant of the
        # graph, since string formatting of module attributes is no graph work.
        if self._spec_text is not None:
            return self._spec_text
        if not torch.compiler.is_compiling():
            self._last_spec = self.spec
        return self._last_spec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm_weight = self.norm.weight if self.norm is not None else None
        norm_bias = self.norm.bias if self.norm is not None else None
        seed = draw_dropout_seed(x.device) if self.training and self.dropout_p > 0 else None
        return block_forward(x.contiguous(), self.conv.weight, self.conv.bias, norm_weight, norm_bias, seed,
                             self._forward_spec(), self.training, self.assume_finite)


class ModelNew(Block):
    """KernelBench level-2 problem 83 (Conv3d -> GroupNorm -> min -> clamp -> Dropout) run by
    fuseblock. Same constructor and state_dict keys as the reference Model, and its submodules
    are made in the same order, so under one torch.manual_seed both start with the same weights."""

    def __init__(self, in_channels, out_channels, kernel_size, groups, min_value, max_value, dropout_p):
        conv = nn.Conv3d(in_channels, out_channels, kernel_size)
        norm = nn.GroupNorm(groups, out_channels)
        dropout = nn.Dropout(dropout_p)
        super().__init__(modules=[conv, norm, Minimum(min_value), Clamp(min=min_value, max=max_value), dropout])
