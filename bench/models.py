"""Whole-model forward time (GPU machine): real MONAI and diffusers models (bench/model_zoo.py,
random weights, inputs of the size their users run) in eval mode under torch.no_grad(), float32
(TF32 on, PyTorch's default) and bfloat16, four ways in one process:

    eager                   the model as built
    torch.compile           compile(model), default mode, measured as a user runs it
                            (bench/compiled_peer.py: fresh dynamo state, dynamic=False, warmed up,
                            checked to run compiled code)
    fuse                    fuseblock.torch.fuse() of a copy
    torch.compile(fuse)     the fused copy, called once eagerly, then compiled the same way

    python3 bench/models.py --out OUT [--only NAME ...] [--dtypes ...] [--budget-s S] [--no-compile]
    python3 bench/models.py --cpu-smoke --out OUT     # tiny configs on the CPU: the harness itself

Every variant's output is compared with the unfused model's (relative error by norm, NaN at the
same positions with one NaN in the input; inf when they differ) and, with the unfused model's own
error, against a float64 copy: a variant is correct when its NaN positions match and its float64
error is within the dtype's tolerance or twice eager's. A variant that fails is a row with its
error. Each row also says how many blocks fuse() fused and left (by reason), and how much of the
fused forward is spent inside FusedBlock calls (bench/fused_time.py). Writes OUT/models.json and
OUT/models.png; prints a table last.
"""
from __future__ import annotations

import argparse
import collections
import copy
import datetime
import json
import os
import re
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compiled_peer  # noqa: E402
from block_check import TOLERANCE, relative_error  # noqa: E402
from charts import bar_chart  # noqa: E402
from fused_time import split_ms  # noqa: E402
from model_zoo import models, output_of, to_device  # noqa: E402
from timing import time_ms  # noqa: E402

import fuseblock.torch as fbt  # noqa: E402

VARIANTS = ["eager", "torch.compile", "fuse", "torch.compile(fuse)"]
FIRST_COMPILE_GUESS_S = 120  # a whole model's compile before one was measured (seconds)


def with_one_nan(xs):
    bad = xs[0].clone()
    bad.view(-1)[5] = float("nan")  # a fresh contiguous clone: the flat view is its logical order
    return (bad,) + xs[1:]


def agreement(fn, model, ref64, xs, eager_err64):
    """fn's output against the unfused model and a float64 copy, NaN positions included."""
    y = output_of(fn(*xs)).clone()  # a copy: a compiled replay may reuse the buffer
    want = output_of(model(*xs))
    err64 = relative_error(y, output_of(ref64(*to_device(xs, y.device, torch.float64))))
    bad = with_one_nan(xs)
    same_nan = torch.equal(torch.isnan(output_of(fn(*bad))), torch.isnan(output_of(model(*bad))))
    dtype = xs[0].dtype
    return {"rel_error_vs_unfused": relative_error(y, want), "rel_error_vs_float64": err64,
            "nan_positions_match": same_nan,
            "correct": same_nan and err64 <= max(TOLERANCE[dtype], 2 * eager_err64)}


def reason_kind(why: str) -> str:
    """A left conv's reason without the module path it names, so that reasons group."""
    return re.sub(r"goes to \S+ \((\w+)\)", r"goes to a \1", why)


def fuse_summary(report):
    return {"fused_blocks": len(report.fused), "left": len(report.left),
            "left_by_reason": dict(collections.Counter(map(reason_kind, report.left.values())).most_common()),
            "notes": len(report.notes)}


