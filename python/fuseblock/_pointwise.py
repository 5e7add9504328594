"""Pointwise ops as nn.Modules with a scalar argument (torch.minimum(x, v), torch.clamp, x + v,
...), which PyTorch has no module for, and the translation of a pointwise module, function or
spec line into one line of a block spec. Each module computes exactly what its spec line means,
so a Block built from them runs in eager PyTorch too (that is the reference)."""
from __future__ import annotations

from typing import Callable, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn


def spec_number(v: float) -> str:
    """A float as the spec parser reads it, exactly: repr round-trips (and gives nan, inf, -inf)."""
    return repr(float(v))


class _ScalarOp(nn.Module):
    keyword = ""

    def __init__(self, other: float):
        super().__init__()
        self.other = float(other)

    def spec_line(self) -> str:
        return f"{self.keyword} {spec_number(self.other)}"

    def extra_repr(self) -> str:
        return spec_number(self.other)


class Minimum(_ScalarOp):
    """torch.minimum(x, other); NaN propagates."""
    keyword = "minimum"

    def forward(self, x):
        return torch.minimum(x, torch.tensor(self.other, dtype=x.dtype, device=x.device))


class Maximum(_ScalarOp):
    """torch.maximum(x, other); NaN propagates."""
    keyword = "maximum"

    def forward(self, x):
        return torch.maximum(x, torch.tensor(self.other, dtype=x.dtype, device=x.device))


class Add(_ScalarOp):
    keyword = "add"

    def forward(self, x):
        return x + self.other


class Sub(_ScalarOp):
    keyword = "sub"

    def forward(self, x):
        return x - self.other


class Mul(_ScalarOp):
    keyword = "mul"

    def forward(self, x):
        return x * self.other


class Div(_ScalarOp):
    keyword = "div"

    def forward(self, x):
        return x / self.other


class Clamp(nn.Module):
    """torch.clamp(x, min, max); either bound may be None, not both."""

    def __init__(self, min: Optional[float] = None, max: Optional[float] = None):
        super().__init__()
        if min is None and max is None:
            raise ValueError("Clamp needs min, max or both")
        self.min = None if min is None else float(min)
        self.max = None if max is None else float(max)

    def forward(self, x):
        return torch.clamp(x, min=self.min, max=self.max)

    def spec_line(self) -> str:
        parts = ["clamp"]
        if self.min is not None:
            parts.append(f"min={spec_number(self.min)}")
        if self.max is not None:
            parts.append(f"max={spec_number(self.max)}")
        return " ".join(parts)

    def extra_repr(self) -> str:
        return f"min={self.min}, max={self.max}"


# Functions with no argument, by identity: the spec keyword each one means.
_FUNCTIONS = {
    torch.relu: "relu", F.relu: "relu", torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid",
    torch.tanh: "tanh", F.tanh: "tanh", F.silu: "silu", F.gelu: "gelu", F.mish: "mish",
    F.hardswish: "hardswish",
}

# Functions with scalar arguments: the spec keyword and (argument name, PyTorch's default) after the input.
FUNCTIONS_WITH_ARGUMENTS = {
    F.leaky_relu: ("leaky_relu", (("negative_slope", 0.01),)),
    F.elu: ("elu", (("alpha", 1.0),)),
}


def _module_line(m: nn.Module) -> Optional[str]:
    if hasattr(m, "spec_line"):
        return m.spec_line()
    simple = {nn.ReLU: "relu", nn.SiLU: "silu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.Mish: "mish",
              nn.Hardswish: "hardswish"}
    if type(m) in simple:
        return simple[type(m)]
    if type(m) is nn.PReLU:  # its slopes are a parameter the op takes (prelu_weights)
        return f"prelu num_parameters={m.num_parameters}"
    if type(m) is nn.ReLU6:
        return "hardtanh min_val=0.0 max_val=6.0"
    if type(m) is nn.GELU:
        return f"gelu approximate={m.approximate}"
    if type(m) is nn.LeakyReLU:
        return f"leaky_relu negative_slope={spec_number(m.negative_slope)}"
    if type(m) is nn.Hardtanh:
        return f"hardtanh min_val={spec_number(m.min_val)} max_val={spec_number(m.max_val)}"
    if type(m) is nn.Softplus:
        return f"softplus beta={spec_number(m.beta)} threshold={spec_number(m.threshold)}"
    if type(m) is nn.ELU:
        return f"elu alpha={spec_number(m.alpha)}"
    if _is_monai_mish(m):  # x * tanh(softplus(x)), as nn.Mish; matched by name so monai is not imported
        return "mish"
    return None


def _is_monai_mish(m) -> bool:
    t = type(m)
    return t.__qualname__ == "Mish" and t.__module__ == "monai.networks.blocks.activation"


def is_identity(m) -> bool:
    """nn.Identity, which a chain passes over: it has no spec line and changes nothing."""
    return type(m) is nn.Identity


PointwiseLike = Union[nn.Module, str, Callable]


def pointwise_spec_line(op: PointwiseLike) -> str:
    """The spec line of a pointwise module (nn.ReLU, nn.GELU, ..., Minimum, Clamp), a function
    (torch.relu, F.silu, ...) or a spec line given as text ("minimum 0.5")."""
    if isinstance(op, str):
        return op.strip()
    if isinstance(op, nn.Module):
        line = _module_line(op)
        if line is None:
            raise TypeError(f"{type(op).__name__} is not a pointwise op fuseblock knows; use one of nn.ReLU, "
                            "nn.ReLU6, nn.PReLU, nn.SiLU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.Mish, nn.Hardswish, nn.LeakyReLU, "
                            "nn.Hardtanh, nn.Softplus, nn.ELU, or fuseblock.torch.Minimum/Maximum/Clamp/Add/Sub/Mul/Div")
        return line
    if op in _FUNCTIONS:
        return _FUNCTIONS[op]
    raise TypeError(f"{op!r} is not a pointwise op fuseblock knows (give a module, a known torch function "
                    "or a spec line such as 'minimum 0.5')")
