"""fuse() on nn.Sequential: runs of conv -> norm -> pointwise/dropout modules among a Sequential's
modules (plain nested Sequentials flattened into it, as MONAI's Convolution(conv, ADN(N, D, A))).
A Sequential with runs gets a forward of its own (an instance attribute) that calls each run's
FusedBlock in place of its modules; the modules themselves stay where they are."""
from __future__ import annotations

import torch
from torch import nn

from . import _module_spec as ms
from ._fuse_report import FuseReport, FusedEntry
from ._fused_block import FusedBlock
from ._plan_guard import PlanGuard
from ._pointwise import is_identity, pointwise_spec_line
from ._stale_plan import StalePlanPolicy


def is_plain_sequential(m) -> bool:
    return isinstance(m, nn.Sequential) and type(m).forward is nn.Sequential.forward and "forward" not in m.__dict__


def is_flattened(m) -> bool:
    """A plain Sequential without hooks: its modules join its parent Sequential's flat list (a
    hooked one is called as itself, so that its hooks run)."""
    return is_plain_sequential(m) and not ms.hooks_problem(m)


def _flatten(seq: nn.Sequential, path: str, containers: list) -> list:
    # _modules, as Sequential.forward: named_children() lists a module held twice only once.
    containers.append((path, seq))
    out = []
    for name, child in seq._modules.items():
        p = f"{path}.{name}" if path else name
        out += _flatten(child, p, containers) if is_flattened(child) else [(p, child)]
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
    if is_plain_sequential(norm):
        return 0, f"it is followed by {norm_path} (Sequential), which has hooks: not flattened, so that they run"
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
    """A Sequential's forward with its runs fused: its steps are modules and FusedBlocks. Each call
    first checks its guard (_plan_guard); a stale plan is made again (StalePlanPolicy)."""

    def __init__(self, seq: nn.Sequential, path: str, report: FuseReport, steps: list, guard: PlanGuard,
                 policy: StalePlanPolicy):
        self.seq, self.path, self.report = seq, path, report
        self.steps, self.guard, self.policy = steps, guard, policy

    def __call__(self, x):
        why = self.guard.stale()
        if why is not None:
            return self._stale(x, why)
        for step in self.steps:
            x = step(x)
        return x

    def _stale(self, x, why):
        unfused = lambda: nn.Sequential.forward(self.seq, x)  # noqa: E731
        if not self.policy.replans(why, torch.compiler.is_compiling()):
            return unfused()
        self.seq.__dict__.pop("forward", None)
        fuse_sequential(self.seq, self.path, self.report, self.policy)
        return self.seq.forward(x)  # the new plan, or the class forward: hooks ran already

    @property
    def __code__(self):  # torch.export reads the root module's forward.__code__
        return type(self).__call__.__code__


def fuse_sequential(seq: nn.Sequential, path: str, report: FuseReport, policy: StalePlanPolicy = None) -> None:
    containers = []
    flat = _flatten(seq, path, containers)
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
        blocks = [s for s in steps if isinstance(s, FusedBlock)]
        modules = [(name, m) for b in blocks for name, m in b.modules_by_name()]
        guard = PlanGuard(containers, modules, root=seq)
        policy = policy or StalePlanPolicy(path, report)
        seq.forward = SequentialPlan(seq, path, report, steps, guard, policy)  # nn.Module.__call__ calls it
