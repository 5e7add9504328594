"""Cross-check (issue 17, item 2): bench/realworld.py's eager, torch.compile and fuseblock times for
two blocks against bench/minimal_block.py run once per block and dtype, each in its own process.
Prints each pair and whether they agree within 10%; exit 1 when any pair does not.

    python3 bench/crosscheck.py --realworld OUT/realworld.json [--cpu-smoke]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from realworld import BLOCKS, SMOKE_BLOCKS  # noqa: E402

BLOCK_NAMES = ("sd-resblock", "monai-3d")
SMOKE_NAMES = ("tiny-2d", "tiny-3d")
PEER_OF = {"eager": "eager", "torch.compile": "compile:default", "fuseblock": "fuseblock"}
AGREE = 0.10


def minimal_args(spec, dtype):
    _, conv_cls, c_in, c_out, shape, groups, act, _ = spec
    return ["--conv", conv_cls.__name__[-2], "--channels", str(c_in), str(c_out), "--shape", *map(str, shape),
            "--groups", str(groups), "--act", act.__name__.lower(), "--dtype", dtype, "--mode", "train"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--realworld", required=True, help="realworld.json of a --quick run over the two blocks")
    ap.add_argument("--cpu-smoke", action="store_true")
    args = ap.parse_args()
    with open(args.realworld) as f:
        harness = json.load(f)
    names = SMOKE_NAMES if args.cpu_smoke else BLOCK_NAMES
    specs = {s[0]: s for s in (SMOKE_BLOCKS if args.cpu_smoke else BLOCKS)}
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "minimal_block.py")
    disagree = 0
    print(f"{'block':<12} {'dtype':<9} {'peer':<14} {'realworld ms':>12} {'minimal ms':>10} {'ratio':>6}  agree<=10%")
    for name in names:
        dtypes = sorted({c["dtype"] for c in harness["cases"] if c["block"] == name})
        for dtype in dtypes:
            cmd = [sys.executable, script, *minimal_args(specs[name], dtype)] + (["--cpu-smoke"] if args.cpu_smoke else [])
            run = subprocess.run(cmd, capture_output=True, text=True)
            lines = [ln for ln in run.stdout.splitlines() if ln.startswith("{")]
            if run.returncode != 0 or not lines:
                print(f"{name:<12} {dtype:<9} minimal_block.py failed (rc {run.returncode}): {run.stderr[-400:]}")
                disagree += 1
                continue
            minimal = json.loads(lines[-1])["ms"]
            for peer, rw_peer in PEER_OF.items():
                row = next((c for c in harness["cases"] if c["block"] == name and c["dtype"] == dtype
                            and c["layout"] == "contiguous" and c["peer"] == rw_peer), {})
                t = row.get("train_ms")
                ratio = t / minimal[peer] if t else None
                ok = ratio is not None and abs(ratio - 1) <= AGREE
                disagree += not ok
                print(f"{name:<12} {dtype:<9} {peer:<14} {(f'{t:.3f}' if t else '-'):>12} {minimal[peer]:>10.3f} "
                      f"{(f'{ratio:.2f}' if ratio else '-'):>6}  {'yes' if ok else 'NO'}")
    print(f"cross-check: {'all agree' if not disagree else f'{disagree} pair(s) disagree'} within {AGREE:.0%}"
          + (" (CPU smoke: wall-clock noise, agreement not expected)" if args.cpu_smoke else ""))
    return 1 if disagree and not args.cpu_smoke else 0


if __name__ == "__main__":
    sys.exit(main())
