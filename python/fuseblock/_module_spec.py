"""A block spec from PyTorch modules: nn.Conv1d/2d/3d, nn.GroupNorm or nn.InstanceNorm1d/2d/3d,
pointwise modules or functions and nn.Dropout anywhere after the norm. Shared by
fuseblock.torch.Block.from_modules and fuseblock.torch.fuse, so both mean the same by a module.

Each `*_problem` function says why a module cannot be part of a block (None when it can): fuse()
puts that sentence in its report, Block.from_modules raises it."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from ._pointwise import is_identity, pointwise_spec_line, spec_number

CONV_DIMS = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}
INSTANCE_NORM_DIMS = {nn.InstanceNorm1d: 1, nn.InstanceNorm2d: 2, nn.InstanceNorm3d: 3}
# The spec's input type names of the torch dtypes a block may have.
SPEC_DTYPE = {torch.float32: "f32", torch.bfloat16: "bf16", torch.float16: "f16"}


def _tuple(values: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(v)) for v in values) + ")"


# What a conv subclass may define and still compute what its base class does.
_HARMLESS_CLASS_ENTRIES = {"__init__", "__module__", "__qualname__", "__doc__", "__dict__", "__weakref__",
                           "__annotations__", "__firstlineno__", "__static_attributes__", "__orig_bases__",
                           "__parameters__", "__annotate_func__", "__annotations_cache__"}


def overridden_method(m) -> Optional[str]:
    """The first method (or property) that a subclass of nn.Conv1d/2d/3d defines other than
    __init__ (a `_conv_forward` that standardises the weight, a LoRA forward), as Class.name; None
    when it defines none. The class torch.nn.utils.parametrize makes (its tensor properties
    compute the weight, which the block reads) is not counted."""
    base = next((t for t in CONV_DIMS if isinstance(m, t)), None)
    if base is None:
        return None
    mro = type(m).__mro__
    for cls in mro[:mro.index(base)]:
        if cls is type(m) and torch.nn.utils.parametrize.is_parametrized(m) and cls.__name__.startswith("Parametrized"):
            continue
        for name, v in vars(cls).items():
            if name not in _HARMLESS_CLASS_ENTRIES and (callable(v) or hasattr(v, "__get__")):
                return f"{cls.__name__}.{name}"
    return None


def is_conv(m) -> bool:
    """Exactly nn.Conv1d/2d/3d, or a subclass that overrides nothing but __init__ (one with a
    forward or _conv_forward of its own, such as weight standardisation, may compute something
    else)."""
    base = next((t for t in CONV_DIMS if isinstance(m, t)), None)
    return base is not None and overridden_method(m) is None


def _conv_padding(conv) -> Optional[tuple]:
    """The conv's padding as numbers; 'same' (stride 1) where PyTorch pads both sides equally."""
    dims = CONV_DIMS[next(t for t in CONV_DIMS if isinstance(conv, t))]
    if conv.padding == "valid":
        return (0,) * dims
    if conv.padding == "same":
        total = [d * (k - 1) for k, d in zip(conv.kernel_size, conv.dilation)]
        return None if any(t % 2 for t in total) else tuple(t // 2 for t in total)
    return tuple(conv.padding)


def hooks_problem(m) -> Optional[str]:
    """Why `m` cannot run inside a fused block because of its hooks: a fused block does not call
    the module, so its forward hooks and pre-hooks would not run (torch.nn.utils.weight_norm
    computes the weight in a pre-hook; feature extractors read outputs in hooks)."""
    if getattr(m, "_forward_hooks", None) or getattr(m, "_forward_pre_hooks", None):
        return f"{type(m).__name__} has forward hooks or pre-hooks, which a fused block would not run"
    return None


def conv_problem(conv) -> Optional[str]:
    if not is_conv(conv):
        if isinstance(conv, nn.modules.conv._ConvNd):
            if getattr(conv, "transposed", False):
                return f"{type(conv).__name__} is a transposed convolution: not supported"
            method = overridden_method(conv)
            if method:
                return (f"{type(conv).__name__} is a conv subclass that overrides {method}: fuseblock cannot know "
                        "what it computes")
            return f"{type(conv).__name__} is not nn.Conv1d/2d/3d"
        return f"{type(conv).__name__} is not nn.Conv1d/2d/3d"
    if problem := hooks_problem(conv):
        return problem
    if conv.groups != 1:
        return f"conv has groups={conv.groups}: not supported (groups=1 only)"
    if conv.padding_mode != "zeros":
        return f"conv has padding_mode={conv.padding_mode!r}: not supported (zeros only)"
    if _conv_padding(conv) is None:
        return ("conv has padding='same' with an odd dilation * (kernel_size - 1) (PyTorch pads one side more): "
                "not supported")
    return None


def conv_dims(conv) -> int:
    return CONV_DIMS[next(t for t in CONV_DIMS if isinstance(conv, t))]


def conv_line(conv) -> str:
    problem = conv_problem(conv)
    if problem:
        raise ValueError(problem)
    return (f"conv{conv_dims(conv)}d out_channels={conv.out_channels} kernel_size={_tuple(conv.kernel_size)} "
            f"stride={_tuple(conv.stride)} padding={_tuple(_conv_padding(conv))} dilation={_tuple(conv.dilation)} "
            f"bias={'true' if conv.bias is not None else 'false'} groups=1 in_channels={conv.in_channels}")


def is_norm(m) -> bool:
    return type(m) is nn.GroupNorm or type(m) in INSTANCE_NORM_DIMS


def norm_problem(norm, conv) -> Optional[str]:
    """Why `norm` cannot follow `conv` in a block (None when it can)."""
    if problem := hooks_problem(norm):
        return problem
    if type(norm) is nn.GroupNorm:
        if norm.num_channels != conv.out_channels:
            return f"GroupNorm has {norm.num_channels} channels, the conv gives {conv.out_channels}"
        return None
    if type(norm) in INSTANCE_NORM_DIMS:
        if norm.track_running_stats:
            return f"{type(norm).__name__} tracks running statistics: not supported"
        if INSTANCE_NORM_DIMS[type(norm)] != conv_dims(conv):
            return f"{type(norm).__name__} after a {conv_dims(conv)}-d conv"
        if norm.num_features != conv.out_channels:
            return f"{type(norm).__name__} has {norm.num_features} features, the conv gives {conv.out_channels}"
        return None
    return f"{type(norm).__name__} is not nn.GroupNorm or nn.InstanceNorm1d/2d/3d"


def norm_line(norm) -> str:
    affine = "true" if norm.affine else "false"
    if type(norm) is nn.GroupNorm:
        return (f"group_norm num_groups={norm.num_groups} eps={spec_number(norm.eps)} affine={affine} "
                f"num_channels={norm.num_channels}")
    return f"instance_norm num_features={norm.num_features} eps={spec_number(norm.eps)} affine={affine}"


def placeholder_shape(conv) -> list:
    """A shape the conv accepts, for the spec's input line; the op plans for each input shape.
    One stride past the smallest, so the output has two elements a dim (instance_norm needs more
    than one)."""
    padding = _conv_padding(conv) or (0,) * conv_dims(conv)
    spatial = [max(1, d * (k - 1) + 1 - 2 * p) + s
               for k, d, p, s in zip(conv.kernel_size, conv.dilation, padding, conv.stride)]
    return [1, conv.in_channels] + spatial


def chain_line(op) -> str:
    """The spec line of one op after the norm: a pointwise op or nn.Dropout."""
    if type(op) is nn.Dropout:
        return f"dropout p={spec_number(op.p)} training=true"
    return pointwise_spec_line(op)


def block_spec(conv, norm, ops: Sequence, channel_add: bool = False, header: str = "") -> str:
    """The spec text of conv -> [add_per_sample_channel] -> [norm] -> ops. The input line is a
    placeholder (the conv weight's dtype and a shape it accepts; the op plans for each input's
    shape and dtype); dropout is `training=true`, the op's `training` argument switching it."""
    lines = [header] if header else []
    lines += ["input " + SPEC_DTYPE.get(conv.weight.dtype, "f32") + "[" +
              ", ".join(str(d) for d in placeholder_shape(conv)) + "]", conv_line(conv)]
    if channel_add:
        lines.append("add_per_sample_channel")
    if norm is not None:
        lines.append(norm_line(norm))
    lines += [chain_line(op) for op in ops if not is_identity(op)]  # nn.Identity changes nothing
    return "\n".join(lines) + "\n"


def prelu_weights(ops: Sequence) -> Optional[list]:
    ws = [op.weight for op in ops if isinstance(op, nn.PReLU)]
    return ws or None
