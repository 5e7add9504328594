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

The check is one generated function of tuple comparisons (each element by identity first, so a
NaN attribute compares equal to itself) and truthiness tests of hook dicts against what was seen
at planning time (bound as its defaults), so a call costs about a microsecond and Dynamo
traces it (it reads module attributes and hook dicts, which Dynamo guards on itself: a change
recompiles, and the recompiled check sees it). `why()` is the slow path that names what changed.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from torch.nn.modules import module as _module_globals

# A fused module's attributes that its FusedBlock reads per call (Dropout's p), or that change
# nothing it computes (inplace; a transposed conv is never fused).
_NOT_IN_PLAN = {"training", "inplace", "transposed", "output_padding"}
_READ_PER_CALL = {nn.Dropout: ("p",)}
_SCALARS = (int, float, bool, str, type(None))


def global_hooks_registered() -> bool:
    return bool(_module_globals._global_forward_hooks or _module_globals._global_forward_pre_hooks)


GLOBAL_HOOKS = ("global module forward hooks are registered (torch.nn.modules.module.register_module_forward_hook "
                "or _pre_hook), which the fused modules would skip")


def _plain_value(v) -> bool:
    return isinstance(v, _SCALARS) or (isinstance(v, tuple) and all(isinstance(e, _SCALARS) for e in v))


def _read_attributes(m: nn.Module) -> list:
    """The public plain attributes of `m` that its spec line reads (padding, eps, negative_slope)."""
    skip = _NOT_IN_PLAN | set(_READ_PER_CALL.get(type(m), ()))
    return [k for k, v in vars(m).items() if not k.startswith("_") and k not in skip and _plain_value(v)]


class PlanGuard:
    """Built from the containers a plan covers (their children must stay the same objects; those
    not at the plan's root must stay without hooks) and the modules its blocks fused."""

    def __init__(self, containers: list, fused: list, root: Optional[nn.Module] = None):
        # The check reads the modules' own dicts (__dict__, _modules, _parameters, the hook dicts),
        # bound once: an nn.Module's attribute read goes through its class's __getattr__ hook and
        # costs several times a dict lookup. Those dicts are the module's for its whole life
        # (setattr, register_*_hook and append all write into them).
        self._values: dict = {}
        # Each probe: (what it means when it fails, its expressions, what they gave): one tuple
        # comparison a probe (element by element, identity first: a NaN attribute equals itself).
        self._probes: list = []
        self._hooked: list = []  # (path, forward hooks, pre-hooks) of modules the plan does not call
        for path, c in containers:
            children = self._bind(c._modules)
            self._probes.append((f"the modules of {path or '<model>'} were replaced, added or removed",
                                 [children], [type(c._modules)(c._modules)]))
            if c is not root:
                self._hooked.append((path or "<model>", self._bind(c._forward_hooks),
                                     self._bind(c._forward_pre_hooks)))
        for path, m in fused:
            self._hooked.append((path, self._bind(m._forward_hooks), self._bind(m._forward_pre_hooks)))
            attrs = _read_attributes(m)
            d = self._bind(vars(m))
            exprs = [f"{d}[{a!r}]" for a in attrs]
            values = [getattr(m, a) for a in attrs]
            if "bias" in m._parameters:  # the block reads parameters per call; bias=None is in its spec
                exprs.append(f"({self._bind(m._parameters)}['bias'] is None)")
                values.append(m._parameters["bias"] is None)
            if exprs:
                self._probes.append((f"{path}.{{}} changed", exprs, values))
        self._make_function()

    def _make_function(self) -> None:
        checks = [f"({', '.join(e)},) == {self._bind(tuple(v))}" for _, e, v in self._probes]
        hooked = self._hooked + [("", self._bind(_module_globals._global_forward_hooks),
                                  self._bind(_module_globals._global_forward_pre_hooks))]
        hooks = " or ".join(f"{h} or {p}" for _, h, p in hooked)
        checks += [f"not ({hooks})"] if hooks else []
        self._source = " and ".join(f"({c})" for c in checks) or "True"
        self.fresh = self._function(self._source)

    def __getstate__(self):  # a copy (deepcopy, pickle) checks the copied modules: its function is made again
        return {k: v for k, v in self.__dict__.items() if k != "fresh"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.fresh = self._function(self._source)

    def _function(self, expr: str):
        args = ", ".join(f"{k}={k}" for k in self._values)
        scope = dict(self._values)
        exec(f"def check({args}):\n    return {expr}\n", scope)  # noqa: S102 - the probes as plain code
        return scope["check"]

    def _bind(self, value) -> str:
        name = f"v{len(self._values)}"
        self._values[name] = value
        return name

    def stale(self) -> Optional[str]:
        """Why the plan cannot run now (None: it can): global hooks, or what changed (why())."""
        if self.fresh():
            return None
        if global_hooks_registered():
            return GLOBAL_HOOKS
        # why() evaluates expressions, which Dynamo cannot trace: it is said eagerly later
        return "the model changed" if torch.compiler.is_compiling() else self.why() or "the model changed"

    def why(self) -> Optional[str]:
        """What changed since the plan was made (None: nothing); the slow path, after fresh() failed."""
        for path, hooks, pre_hooks in self._hooked:
            if self._values[hooks] or self._values[pre_hooks]:
                return f"{path} got a forward hook or pre-hook"
        for what, exprs, values in self._probes:
            for e, was in zip(exprs, values):
                now = eval(e, dict(self._values))  # noqa: S307 - one of the expressions made above
                if not (now is was or now == was):
                    attribute = "bias" if "'bias'] is None" in e else e.split("[", 1)[-1].strip("']")
                    return what.format(attribute)
        return None
