"""What a fused plan does when its guard (_plan_guard) says it cannot run as made: it says why
(one warning per reason and a note in fuse()'s report) and either makes the plan again from the
model as it is now or runs the module's own forward, unfused, for this call.

It runs unfused, rather than planning again, while global module hooks are registered (the plan
is not stale: it runs again once they are removed), under torch.compile (planning builds
FusedBlocks, which Dynamo cannot trace; the recompiled graph calls the modules themselves), and
after _MAX_REPLANS plans (a model edited at every call would plan at every call)."""
from __future__ import annotations

import warnings

import torch

from ._fuse_report import FuseReport
from ._plan_guard import GLOBAL_HOOKS

_MAX_REPLANS = 8


class StalePlanPolicy:
    def __init__(self, path: str, report: FuseReport):
        self.path, self.report = path, report
        self.replanned = 0
        self._said: set = set()

    def replans(self, why: str, compiling: bool) -> bool:
        """Whether to plan again (True) or run unfused this call (False), having said why."""
        where = self.path or "<model>"
        if why == GLOBAL_HOOKS:
            self._say(f"{where} runs unfused while {why}")
            return False
        if compiling:
            self._say(f"{where} runs unfused under torch.compile: {why} after fuse()")
            return False
        if self.replanned >= _MAX_REPLANS:
            self._say(f"{where} changed after more than {_MAX_REPLANS} plans; it runs unfused from now on ({why})")
            return False
        self.replanned += 1
        self._say(f"{where} was fused again: {why} after fuse()")
        return True

    def _say(self, text: str) -> None:
        self.report.add_note(text)
        if text not in self._said and not torch.compiler.is_compiling():  # Dynamo cannot trace warn()
            self._said.add(text)
            warnings.warn(f"fuseblock: {text}", stacklevel=4)
