"""Real-world blocks (GPU machine): fuseblock against PyTorch eager and torch.compile on the shapes
its users run (diffusion ResBlocks and VAEs, MONAI 3-D networks, audio convs), float32 (TF32 on,
PyTorch's default) and bfloat16, in one process on one GPU, next to the floor.

    python3 bench/realworld.py --out OUT [--quick] [--max-autotune] [--only NAME]

For every (block, dtype, mode) it first checks correctness against a float64 run of the same
modules (on the GPU), with the design's tolerances (TF32 3e-3, bf16 2e-2, relative by norm), and
NaN at the same positions with one NaN injected into sample 0, then times each peer (CUDA events,
warm-up, median, the L2 flushed before every run). A peer that refuses or fails a case is
recorded with its error. Blocks in CHANNELS_LAST also run in bf16 on a channels-last input. The floor is measured in
the same run: bytes (input read once, output written once) over the copy bandwidth, or FLOPs over
the matmul rate of the dtype (TF32 or bf16), whichever is larger. Writes OUT/realworld.json and
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
from peers import L2Flush, time_cuda  # noqa: E402  (the same timing as the problem-83 benchmark)

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
# Blocks also run with channels-last input (diffusers pipelines often convert their UNet and VAE).
CHANNELS_LAST = {"sd-resblock", "vae-decoder"}
DROPOUT = 0.1
TOLERANCE = {torch.float32: 3e-3, torch.bfloat16: 2e-2, torch.float16: 2e-2}


def modules(spec, dtype, device):
    name, conv_cls, c_in, c_out, shape, groups, act, pad = spec
    torch.manual_seed(0)
    conv = conv_cls(c_in, c_out, 3, padding=pad)
    norm = nn.GroupNorm(groups, c_out)
    eager = nn.Sequential(conv, norm, act(), nn.Dropout(DROPOUT)).to(device=device, dtype=dtype)
    return eager


def conv_flops(spec):
    _, _, c_in, c_out, shape, _, _, pad = spec
    out_spatial = [s + 2 * pad - 2 for s in shape[2:]]
    return 2 * shape[0] * c_out * math.prod(out_spatial) * c_in * 3 ** len(out_spatial)


def floor_ms(spec, dtype, machine):
    _, _, c_in, c_out, shape, _, _, pad = spec
    elem = torch.finfo(dtype).bits // 8
    out_numel = shape[0] * c_out * math.prod(s + 2 * pad - 2 for s in shape[2:])
    nbytes = elem * (math.prod(shape) + out_numel)
    rate = machine["tf32_TFLOPs"] if dtype == torch.float32 else machine["bf16_TFLOPs"]
    return max(nbytes / (machine["copy_GBps"] * 1e9), conv_flops(spec) / (rate * 1e12)) * 1e3


def measure_machine(flush):
    src = torch.rand(64 * 2**20, device="cuda")
    dst = torch.empty_like(src)
    t = time_cuda(lambda: dst.copy_(src), flush, 3, 20, 5.0)["median_ms"]
    out = {"copy_GBps": 2 * src.numel() * 4 / (t * 1e-3) / 1e9}
    n = 8192
    for key, dtype in (("tf32_TFLOPs", torch.float32), ("bf16_TFLOPs", torch.bfloat16)):
        a, b = torch.rand(n, n, device="cuda", dtype=dtype), torch.rand(n, n, device="cuda", dtype=dtype)
        t = time_cuda(lambda: a @ b, flush, 3, 10, 5.0)["median_ms"]
        out[key] = 2 * n**3 / (t * 1e-3) / 1e12
    return out


def relative_error(got, want):
    finite = torch.isfinite(want)
    if not torch.equal(torch.isnan(got), torch.isnan(want)):
        return math.inf
    d = (got.double() - want)[finite]
    return (d.norm() / want[finite].norm().clamp_min(1e-30)).item()


def check(peer, eager64, x, dtype):
    """Eval mode, against the float64 modules: the relative error on x, and NaN at the same
    positions with one NaN injected into sample 0 (which, through the conv and GroupNorm, makes
    whole groups NaN: a batch of one has no finite value left to compare, hence two runs)."""
    with torch.no_grad():
        err = relative_error(peer(x), eager64(x.double()))
        bad = x.clone()  # keeps x's memory format: flat element 7 of the logical (NCHW) order
        bad[tuple(int(i) for i in torch.unravel_index(torch.tensor(7), x.shape))] = float("nan")
        same_nan = torch.equal(torch.isnan(peer(bad)), torch.isnan(eager64(bad.double())))
    return err if same_nan else math.inf


def peers_for(spec, dtype, args):
    eager = modules(spec, dtype, "cuda")
    out = {"eager": eager, "torch.compile": torch.compile(eager)}
    if args.max_autotune:
        out["max-autotune"] = torch.compile(eager, mode="max-autotune")
    conv, norm, act, drop = eager
    out["fuseblock"] = fbt.Block.from_modules(conv, norm, act, drop)
    return out, modules(spec, torch.float64, "cuda").eval()  # the reference: eval mode, no dropout


def run(args):
    torch.backends.cudnn.benchmark = True  # PyTorch's peers at their best defaults
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    flush = L2Flush()
    machine = measure_machine(flush)
    results = {"device": torch.cuda.get_device_name(), "date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
               "torch": torch.__version__, "machine": machine, "cases": []}
    print(f"{results['device']}: copy {machine['copy_GBps']:.0f} GB/s, TF32 {machine['tf32_TFLOPs']:.0f}, "
          f"bf16 {machine['bf16_TFLOPs']:.0f} TFLOP/s", flush=True)
    dtypes = [torch.float32, torch.bfloat16] if args.quick else [torch.float32, torch.bfloat16, torch.float16]
    if args.dtypes:
        dtypes = [getattr(torch, d) for d in args.dtypes]
    modes = ["train"] if args.quick else ["train", "eval"]
    for spec in BLOCKS:
        if args.only and spec[0] not in args.only:
            continue
        for dtype in dtypes:
            layouts = ["contiguous"]
            if spec[0] in CHANNELS_LAST and dtype == torch.bfloat16:
                layouts.append("channels_last")
            peers, eager64 = peers_for(spec, dtype, args)
            g = torch.Generator(device="cuda").manual_seed(1)
            x0 = (torch.rand(spec[4], device="cuda", generator=g) * 2 - 1).to(dtype)
            for layout in layouts:
                x = x0 if layout == "contiguous" else x0.to(memory_format=torch.channels_last)
                for name, peer in peers.items():
                    entry = {"block": spec[0], "dtype": str(dtype).replace("torch.", ""), "layout": layout, "peer": name,
                             "floor_ms": floor_ms(spec, dtype, machine), "gflop": conv_flops(spec) / 1e9}
                    try:
                        if layout == "channels_last":
                            peer.to(memory_format=torch.channels_last)
                        peer.eval()
                        err = check(peer, eager64, x, dtype)
                        entry["rel_error"] = err
                        entry["correct"] = err <= TOLERANCE[dtype]
                        for mode in modes:
                            peer.train(mode == "train")
                            with torch.no_grad():
                                entry[f"{mode}_ms"] = time_cuda(lambda: peer(x), flush, 3, args.runs, 3.0)["median_ms"]
                    except Exception as e:  # noqa: BLE001 - a refusal is a result
                        entry["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
                    results["cases"].append(entry)
                    print(json.dumps(entry), flush=True)
            del peers, eager64
            torch.cuda.empty_cache()
    return results


def print_table(results, modes):
    print(f"\n== real-world blocks: {results['device']}, {results['date']}, torch {results['torch']} ==")
    print(f"{'block':<14} {'dtype':<9} {'layout':<6} {'peer':<14} {'rel.err':>8} " + " ".join(f"{m + ' ms':>9}" for m in modes) +
          f" {'floor ms':>9} {'floor/t':>8}  note")
    for e in results["cases"]:
        times = " ".join(f"{e.get(m + '_ms', float('nan')):>9.3f}" for m in modes)
        t = e.get(modes[0] + "_ms")
        pct = f"{100 * e['floor_ms'] / t:.0f}%" if t else "-"
        err = f"{e['rel_error']:.1e}" if "rel_error" in e else "-"
        note = e.get("error", "" if e.get("correct", False) else "INCORRECT")
        layout = "cl" if e.get("layout") == "channels_last" else "nchw"
        print(f"{e['block']:<14} {e['dtype']:<9} {layout:<6} {e['peer']:<14} {err:>8} {times} {e['floor_ms']:>9.3f} {pct:>8}  {note}")


def plot(results, path, mode):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted({(e["block"], e["dtype"]) for e in results["cases"] if e.get("layout") != "channels_last"}, key=str)
    peers = sorted({e["peer"] for e in results["cases"]})
    fig, ax = plt.subplots(figsize=(max(8, len(labels) * 1.2), 4.5))
    width = 0.8 / len(peers)
    for i, peer in enumerate(peers):
        ys = []
        for block, dtype in labels:
            e = next((c for c in results["cases"] if c["block"] == block and c["dtype"] == dtype and c["peer"] == peer
                      and c.get("layout") != "channels_last"), {})
            ys.append(e.get(f"{mode}_ms", 0.0) or 0.0)
        ax.bar([j + i * width for j in range(len(labels))], ys, width, label=peer)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(labels))])
    ax.set_xticklabels([f"{b}\n{d}" for b, d in labels], fontsize=7)
    ax.set_ylabel(f"{mode} ms (median)")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.set_title(f"{results['device']}, {results['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".")
    ap.add_argument("--quick", action="store_true", help="training mode only")
    ap.add_argument("--max-autotune", action="store_true", help="also torch.compile(mode='max-autotune') (slow to compile)")
    ap.add_argument("--only", nargs="*", help="block names to run")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--dtypes", nargs="*", choices=["float32", "bfloat16", "float16"], help="dtypes to run (default: "
                    "float32 and bfloat16 with --quick, all three otherwise)")
    args = ap.parse_args()
    t0 = time.time()
    try:
        results = run(args)
    except Exception:
        traceback.print_exc()
        return 1
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "realworld.json"), "w") as f:
        json.dump(results, f, indent=1)
    modes = ["train"] if args.quick else ["train", "eval"]
    plot(results, os.path.join(args.out, "realworld.png"), modes[0])
    print_table(results, modes)
    print(f"({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
