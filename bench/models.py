"""Whole-model forward time (GPU machine): real MONAI and diffusers models with random weights,
unfused (eager), torch.compile of the unfused model, and fuseblock.torch.fuse() of a copy, in one
process, eval mode under torch.no_grad(), float32 (TF32 on, PyTorch's default) and bfloat16.

    python3 bench/models.py --out OUT [--small] [--device cuda|cpu] [--only NAME ...]

Each model is checked first: the fused copy against the unfused model (relative error by norm;
TF32 3e-3, bf16 2e-2) and NaN at the same positions with one NaN in the input. Then each variant
is timed (CUDA events, warm-up, median, the L2 flushed before each run). --small uses the test suite's tiny configs (a smoke test
that also runs on the CPU). Needs monai and diffusers (scripts/pack-gpu-wheels.sh carries them).
Writes OUT/models.json; prints a table last.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import functools
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import L2Flush, time_cuda  # noqa: E402  (the timing every benchmark here shares)

import fuseblock.torch as fbt  # noqa: E402

TOLERANCE = {torch.float32: 3e-3, torch.bfloat16: 2e-2}


def models(small: bool):
    """name -> (make model, make inputs (a tuple, on the CPU in float32))."""
    from diffusers import AutoencoderKL, UNet2DModel
    from monai.networks.nets import SegResNet, UNet

    side3, side2 = (16, 16) if small else (96, 64)
    filt = 8 if small else 16
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    vol = lambda: (torch.rand(1, 1, side3, side3, side3, generator=g(1)) * 4 - 2,)  # noqa: E731
    chans = (32, 64) if small else (128, 256, 256)
    unet2d = dict(sample_size=side2, in_channels=3, out_channels=3, layers_per_block=1 if small else 2,
                  block_out_channels=chans, norm_num_groups=8 if small else 32,
                  down_block_types=("DownBlock2D",) * len(chans), up_block_types=("UpBlock2D",) * len(chans))
    vae = dict(in_channels=3, out_channels=3, block_out_channels=chans, layers_per_block=1 if small else 2,
               latent_channels=4, norm_num_groups=8 if small else 32, sample_size=side2 * 4,
               down_block_types=("DownEncoderBlock2D",) * len(chans), up_block_types=("UpDecoderBlock2D",) * len(chans))
    n2 = 2 if small else 4
    return {
        "monai-SegResNet": (lambda: SegResNet(spatial_dims=3, init_filters=filt, in_channels=1, out_channels=2), vol),
        "monai-UNet": (lambda: UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(filt, 2 * filt, 4 * filt),
                                    strides=(2, 2), num_res_units=2, dropout=0.1), vol),
        "diffusers-UNet2DModel": (lambda: UNet2DModel(**unet2d),
                                  lambda: (torch.randn(n2, 3, side2, side2, generator=g(2)), torch.tensor([10] * n2))),
        "diffusers-AutoencoderKL": (lambda: AutoencoderKL(**vae),
                                    lambda: (torch.randn(1, 3, side2 * 4, side2 * 4, generator=g(3)),)),
    }


def output(y):
    return y.sample if hasattr(y, "sample") else y


def rel_error(got, want):
    got, want = got.double(), want.double()
    if not torch.equal(torch.isnan(got), torch.isnan(want)):
        return float("inf")
    finite = torch.isfinite(want)
    return ((got - want)[finite].norm() / want[finite].norm().clamp_min(1e-30)).item()


def time_ms(fn, device, runs):
    """Median ms: on the GPU the problem-83 benchmark's timing (CUDA events, L2 flushed before
    each run); on the CPU (the --small smoke test) a wall clock."""
    if device != "cpu":
        return time_cuda(fn, _flush(), 3, runs, 5.0)["median_ms"]
    for _ in range(3):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


@functools.lru_cache(maxsize=1)
def _flush():
    return L2Flush()  # one 256 MB buffer for the whole run


def run_model(name, make, inputs, dtype, args):
    torch.manual_seed(0)
    model = make().eval().to(device=args.device, dtype=dtype)
    fused = copy.deepcopy(model)
    report = fbt.fuse(fused)
    xs = tuple(t.to(args.device, dtype) if t.is_floating_point() else t.to(args.device) for t in inputs())
    entry = {"model": name, "dtype": str(dtype).replace("torch.", ""), "fused_blocks": len(report.fused),
             "left": len(report.left)}
    with torch.no_grad():
        want = output(model(*xs))
        entry["rel_error"] = rel_error(output(fused(*xs)), want)
        bad = (xs[0].clone(),) + xs[1:]
        bad[0].view(-1)[5] = float("nan")
        same_nan = torch.equal(torch.isnan(output(fused(*bad))), torch.isnan(output(model(*bad))))
        entry["correct"] = same_nan and entry["rel_error"] <= TOLERANCE[dtype]
        variants = {"eager": model, "fuseblock": fused}
        if not args.no_compile:
            variants["torch.compile"] = torch.compile(model)
        for vname, m in variants.items():
            try:
                entry[f"{vname}_ms"] = time_ms(lambda: m(*xs), args.device, args.runs)
            except Exception as e:  # noqa: BLE001 - a failure is a result
                entry[f"{vname}_failed"] = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
    return entry


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".")
    ap.add_argument("--small", action="store_true", help="the tests' tiny configs (a smoke test)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--only", nargs="*", help="model names to run")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--no-compile", action="store_true", help="leave torch.compile out (its compile takes minutes)")
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    results = {"device": device_name, "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "torch": torch.__version__, "cases": []}
    for name, (make, inputs) in models(args.small).items():
        if args.only and name not in args.only:
            continue
        for dtype in (torch.float32, torch.bfloat16):
            entry = run_model(name, make, inputs, dtype, args)
            results["cases"].append(entry)
            print(json.dumps(entry), flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "models.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"\n== models: {results['device']}, {results['date']}, torch {results['torch']} ==")
    print(f"{'model':<24} {'dtype':<9} {'blocks':>6} {'rel.err':>8} {'eager ms':>9} {'compile ms':>10} {'fused ms':>9}  note")
    for e in results["cases"]:
        t = lambda k: f"{e[k]:.3f}" if k in e else "-"  # noqa: E731
        note = "" if e["correct"] else "INCORRECT"
        note += " ".join(e[k] for k in e if k.endswith("_failed"))
        print(f"{e['model']:<24} {e['dtype']:<9} {e['fused_blocks']:>6} {e['rel_error']:>8.1e} {t('eager_ms'):>9} "
              f"{t('torch.compile_ms'):>10} {t('fuseblock_ms'):>9}  {note}")
    return 0 if all(e["correct"] for e in results["cases"]) else 1


if __name__ == "__main__":
    sys.exit(main())
