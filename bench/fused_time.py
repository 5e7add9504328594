"""The time a model's forward spends inside its FusedBlocks: events recorded by hooks around every
FusedBlock call (CUDA events on the GPU, a wall clock on the CPU), against the whole forward timed
the same way, so the ceiling of fusing these blocks is visible (the rest of the model is not
fuseblock's)."""
from __future__ import annotations

import time

import torch


class _Clock:
    def __init__(self, device):
        self.cuda = device != "cpu"

    def mark(self):
        if not self.cuda:
            return time.perf_counter()
        e = torch.cuda.Event(enable_timing=True)
        e.record()
        return e

    def ms(self, start, end):
        return start.elapsed_time(end) if self.cuda else (end - start) * 1e3


def split_ms(model, blocks, call, device, repeats=5) -> dict:
    """{"forward_ms", "in_fused_blocks_ms", "fused_block_calls"}: medians over `repeats` forwards
    of the whole forward and the sum of its FusedBlock calls."""
    clock = _Clock(device)
    spans = []
    handles = []
    for b in blocks:
        handles.append(b.register_forward_pre_hook(lambda m, a: spans.append([clock.mark(), None])))
        handles.append(b.register_forward_hook(lambda m, a, y: spans[-1].__setitem__(1, clock.mark())))
    try:
        call()  # warm: kernels compiled, plans built
        whole, inside, calls = [], [], 0
        for _ in range(repeats):
            spans.clear()
            start = clock.mark()
            call()
            end = clock.mark()
            if clock.cuda:
                torch.cuda.synchronize()
            whole.append(clock.ms(start, end))
            inside.append(sum(clock.ms(a, b) for a, b in spans))
            calls = len(spans)
    finally:
        for h in handles:
            h.remove()
    whole.sort()
    inside.sort()
    return {"forward_ms": whole[len(whole) // 2], "in_fused_blocks_ms": inside[len(inside) // 2],
            "fused_block_calls": calls}
