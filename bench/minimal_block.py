"""A minimal, independent timing of one block, as a new user would write it (one block per process):
nn.Sequential(conv, GroupNorm, act, Dropout), a fresh torch.compile, fuse() on a copy, triton's
do_bench medians (a wall clock with --cpu-smoke). Prints one JSON line.

    python3 bench/minimal_block.py --conv 3 --channels 32 32 --shape 2 32 96 96 96 --groups 8 --act relu --dtype bfloat16
"""
import argparse
import copy
import json
import time

import torch
import torch.nn as nn

import fuseblock.torch as fbt

ap = argparse.ArgumentParser()
ap.add_argument("--conv", type=int, choices=[1, 2, 3], required=True)
ap.add_argument("--channels", type=int, nargs=2, required=True)
ap.add_argument("--shape", type=int, nargs="+", required=True)
ap.add_argument("--groups", type=int, required=True)
ap.add_argument("--act", choices=["relu", "silu", "gelu"], required=True)
ap.add_argument("--dtype", default="float32")
ap.add_argument("--mode", choices=["train", "eval"], default="train")
ap.add_argument("--cpu-smoke", action="store_true")
a = ap.parse_args()
dev, dtype = ("cpu" if a.cpu_smoke else "cuda"), getattr(torch, a.dtype)
torch.backends.cudnn.benchmark = True
torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
conv = getattr(nn, f"Conv{a.conv}d")(*a.channels, 3, padding=1)
act = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU}[a.act]()
model = nn.Sequential(conv, nn.GroupNorm(a.groups, a.channels[1]), act, nn.Dropout(0.1)).to(dev, dtype)
model.train(a.mode == "train")
fused = copy.deepcopy(model)
fbt.fuse(fused)
torch._dynamo.reset()
compiled = torch.compile(model)
x = torch.rand(a.shape, device=dev, dtype=dtype) * 2 - 1


def median_ms(fn):
    if dev == "cpu":
        fn()
        ts = []
        for _ in range(3):
            t0 = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t0) * 1e3)
        return sorted(ts)[1]
    import triton.testing
    return triton.testing.do_bench(fn, return_mode="median")


with torch.no_grad():
    for f in (compiled, fused):
        f(x)
        f(x)
    out = {name: median_ms(lambda f=f: f(x)) for name, f in
           (("eager", model), ("torch.compile", compiled), ("fuseblock", fused))}
print(json.dumps({"args": vars(a), "ms": out}))
