"""torch.jit.script of a fused model: TorchScript compiles a module's class forward and cannot
compile the plans fuse() installs as instance attributes. torch.jit.script asks a module for
__prepare_scriptable__() first, so fuse() gives the model (and each module holding a plan) one
that returns an unfused deep copy: the scripted model computes what the model did before fuse(),
with PyTorch's own modules, and a warning says so. The fused model itself is left as it is.
(torch.compile(fuse(model)) and torch.export keep the fused blocks.)"""
from __future__ import annotations

import copy
import warnings

from torch import nn

_PLAN_ATTRIBUTES = ("forward", "_fuseblock_blocks", "_fuseblock_constants", "__prepare_scriptable__")


class _UnfusedForScript:
    """The __prepare_scriptable__ of a fused module (an object, not a closure, so that a deep copy
    of the model gets one that copies the copy)."""

    def __init__(self, module: nn.Module):
        self.module = module

    def __call__(self) -> nn.Module:
        warnings.warn("fuseblock: torch.jit.script runs the model unfused (TorchScript cannot compile what "
                      "fuseblock.torch.fuse() installs); use torch.compile(fuse(model)) to run it fused", stacklevel=3)
        return unfused_copy(self.module)


def unfused_copy(model: nn.Module) -> nn.Module:
    """A deep copy of `model` with every plan fuse() installed removed."""
    clone = copy.deepcopy(model)
    for m in clone.modules():
        for name in _PLAN_ATTRIBUTES:
            m.__dict__.pop(name, None)
    return clone


def prepare_for_script(model: nn.Module) -> None:
    for m in model.modules():
        if m is model or "forward" in m.__dict__:
            m.__dict__["__prepare_scriptable__"] = _UnfusedForScript(m)
