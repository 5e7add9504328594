"""fuseblock.torch.fuse(model): finds conv -> [per-(sample, channel) add] -> GroupNorm/InstanceNorm
-> pointwise chain (dropout anywhere in it) in a model and runs each through fuseblock's op.

The model is walked from the leaves up. A plain nn.Sequential is scanned for runs of such
modules (_fuse_sequential); any other module is traced with torch.fx (_fuse_fx), which also sees
blocks whose ops its forward calls in order with other code between them. A module whose blocks
were fused is a leaf to its parents' traces. Where a trace fails, the Sequentials below the
module were scanned already, and the report says so."""
from __future__ import annotations

from torch import nn

from ._fuse_fx import TracedPlan, fuse_traced
from ._fuse_report import FuseReport
from ._fuse_sequential import SequentialPlan, fuse_sequential, is_flattened, is_plain_sequential
from ._fused_block import FusedBlock
from ._plan_guard import GLOBAL_HOOKS, global_hooks_registered
from ._script import prepare_for_script


def _conv_below(m: nn.Module) -> bool:
    return any(isinstance(c, nn.modules.conv._ConvNd) for c in m.modules())


def _visit(m: nn.Module, path: str, report: FuseReport, in_sequential: bool = False) -> None:
    if isinstance(m, (FusedBlock, nn.modules.conv._ConvNd)) or "forward" in m.__dict__ or not _conv_below(m):
        return
    sequential = is_plain_sequential(m)
    for name, child in m.named_children():
        _visit(child, f"{path}.{name}" if path else name, report, sequential)
    if sequential:
        # A plain Sequential inside another is scanned as part of the outer one's flat list, so
        # that a run may span both (MONAI's Convolution(conv, ADN(N, D, A))); one with hooks is
        # not flattened (its hooks must run around its own forward): it is scanned alone.
        if not (in_sequential and is_flattened(m)):
            fuse_sequential(m, path, report)
    elif not type(m).__module__.startswith("torch.nn"):  # ModuleList and the like have no forward to trace
        fuse_traced(m, path, report)


def fuse(model: nn.Module) -> FuseReport:
    """Fuses every block fuseblock can run in `model`, in place, and returns a FuseReport.

    A block is conv (nn.Conv1d/2d/3d, groups=1) -> [+ a per-(sample, channel) tensor, as
    diffusers' conv1(h) + temb[:, :, None, None]] -> nn.GroupNorm or nn.InstanceNorm1d/2d/3d
    (no running statistics) -> pointwise modules or functions (SiLU, ReLU, GELU, PReLU, ...) and
    at most one nn.Dropout anywhere among them; each value in it used only by the next op.

    Nothing is removed or renamed: the model keeps its modules, parameters and state_dict keys
    (checkpoints load both ways), and .train()/.eval() and .to(dtype or device) work as before.
    The modules whose forward now runs fused blocks get an instance attribute `forward`; a
    FusedBlock runs the modules themselves, unfused, while autograd records through it (the
    op has no backward) and, with a warning, where x's device cannot run the block's form.

    Every call of a fused forward first checks that the model is still what it planned for
    (_plan_guard: the modules on its path, their hooks, the fused modules' attributes and
    parameters, global module hooks); after a change it plans again, or runs unfused, and says
    why (a warning once, a note in the report). torch.jit.script of a fused model scripts the
    model unfused (see _script)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"fuseblock.torch.fuse takes an nn.Module, not {type(model).__name__}")
    report = FuseReport()
    if global_hooks_registered():
        report.add_note(f"nothing was fused: {GLOBAL_HOOKS}; call fuse() once they are removed")
        return report
    earlier = _fused_earlier(model)  # before this call installs plans of its own
    _visit(model, "", report)
    fused = {e.block.names[0] for e in report.fused}
    if earlier:
        report.add_note(f"{len(earlier)} block(s) were fused by an earlier fuse() and run fused as before: "
                        + ", ".join(sorted(earlier)))
    for path, m in model.named_modules():
        if isinstance(m, nn.modules.conv._ConvNd) and path not in fused | earlier and path not in report.left:
            report.add_left(path, "no forward that calls it was traced or scanned")
    if report.fused:
        prepare_for_script(model)
    return report


def _fused_earlier(model: nn.Module) -> set:
    """The conv paths of the blocks an earlier fuse() installed (their modules' forward is a plan)."""
    names = set()
    for m in model.modules():
        plan = m.__dict__.get("forward")
        if isinstance(plan, SequentialPlan):
            names |= {s.names[0] for s in plan.steps if isinstance(s, FusedBlock)}
        elif isinstance(plan, TracedPlan):
            names |= {b.names[0] for b in plan.blocks.values()}
    return names
