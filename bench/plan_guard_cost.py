"""Host cost of the staleness check fuse() adds to every call of a fused forward (issue 21): the
guard of a fused conv -> GroupNorm -> SiLU -> Dropout Sequential, called alone, on the CPU.
Median over repeats of N calls. Any machine: `python3 bench/plan_guard_cost.py [--calls N]`."""
from __future__ import annotations

import argparse
import statistics
import time

from torch import nn

import fuseblock.torch as fbt


def per_call_us(fn, calls, repeats=7):
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        out.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=20000)
    args = ap.parse_args()
    model = nn.Sequential(nn.Conv3d(3, 8, 3, padding=1), nn.GroupNorm(4, 8), nn.SiLU(), nn.Dropout(0.1))
    fbt.fuse(model)
    guard = model.forward.guard
    print(f"guard.stale()   {per_call_us(guard.stale, args.calls):.2f} us per call")
    print(f"guard.fresh()   {per_call_us(guard.fresh, args.calls):.2f} us per call")
    print(f"empty call      {per_call_us(lambda: None, args.calls):.2f} us per call")


if __name__ == "__main__":
    main()