def run_model(name, make, inputs, dtype, args, budget):
    torch.manual_seed(0)
    model = make().eval().to(device=args.device, dtype=dtype)
    ref64 = copy.deepcopy(model).to(torch.float64)
    xs = to_device(inputs(), args.device, dtype)
    entry = {"model": name, "dtype": str(dtype).replace("torch.", ""), "input": [list(t.shape) for t in xs],
             "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2)}
    fused = copy.deepcopy(model)
    t0 = time.perf_counter()
    report = fbt.fuse(fused)
    entry["fuse_s"] = round(time.perf_counter() - t0, 2)
    entry.update(fuse_summary(report))
    eager_err64 = relative_error(output_of(model(*xs)), output_of(ref64(*to_device(xs, args.device, torch.float64))))
    entry["eager_rel_error_vs_float64"] = eager_err64
    del ref64  # re-made below only for the checks: whole float64 models are large
    ref64 = copy.deepcopy(model).to(torch.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fused(*xs)  # first call: kernels compiled, plans built; a block that cannot run says so here
    entry["blocks_run_unfused"] = sorted({str(w.message) for w in caught if "runs unfused" in str(w.message)})
    for variant in args.variants:
        row = {}
        try:
            if variant.startswith("torch.compile") and budget.deadline < time.time() + budget.estimate:
                row["skipped"] = f"time budget (--budget-s {args.budget_s:.0f}; a compile ~{budget.estimate:.0f} s)"
                entry[variant] = row
                continue
            base = fused if "fuse" in variant else model
            fn = base
            if variant.startswith("torch.compile"):
                fn, stats = compiled_peer.compile_checked(base, "default", [lambda f: f(*xs)],
                                                          args.compile_backend)
                budget.estimate = stats["compile_s"]
                row["compile"] = stats
            row.update(agreement(fn, model, ref64, xs, eager_err64))
            row["ms"] = time_ms(lambda: fn(*xs), args.device, args.runs, 5.0)
            if variant.startswith("torch.compile"):
                compiled_peer.verify_compiled(fn, [lambda f: f(*xs)], stats)
            if variant == "fuse":
                row.update(split_ms(fused, [e.block for e in report.fused], lambda: fused(*xs), args.device))
        except compiled_peer.CompileFellBack as e:
            row = {"fell_back": True, "error": f"COMPILED PEER FELL BACK TO EAGER: {e}"}
        except Exception as e:  # noqa: BLE001 - a failure is a row
            row = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"}
        entry[variant] = row
    return entry


class Budget:
    """Skips a compile that would end past the deadline (the last compile's time as the estimate)."""

    def __init__(self, seconds):
        self.deadline = time.time() + seconds
        self.estimate = FIRST_COMPILE_GUESS_S


def print_table(results):
    print(f"\n== models: {results['device']}, {results['date']}, torch {results['torch']} ==")
    print("peers: " + ", ".join(f"{k}={v}" for k, v in results["peer_settings"].items()))
    print(f"{'model':<31} {'dtype':<9} {'fused':>5} {'left':>4} {'variant':<20} {'ms':>9} {'vs eager':>8} "
          f"{'err/fp64':>8} {'in blocks':>9}  note")
    for e in results["cases"]:
        eager = e.get("eager", {}).get("ms")
        for v in VARIANTS:
            r = e.get(v)
            if r is None:
                continue
            t = r.get("ms")
            share = f"{100 * r['in_fused_blocks_ms'] / r['forward_ms']:.0f}%" if r.get("forward_ms") else ""
            note = r.get("error") or r.get("skipped") or ("" if r.get("correct") else "INCORRECT")
            if "compile" in r:
                note += f" [{r['compile']['graphs']} graph(s), {r['compile']['graph_breaks']} break(s), compiled in {r['compile']['compile_s']:.0f} s]"
            err = f"{r['rel_error_vs_float64']:.1e}" if "rel_error_vs_float64" in r else "-"
            print(f"{e['model']:<31} {e['dtype']:<9} {e['fused_blocks']:>5} {e['left']:>4} {v:<20} "
                  f"{(f'{t:.3f}' if t else '-'):>9} {(f'{eager / t:.2f}x' if t and eager else '-'):>8} {err:>8} "
                  f"{share:>9}  {note}")
        for why, n in e["left_by_reason"].items():
            print(f"{'':<31} left {n:>3}: {why[:110]}")
        for w in e["blocks_run_unfused"]:
            print(f"{'':<31} {w[:120]}")


def plot(results, path):
    groups = [f"{e['model'].split('-', 1)[1]}\n{e['dtype']}" for e in results["cases"]]
    series = {v: [e.get(v, {}).get("ms") for e in results["cases"]] for v in VARIANTS}
    return bar_chart(path, groups, series, "forward ms (median)",
                     f"{results['device']}, {results['date']}, torch {results['torch']}")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".")
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny configs on the CPU, float32")
    ap.add_argument("--only", nargs="*", help="model names to run")
    ap.add_argument("--dtypes", nargs="*", choices=["float32", "bfloat16"], help="default float32 and bfloat16")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--budget-s", type=float, default=480.0,
                    help="skip compiles that would end later than this many seconds into the run")
    ap.add_argument("--compile-backend", default="inductor",
                    help="torch.compile's backend (eager: dynamo alone, a quick check of the harness)")
    ap.add_argument("--no-compile", action="store_true", help="leave the torch.compile variants out")
    args = ap.parse_args(argv)
    args.device = "cpu" if args.cpu_smoke else "cuda"
    if args.cpu_smoke:
        args.runs = min(args.runs, 3)
    args.dtypes = args.dtypes or (["float32"] if args.cpu_smoke else ["float32", "bfloat16"])
    args.variants = [v for v in VARIANTS if not (args.no_compile and v.startswith("torch.compile"))]
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("models.py needs a CUDA GPU (or --cpu-smoke)")
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    t0 = time.time()
    results = {"device": torch.cuda.get_device_name() if args.device == "cuda" else "CPU",
               "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "torch": torch.__version__, "peer_settings": compiled_peer.settings(["default"]), "cases": []}
    results["peer_settings"]["backend"] = args.compile_backend
    print("peers: " + json.dumps(results["peer_settings"]), flush=True)
    budget = Budget(args.budget_s)
    zoo = models("smoke" if args.cpu_smoke else "full")
    unknown = set(args.only or []) - set(zoo)
    if unknown:
        sys.exit(f"unknown model(s) {sorted(unknown)}; the models are {sorted(zoo)}")
    with torch.no_grad():
        for name, (make, inputs) in zoo.items():
            if args.only and name not in args.only:
                continue
            for dtype in [getattr(torch, d) for d in args.dtypes]:
                try:
                    entry = run_model(name, make, inputs, dtype, args, budget)
                except Exception as e:  # noqa: BLE001 - a model that cannot be built or fused is a row too
                    entry = {"model": name, "dtype": str(dtype).replace("torch.", ""), "fused_blocks": 0, "left": 0,
                             "left_by_reason": {}, "blocks_run_unfused": [],
                             "eager": {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"}}
                results["cases"].append(entry)
                print(json.dumps(entry), flush=True)
                if args.device == "cuda":
                    torch.cuda.empty_cache()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "models.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(plot(results, os.path.join(args.out, "models.png")))
    print_table(results)
    rows = [e[v] for e in results["cases"] for v in VARIANTS if v in e]
    bad = [r for r in rows if "error" in r or ("correct" in r and not r["correct"])]
    print(f"({time.time() - t0:.0f} s; {len(bad)} variant(s) failed or incorrect)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
