"""Host work per call of fuseblock's torch op (GPU machine): the CPU time to issue one forward of a
small Block (its kernels take less than the host work, so the host is what is measured), eval and
training mode, against eager PyTorch's modules on the same input. Median over repeats of N calls
timed with a CPU clock, synchronised only around each repeat. Rows: `Block.from_modules` and
the FusedBlock that `fuse()` installs (their Python paths differ), and the eager modules.

    python3 bench/host_overhead.py [--calls 2000]
    python3 bench/host_overhead.py --python-only   # any machine: fuseblock's Python part alone, on
                                                   # CPU tensors, the op's body replaced by a no-op
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn as nn

import fuseblock.torch as fbt


def per_call_us(fn, calls, sync, repeats=7):
    for _ in range(20):
        fn()
    sync()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        t1 = time.perf_counter()  # issue time only: the GPU finishes the queue after
        sync()
        out.append((t1 - t0) / calls * 1e6)
    return statistics.median(out)


def stub_out_the_op_body():
    """The op's body (what crosses into C++ and launches) becomes `return x`, where Block and
    FusedBlock call it, so that what is left is their Python work."""
    import fuseblock._fused_block as fused_block_module

    def no_op(x, *args):
        return x
    fused_block_module.forward_eager = no_op
    fbt.forward_eager = no_op


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--python-only", action="store_true",
                    help="CPU tensors, the op's body replaced by a no-op: fuseblock's Python part per call")
    args = ap.parse_args()
    torch.manual_seed(0)
    device = "cpu" if args.python_only else "cuda"
    sync = (lambda: None) if args.python_only else torch.cuda.synchronize
    conv, norm = nn.Conv3d(3, 8, 3, padding=1), nn.GroupNorm(4, 8)
    eager = nn.Sequential(conv, norm, nn.SiLU(), nn.Dropout(0.1)).to(device)
    block = fbt.Block.from_modules(conv, norm, nn.SiLU(), nn.Dropout(0.1)).to(device)
    fused = nn.Sequential(conv, norm, nn.SiLU(), nn.Dropout(0.1)).to(device)
    fbt.fuse(fused)
    x = torch.rand(2, 3, 4, 8, 8, device=device)
    where = "CPU, the op's body stubbed out" if args.python_only else torch.cuda.get_device_name()
    rows = (("Block", block), ("fused", fused)) + ((("eager", eager),) if not args.python_only else ())
    if args.python_only:
        stub_out_the_op_body()
    print(f"{where}, torch {torch.__version__}, input {list(x.shape)}, {args.calls} calls a repeat, "
          f"median of 7 repeats")
    us = {}
    with torch.no_grad():
        for mode in ("eval", "train"):
            for name, m in rows:
                m.train(mode == "train")
                us[mode, name] = per_call_us(lambda: m(x), args.calls, sync)
                print(f"  {mode:<5} {name:<9} {us[mode, name]:7.1f} us of host work per call", flush=True)
    print_table(us, [name for name, _ in rows])


def print_table(us: dict, names: list) -> None:
    """One row per mode: each way's host microseconds per call and, with eager measured, the ratio
    issue 20 item 4 asks about (fused at or below eager's)."""
    print(f"\n== host work per call (us) ==\n{'mode':<6}" + "".join(f"{n:>10}" for n in names)
          + ("   fused/eager  verdict" if "eager" in names else ""))
    for mode in ("eval", "train"):
        line = f"{mode:<6}" + "".join(f"{us[mode, n]:>10.1f}" for n in names)
        if "eager" in names:
            ratio = us[mode, "fused"] / us[mode, "eager"]
            line += f"   {ratio:>11.2f}  {'at or below eager' if ratio <= 1.0 else 'ABOVE EAGER'}"
        print(line)

if __name__ == "__main__":
    main()
