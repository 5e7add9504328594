"""PlanGuard: what a fused plan (SequentialPlan, TracedPlan) relied on when it was made, checked
at every call of the plan.

A plan calls FusedBlocks in place of modules, so it goes stale when the model changes under it:
a module on its path replaced, added or removed (`model.block[2] = nn.Tanh()`, a LoRA wrapper
put in place of a conv, an append to a fused Sequential), a forward hook or pre-hook registered
on a fused module or on a container the plan flattened or traced through (those modules are no
longer called, so their hooks would not run), an attribute of a fused module changed (padding,
eps, a slope) or one of its parameters set to None or from None (a Parameter put in place of
another is simply used: the blocks read parameters at every call). Global module hooks
(torch.nn.modules.module.register_module_forward_hook) do not make the plan stale, but while
any is registered the plan's modules must be called: the owner runs them unfused.

The check is one generated function of `is` comparisons and truthiness tests against the values
seen at planning time (bound as its defaults), so a call costs about a microsecond and Dynamo
traces it (it reads module attributes and hook dicts, which Dynamo guards on itself: a change
recompiles, and the recompiled check sees it). `why()` is the slow path that names what changed.
"""
from __future__ import annotations

from typing import Optional

from torch import nn
from torch.nn.modules import module as _module_globals

# A fused module's attributes that its FusedBlock reads per call rather than once (Dropout's p).
_READ_PER_CALL = {nn.Dropout: ("p",)}
_SCALARS = (int, float, bool, str, type(None))


def global_hooks_registered() -> bool:
    return bool(_module_globals._global_forward_hooks or _module_globals._global_forward_pre_hooks)


GLOBAL_HOOKS = ("global module forward hooks are registered (torch.nn.modules.module.register_module_forward_hook "
                "or _pre_hook), which the fused modules would skip")


def _plain_value(v) -> bool:
    return isinstance(v, _SCALARS) or (isinstance(v, tuple) and all(isinstance(e, _SCALARS) for e in v))


def _read_attributes(m: nn.Module) -> list:
    """The public plain attributes of `m` (padding, eps, negative_slope, ...), which the spec read."""
    skip = {"training", *_READ_PER_CALL.get(type(m), ())}
    return [k for k, v in vars(m).items() if not k.startswith("_") and k not in skip and _plain_value(v)]


class PlanGuard:
    """Built from the containers a plan covers (their children must stay the same objects; those
    not at the plan's root must stay without hooks) and the modules its blocks fused."""

    def __init__(self, containers: list, fused: list, root: Optional[nn.Module] = None):
        self._values: dict = {}
        self._probes: list = []  # (what it means when false, expression)
        for path, c in containers:
            name = self._bind(c)
            children = list(c._modules.items())
            same = [f"len({name}._modules) == {len(children)}"]
            for key, child in children:
                same.append(f"{name}._modules.get({key!r}) is {self._bind(child)}")
            self._probes.append((f"the modules of {path or '<model>'} were replaced, added or removed",
                                 " and ".join(same)))
            if c is not root:
                self._hooks(path, name)
        for path, m in fused:
            name = self._bind(m)
            self._hooks(path, name)
            for attr in _read_attributes(m):
                self._probes.append((f"{path}.{attr} changed", f"{name}.{attr} is {self._bind(getattr(m, attr))} "
                                     f"or {name}.{attr} == {self._bind(getattr(m, attr))}"))
            # The block reads the parameters at every call (a Parameter put in place of another is
            # used), but whether one is None (conv bias=False) is in its spec. (Identity would also
            # break under torch.export, which puts its own tensors in the modules while it traces.)
            for key, p in m._parameters.items():
                self._probes.append((f"{path}.{key} became {'a tensor' if p is None else 'None'}",
                                     f"({name}._parameters.get({key!r}) is None) is {p is None}"))
        self.fresh = self._function(" and ".join(f"({e})" for _, e in self._probes) or "True")
        self._checks = [(what, self._function(e)) for what, e in self._probes]  # each probe alone, for why()

    def _function(self, expr: str):
        args = ", ".join(f"{k}={k}" for k in self._values)
        scope = dict(self._values)
        exec(f"def check({args}):\n    return {expr}\n", scope)  # noqa: S102 - the probes as plain code
        return scope["check"]

    def _bind(self, value) -> str:
        name = f"v{len(self._values)}"
        self._values[name] = value
        return name

    def _hooks(self, path: str, name: str) -> None:
        self._probes.append((f"{path or '<model>'} got a forward hook or pre-hook",
                             f"not {name}._forward_hooks and not {name}._forward_pre_hooks"))

    def stale(self) -> Optional[str]:
        """Why the plan cannot run now (None: it can): global hooks, or what changed (why())."""
        if not self.fresh():
            return self.why() or "the model changed"
        if global_hooks_registered():
            return GLOBAL_HOOKS
        return None

    def why(self) -> Optional[str]:
        """What changed since the plan was made (None: nothing)."""
        for what, check in self._checks:
            if not check():
                return what
        return None
