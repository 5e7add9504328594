"""Host work per call of fuseblock's torch op (GPU machine): the CPU time to issue one forward of a
small Block (its kernels take less than the host work, so the host is what is measured), eval and
training mode, against eager PyTorch's modules on the same input. Median over repeats of N calls
timed with a CPU clock, synchronised only around each repeat.

    python3 bench/host_overhead.py [--calls 2000]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn as nn

import fuseblock.torch as fbt


def per_call_us(fn, calls, repeats=7):
    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        t1 = time.perf_counter()  # issue time only: the GPU finishes the queue after
        torch.cuda.synchronize()
        out.append((t1 - t0) / calls * 1e6)
    return statistics.median(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=2000)
    args = ap.parse_args()
    torch.manual_seed(0)
    conv, norm = nn.Conv3d(3, 8, 3, padding=1), nn.GroupNorm(4, 8)
    eager = nn.Sequential(conv, norm, nn.SiLU(), nn.Dropout(0.1)).cuda()
    block = fbt.Block.from_modules(conv, norm, nn.SiLU(), nn.Dropout(0.1)).cuda()
    x = torch.rand(2, 3, 4, 8, 8, device="cuda")
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, input {list(x.shape)}, {args.calls} calls a repeat")
    with torch.no_grad():
        for mode in ("eval", "train"):
            for name, m in (("fuseblock", block), ("eager", eager)):
                m.train(mode == "train")
                print(f"  {mode:<5} {name:<9} {per_call_us(lambda: m(x), args.calls):7.1f} us of host work per call", flush=True)


if __name__ == "__main__":
    main()
