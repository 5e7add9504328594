"""fuse() on nn.Sequential: runs of conv -> norm -> pointwise/dropout modules among a Sequential's
modules (plain nested Sequentials flattened into it, as MONAI's Convolution(conv, ADN(N, D, A))).
A Sequential with runs gets a forward of its own (an instance attribute) that calls each run's
FusedBlock in place of its modules; the modules themselves stay where they are."""
from __future__ import annotations

from torch import nn

from . import _module_spec as ms
from ._fuse_report import FuseReport, FusedEntry
from ._fused_block import FusedBlock
from ._pointwise import is_identity, pointwise_spec_line


def is_plain_sequential(m) -> bool:
    return isinstance(m, nn.Sequential) and type(m).forward is nn.Sequential.forward and "forward" not in m.__dict__


def _flatten(seq: nn.Sequential, path: str) -> list:
    # _modules, as Sequential.forward: named_children() lists a module held twice only once.
    out = []
    for name, child in seq._modules.items():
        p = f"{path}.{name}" if path else name
        out += _flatten(child, p) if is_plain_sequential(child) else [(p, child)]
    return out


def _is_pointwise(m) -> bool:
    if ms.hooks_problem(m):
        return False
    if is_identity(m):
        return True
    try:
        pointwise_spec_line(m)
        return True
    except TypeError:
        return False


def _run_at(flat: list, i: int):
    """(the run's length, (its FusedBlock, where its chain stops)) from the conv at flat[i], or
    (0, why not)."""
    path, conv = flat[i]
    problem = ms.conv_problem(conv)
    if problem:
        return 0, problem
    if i + 1 == len(flat):
        return 0, "nothing follows it in its Sequential"
    norm_path, norm = flat[i + 1]
    if not ms.is_norm(norm):
        return 0, f"it is followed by {norm_path} ({type(norm).__name__}), not a GroupNorm or InstanceNorm"
    problem = ms.norm_problem(norm, conv)
    if problem:
        return 0, problem
    j, chain, names, stop = i + 2, [], [path, norm_path], ""
    while j < len(flat):
        p, m = flat[j]
        is_dropout = type(m) is nn.Dropout and not ms.hooks_problem(m)
        if (is_dropout and any(type(s) is nn.Dropout for s, _ in chain)) or not (is_dropout or _is_pointwise(m)):
            stop = f"the chain ends before {p} ({type(m).__name__})"  # one dropout a block
            break
        chain.append((m, m))
        names.append(p)
        j += 1
    try:
        return j - i, (FusedBlock(conv, norm, chain, False, names), stop)
    except (ValueError, TypeError) as e:  # fuseblock.UserError is a ValueError
        return 0, f"fuseblock refuses the block: {str(e).splitlines()[0]}"


class SequentialPlan:
    """A Sequential's forward with its runs fused: its steps are modules and FusedBlocks."""

    def __init__(self, steps: list):
        self.steps = steps

    def __call__(self, x):
        for step in self.steps:
            x = step(x)
        return x

    @property
    def __code__(self):  # torch.export reads the root module's forward.__code__
        return type(self).__call__.__code__


def fuse_sequential(seq: nn.Sequential, path: str, report: FuseReport) -> None:
    flat = _flatten(seq, path)
    steps, i, fused = [], 0, False
    while i < len(flat):
        p, m = flat[i]
        if isinstance(m, nn.modules.conv._ConvNd):
            n, result = _run_at(flat, i)
            if n:
                block, stop = result
                steps.append(block)
                report.add_fused(FusedEntry(path, "Sequential", block, stop), p)
                fused, i = True, i + n
                continue
            report.add_left(p, result)
        steps.append(m)
        i += 1
    if fused:
        seq.forward = SequentialPlan(steps)  # an instance attribute: nn.Module.__call__ calls it
