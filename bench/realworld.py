"""Real-world blocks (GPU machine): fuseblock against PyTorch eager and torch.compile on the shapes
its users run (diffusion ResBlocks and VAEs, MONAI 3-D networks, audio convs), float32 (TF32 on,
PyTorch's default), bfloat16 and float16, in one process on one GPU, next to the floor.

    python3 bench/realworld.py --out OUT [--quick] [--only NAME ...] [--peers PEER ...] [--budget-s S]
    python3 bench/realworld.py --cpu-smoke --out OUT     # tiny blocks on the CPU: the harness itself

Peers: eager (the modules), fuseblock (Block.from_modules of the same modules), and torch.compile
in default mode and max-autotune-no-cudagraphs, plus max-autotune (CUDA graphs) on the SD, VAE and
MONAI blocks. Each compiled peer is measured as a user runs it (bench/compiled_peer.py): a fresh
dynamo state per case, dynamic=False, warm-up until no new graph compiles, and a check before and
after timing that compiled code ran; a peer that fell back to eager is an error row, not a time.
A compiled peer that would not finish within --budget-s (estimated from its mode's last compile)
is a "skipped" row.

For every (block, dtype, layout, mode) each peer is checked against a float64 run of the same
modules (bench/block_check.py: eval by relative error, training by kept values and keep rate,
NaN positions in both), then timed (CUDA events, warm-up, median, the L2 flushed before every run;
bench/timing.py). Blocks in CHANNELS_LAST also run in bf16 on a channels-last input. The floor is
measured in the same run: bytes (input read once, output written once) over the copy bandwidth,
or FLOPs over the matmul rate of the dtype, whichever is larger. Writes OUT/realworld.json and
OUT/realworld.png; prints a table last.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
import time
import traceback

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compiled_peer  # noqa: E402
from block_check import check  # noqa: E402
from charts import bar_chart  # noqa: E402
from timing import time_ms  # noqa: E402

import fuseblock.torch as fbt  # noqa: E402

# (name, conv class, C_in, C_out, input shape, GroupNorm groups, activation, padding)
BLOCKS = [
    ("sd-resblock", nn.Conv2d, 320, 320, (8, 320, 64, 64), 32, nn.SiLU, 1),
    ("vae-decoder", nn.Conv2d, 128, 128, (1, 128, 256, 256), 32, nn.SiLU, 1),
    ("monai-3d", nn.Conv3d, 32, 32, (2, 32, 96, 96, 96), 8, nn.ReLU, 1),
    ("monai-stem", nn.Conv3d, 1, 32, (2, 1, 128, 128, 128), 8, nn.ReLU, 1),
    ("audio-1d", nn.Conv1d, 64, 64, (16, 64, 16000), 16, nn.GELU, 1),
    # Beyond the table: an SDXL-sized ResBlock and a small-channel 2-D conv.
    ("sdxl-resblock", nn.Conv2d, 640, 640, (2, 640, 64, 64), 32, nn.SiLU, 1),
    ("unet-64ch", nn.Conv2d, 64, 64, (8, 64, 128, 128), 32, nn.SiLU, 1),
    ("segresnet-3d", nn.Conv3d, 16, 16, (1, 16, 128, 128, 128), 8, nn.ReLU, 1),
    ("audio-wide", nn.Conv1d, 256, 256, (4, 256, 8192), 32, nn.SiLU, 1),
]
SMOKE_BLOCKS = [
    ("tiny-2d", nn.Conv2d, 4, 8, (2, 4, 12, 12), 2, nn.SiLU, 1),
    ("tiny-3d", nn.Conv3d, 2, 4, (1, 2, 6, 6, 6), 2, nn.ReLU, 1),
]
# Blocks also run with channels-last input (diffusers pipelines often convert their UNet and VAE).
CHANNELS_LAST = {"sd-resblock", "vae-decoder"}
# mode="max-autotune" (CUDA graphs, the longest compile) on the SD, VAE and MONAI blocks only.
MAX_AUTOTUNE_BLOCKS = {"sd-resblock", "sdxl-resblock", "vae-decoder", "monai-3d", "monai-stem", "segresnet-3d"}
COMPILE_PEERS = {f"compile:{m}": m for m in compiled_peer.MODES}
PEERS = ["eager", "fuseblock", *COMPILE_PEERS]
# A compiled peer's compile time before its mode measured one (seconds, an H100's order).
FIRST_COMPILE_GUESS_S = {"default": 40, "max-autotune-no-cudagraphs": 150, "max-autotune": 180}
DROPOUT = 0.1


def modules(spec, dtype, device, layout="contiguous"):
    _, conv_cls, c_in, c_out, _, groups, act, pad = spec
    torch.manual_seed(0)  # every peer and the reference get the same weights
    m = nn.Sequential(conv_cls(c_in, c_out, 3, padding=pad), nn.GroupNorm(groups, c_out), act(), nn.Dropout(DROPOUT))
    m = m.to(device=device, dtype=dtype)
    return m.to(memory_format=torch.channels_last) if layout == "channels_last" else m


def conv_flops(spec):
    _, _, c_in, c_out, shape, _, _, pad = spec
    out_spatial = [s + 2 * pad - 2 for s in shape[2:]]
    return 2 * shape[0] * c_out * math.prod(out_spatial) * c_in * 3 ** len(out_spatial)


def floor_ms(spec, dtype, machine):
    if machine is None:
        return None
    _, _, c_in, c_out, shape, _, _, pad = spec
    elem = torch.finfo(dtype).bits // 8
    out_numel = shape[0] * c_out * math.prod(s + 2 * pad - 2 for s in shape[2:])
    nbytes = elem * (math.prod(shape) + out_numel)
    rate = machine["tf32_TFLOPs"] if dtype == torch.float32 else machine["bf16_TFLOPs"]
    return max(nbytes / (machine["copy_GBps"] * 1e9), conv_flops(spec) / (rate * 1e12)) * 1e3


def measure_machine(device):
    if device == "cpu":
        return None
    src = torch.rand(64 * 2**20, device="cuda")
    dst = torch.empty_like(src)
    t = time_ms(lambda: dst.copy_(src), device, 20, 5.0)
    out = {"copy_GBps": 2 * src.numel() * 4 / (t * 1e-3) / 1e9}
    n = 8192
    for key, dtype in (("tf32_TFLOPs", torch.float32), ("bf16_TFLOPs", torch.bfloat16)):
        a, b = torch.rand(n, n, device="cuda", dtype=dtype), torch.rand(n, n, device="cuda", dtype=dtype)
        out[key] = 2 * n**3 / (time_ms(lambda: a @ b, device, 10, 5.0) * 1e-3) / 1e12
    return out


class Budget:
    """Skips a compiled peer whose compile would end past the deadline (its mode's last compile
    time as the estimate), so a run fits the GPU machine's 10-minute calls."""

    def __init__(self, seconds):
        self.deadline = time.time() + seconds
        self.estimate = dict(FIRST_COMPILE_GUESS_S)

    def allows(self, mode):
        return time.time() + self.estimate[mode] <= self.deadline

    def measured(self, mode, seconds):
        self.estimate[mode] = seconds


