"""Sliding-window inference throughput (issue 22): monai.inferers.sliding_window_inference of a MONAI
SegResNet, unfused (eager) against fuseblock.torch.fuse() of a copy, eval mode under
torch.no_grad(), float32 (TF32 on, PyTorch's default) and bfloat16. The volumes can be split over
several processes (--procs), one share each, on cuda:(rank mod the GPU count): two GPUs with one
process each, or two processes sharing one GPU.

    python3 bench/sliding_window.py [--small] [--device cuda|cpu] [--procs N] [--volumes V] [--out OUT]

--small is a CPU smoke test (a tiny SegResNet on 32^3 volumes, 16^3 windows). Each process first
checks its fused model against the unfused one on its first volume (relative error by norm, TF32
3e-3, bf16 2e-2), then times whole passes over its share: the processes start each pass together
(a barrier) and a pass's time is the slowest process's wall clock. Throughput is volumes per
second over all processes (median pass). Writes OUT/sliding_window.json; prints a table last.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import statistics
import sys
import time

import torch
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models import TOLERANCE, rel_error  # noqa: E402  (the whole-model benchmark's check)

# (volume side, window side, windows per batch, SegResNet's init_filters, blocks_down, blocks_up)
CONFIGS = {
    "small": dict(volume=(32, 32, 32), roi=(16, 16, 16), sw_batch=2, filters=8, down=(1, 2), up=(1,)),
    "full": dict(volume=(192, 192, 160), roi=(96, 96, 96), sw_batch=4, filters=16, down=(1, 2, 2, 4), up=(1, 1, 1)),
}
OVERLAP = 0.25  # MONAI's default


def segresnet(cfg):
    from monai.networks.nets import SegResNet

    torch.manual_seed(0)  # every process builds the same weights
    return SegResNet(spatial_dims=3, init_filters=cfg["filters"], in_channels=1, out_channels=2,
                     blocks_down=cfg["down"], blocks_up=cfg["up"]).eval()


def volume(i, cfg):
    g = torch.Generator().manual_seed(1000 + i)
    return torch.rand((1, 1, *cfg["volume"]), generator=g) * 4 - 2


def infer(model, x, cfg):
    from monai.inferers import sliding_window_inference

    return sliding_window_inference(x, cfg["roi"], cfg["sw_batch"], model, overlap=OVERLAP)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_share(rank, args, barrier, results):
    """One process: its share of the volumes (every procs-th from rank), each dtype, eager and fused."""
    cfg = CONFIGS["small" if args.small else "full"]
    device = torch.device(args.device)
    if device.type == "cuda":
        device = torch.device("cuda", rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    if args.procs > 1:
        torch.set_num_threads(max(1, torch.get_num_threads() // args.procs))
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    import fuseblock.torch as fbt

    share = [i for i in range(args.volumes) if i % args.procs == rank]
    out = {"rank": rank, "device": str(device), "volumes": len(share), "cases": []}
    for dtype in (torch.float32, torch.bfloat16):
        eager = segresnet(cfg).to(device, dtype)
        fused = copy.deepcopy(eager)
        report = fbt.fuse(fused)
        xs = [volume(i, cfg).to(device, dtype) for i in share]
        case = {"dtype": str(dtype).replace("torch.", ""), "fused_blocks": len(report.fused), "left": len(report.left)}
        with torch.no_grad():
            if xs:  # also the warm-up: cuDNN's plans and fuseblock's kernels are compiled here
                case["rel_error"] = rel_error(infer(fused, xs[0], cfg).float().cpu(), infer(eager, xs[0], cfg).float().cpu())
            for name, model in (("eager", eager), ("fuseblock", fused)):
                times = []
                for _ in range(args.runs):
                    barrier.wait()
                    t0 = time.perf_counter()
                    for x in xs:
                        infer(model, x, cfg)
                    sync(device)
                    times.append(time.perf_counter() - t0)
                case[f"{name}_s"] = times
        out["cases"].append(case)
    results.put(out)


def combine(shares, args):
    """Per dtype: the slowest process's time for each pass, throughput from the median pass."""
    cases = []
    for k, first in enumerate(shares[0]["cases"]):
        row = {"dtype": first["dtype"], "fused_blocks": first["fused_blocks"], "left": first["left"],
               "rel_error": max(s["cases"][k].get("rel_error", 0.0) for s in shares)}
        row["correct"] = row["rel_error"] <= TOLERANCE[getattr(torch, first["dtype"])]
        for name in ("eager", "fuseblock"):
            passes = [max(s["cases"][k][f"{name}_s"][r] for s in shares) for r in range(args.runs)]
            row[f"{name}_volumes_per_s"] = args.volumes / statistics.median(passes)
        row["speedup"] = row["fuseblock_volumes_per_s"] / row["eager_volumes_per_s"]
        cases.append(row)
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".")
    ap.add_argument("--small", action="store_true", help="a tiny SegResNet on 32^3 volumes (CPU smoke test)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--procs", type=int, default=1, help="processes the volumes are split over")
    ap.add_argument("--volumes", type=int, default=4, help="volumes per pass, over all processes")
    ap.add_argument("--runs", type=int, default=5, help="timed passes per variant")
    args = ap.parse_args()
    if args.procs < 1 or args.volumes < args.procs:
        ap.error(f"--procs must be at least 1 and at most --volumes ({args.volumes}), not {args.procs}")
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(args.procs), ctx.SimpleQueue()
    if args.procs == 1:
        run_share(0, args, barrier, results)
    else:
        mp.start_processes(run_share, args=(args, barrier, results), nprocs=args.procs, join=True, start_method="spawn")
    shares = sorted((results.get() for _ in range(args.procs)), key=lambda s: s["rank"])
    cfg = CONFIGS["small" if args.small else "full"]
    device = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    summary = {"device": device, "gpus_used": sorted({s["device"] for s in shares}), "procs": args.procs,
               "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "torch": torch.__version__, "config": cfg, "overlap": OVERLAP, "volumes": args.volumes,
               "cases": combine(shares, args)}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "sliding_window.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"\n== sliding window: SegResNet, {device} ({', '.join(summary['gpus_used'])}), {args.procs} process(es), "
          f"{args.volumes} volumes {cfg['volume']}, roi {cfg['roi']}, {summary['date']} ==")
    print(f"{'dtype':<9} {'blocks':>6} {'rel.err':>8} {'eager vol/s':>11} {'fused vol/s':>11} {'speedup':>7}  note")
    for e in summary["cases"]:
        print(f"{e['dtype']:<9} {e['fused_blocks']:>6} {e['rel_error']:>8.1e} {e['eager_volumes_per_s']:>11.3f} "
              f"{e['fuseblock_volumes_per_s']:>11.3f} {e['speedup']:>6.2f}x  {'' if e['correct'] else 'INCORRECT'}")
    return 0 if all(e["correct"] for e in summary["cases"]) else 1


if __name__ == "__main__":
    sys.exit(main())