def peers_for(spec, args):
    names = [p for p in args.peers if p != "compile:max-autotune" or spec[0] in MAX_AUTOTUNE_BLOCKS or args.cpu_smoke]
    return names


def run_peer(name, spec, dtype, layout, x, reference64, modes, args, budget):
    """One row: the peer's check and time in each mode."""
    module = modules(spec, dtype, args.device, layout)
    entry = {"block": spec[0], "dtype": str(dtype).replace("torch.", ""), "layout": layout, "peer": name,
             "shape": list(spec[4]), "gflop": conv_flops(spec) / 1e9}
    target = module  # what .train()/.eval() is set on
    compile_mode = COMPILE_PEERS.get(name)
    stats = None
    if name == "eager":
        fn = module
    elif name == "fuseblock":
        target = fn = fbt.Block.from_modules(*module).to(args.device)
    else:
        if not budget.allows(compile_mode):
            entry["skipped"] = f"time budget (--budget-s {args.budget_s:.0f}; its compile ~{budget.estimate[compile_mode]:.0f} s)"
            return entry
        calls = [lambda f, m=m: (module.train(m == "train"), f(x)) for m in modes]
        fn, stats = compiled_peer.compile_checked(module, compile_mode, calls, args.compile_backend)
        budget.measured(compile_mode, stats["compile_s"])
        entry["compile"] = stats
    correct = True
    for m in modes:
        target.train(m == "train")
        c = check(fn, reference64, x, m == "train", DROPOUT)
        entry[f"{m}_check"] = c
        correct = correct and c["correct"]
        entry[f"{m}_ms"] = time_ms(lambda: fn(x), args.device, args.runs)
    if stats is not None:
        compiled_peer.verify_compiled(fn, calls, stats)
    entry["correct"] = correct
    return entry


def run(args):
    torch.backends.cudnn.benchmark = True  # PyTorch's peers at their best defaults
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    machine = measure_machine(args.device)
    modes = ["train"] if args.quick else ["train", "eval"]
    results = {"device": torch.cuda.get_device_name() if args.device == "cuda" else "CPU",
               "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "torch": torch.__version__, "machine": machine, "modes": modes,
               "peer_settings": compiled_peer.settings([COMPILE_PEERS[p] for p in args.peers if p in COMPILE_PEERS]),
               "cases": []}
    results["peer_settings"]["max-autotune blocks"] = sorted(MAX_AUTOTUNE_BLOCKS)
    results["peer_settings"]["backend"] = args.compile_backend
    print(f"{results['device']}, torch {torch.__version__}: " + (
        f"copy {machine['copy_GBps']:.0f} GB/s, TF32 {machine['tf32_TFLOPs']:.0f}, bf16 {machine['bf16_TFLOPs']:.0f} TFLOP/s"
        if machine else "no floors on the CPU"), flush=True)
    print("peers: " + json.dumps(results["peer_settings"]), flush=True)
    budget = Budget(args.budget_s)
    for spec in SMOKE_BLOCKS if args.cpu_smoke else BLOCKS:
        if args.only and spec[0] not in args.only:
            continue
        for dtype in [getattr(torch, d) for d in args.dtypes]:
            layouts = ["contiguous"] + (["channels_last"] if spec[0] in CHANNELS_LAST and dtype == torch.bfloat16 else [])
            g = torch.Generator(device=args.device).manual_seed(1)
            x0 = (torch.rand(spec[4], device=args.device, generator=g) * 2 - 1).to(dtype)
            reference64 = modules(spec, torch.float64, args.device).eval()  # eval mode: no dropout
            for layout in layouts:
                x = x0 if layout == "contiguous" else x0.to(memory_format=torch.channels_last)
                for name in peers_for(spec, args):
                    try:
                        with torch.no_grad():
                            entry = run_peer(name, spec, dtype, layout, x, reference64, modes, args, budget)
                    except compiled_peer.CompileFellBack as e:
                        entry = {"block": spec[0], "dtype": str(dtype).replace("torch.", ""), "layout": layout,
                                 "peer": name, "fell_back": True, "error": f"COMPILED PEER FELL BACK TO EAGER: {e}"}
                    except Exception as e:  # noqa: BLE001 - a refusal is a result
                        entry = {"block": spec[0], "dtype": str(dtype).replace("torch.", ""), "layout": layout,
                                 "peer": name, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"}
                    entry["floor_ms"] = floor_ms(spec, dtype, machine)
                    results["cases"].append(entry)
                    print(json.dumps(entry), flush=True)
            del reference64
            if args.device == "cuda":
                torch.cuda.empty_cache()
    return results


def print_table(results):
    modes = results["modes"]
    print(f"\n== real-world blocks: {results['device']}, {results['date']}, torch {results['torch']} ==")
    print("peers: " + ", ".join(f"{k}={v}" for k, v in results["peer_settings"].items()))
    print(f"{'block':<14} {'dtype':<9} {'layout':<6} {'peer':<35} {'rel.err':>8} " + " ".join(f"{m + ' ms':>9}" for m in modes)
          + f" {'best/this':>9} {'floor ms':>9} {'floor/t':>8}  note")
    key = lambda e: (e["block"], e["dtype"], e["layout"])  # noqa: E731
    for e in results["cases"]:
        t = e.get(modes[0] + "_ms")
        others = [c.get(modes[0] + "_ms") for c in results["cases"] if key(c) == key(e) and c["peer"] != "fuseblock"]
        best = min((o for o in others if o), default=None)
        ratio = f"{best / t:.2f}x" if t and best else "-"
        times = " ".join(f"{e[m + '_ms']:>9.3f}" if m + "_ms" in e else f"{'-':>9}" for m in modes)
        floor = e.get("floor_ms")
        pct = f"{100 * floor / t:.0f}%" if t and floor else "-"
        errs = [e[m + "_check"]["rel_error"] for m in modes if m + "_check" in e]
        err = f"{max(errs):.1e}" if errs else "-"
        note = e.get("error") or e.get("skipped") or ("" if e.get("correct") else "INCORRECT")
        if "compile" in e:
            note += f" [{e['compile']['graphs']} graph(s), compiled in {e['compile']['compile_s']:.0f} s]"
        layout = "cl" if e["layout"] == "channels_last" else "nchw"
        floor_cell = f"{floor:>9.3f}" if floor else f"{'-':>9}"
        print(f"{e['block']:<14} {e['dtype']:<9} {layout:<6} {e['peer']:<35} {err:>8} {times} {ratio:>9} "
              f"{floor_cell} {pct:>8}  {note}")


def plot(results, path):
    mode = results["modes"][0]
    cases = [c for c in results["cases"] if c["layout"] == "contiguous"]
    groups = sorted({(c["block"], c["dtype"]) for c in cases}, key=str)
    peers = [p for p in PEERS if any(c["peer"] == p for c in cases)]
    at = {(c["block"], c["dtype"], c["peer"]): c for c in cases}
    series = {p: [at.get((b, d, p), {}).get(f"{mode}_ms") for b, d in groups] for p in peers}
    floors = [next((c.get("floor_ms") for c in cases if (c["block"], c["dtype"]) == g), None) for g in groups]
    return bar_chart(path, [f"{b}\n{d}" for b, d in groups], series, f"{mode} ms (median)",
                     f"{results['device']}, {results['date']}, torch {results['torch']}", floors)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".")
    ap.add_argument("--quick", action="store_true", help="training mode only")
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny blocks on the CPU, float32, training mode")
    ap.add_argument("--only", nargs="*", help="block names to run")
    ap.add_argument("--peers", nargs="*", choices=PEERS, default=PEERS, help="peers to run (default all)")
    ap.add_argument("--budget-s", type=float, default=480.0,
                    help="skip compiled peers whose compile would end later than this many seconds into the run")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--compile-backend", default="inductor",
                    help="torch.compile's backend (eager: dynamo alone, a quick check of the harness)")
    ap.add_argument("--dtypes", nargs="*", choices=["float32", "bfloat16", "float16"], help="dtypes to run (default: "
                    "float32 and bfloat16 with --quick, all three otherwise)")
    args = ap.parse_args(argv)
    args.device = "cpu" if args.cpu_smoke else "cuda"
    if args.cpu_smoke:
        args.quick = True
        args.runs = min(args.runs, 3)
        if args.peers == PEERS:  # autotuning on the CPU proves nothing about the harness and takes minutes
            args.peers = ["eager", "fuseblock", "compile:default"]
    if not args.dtypes:
        args.dtypes = ["float32"] if args.cpu_smoke else (["float32", "bfloat16"] if args.quick else
                                                         ["float32", "bfloat16", "float16"])
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("realworld.py needs a CUDA GPU (or --cpu-smoke)")
    t0 = time.time()
    try:
        results = run(args)
    except Exception:
        traceback.print_exc()
        return 1
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "realworld.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(plot(results, os.path.join(args.out, "realworld.png")))
    print_table(results)
    fell_back = [c for c in results["cases"] if c.get("fell_back")]
    wrong = [c for c in results["cases"] if "correct" in c and not c["correct"]]
    print(f"({time.time() - t0:.0f} s; {len(fell_back)} compiled peer(s) fell back to eager, {len(wrong)} incorrect)")
    return 1 if fell_back or wrong else 0


if __name__ == "__main__":
    sys.exit(main())
