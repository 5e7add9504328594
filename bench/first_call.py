"""First-call cost of whole models as a user meets it (issue 17, item 4), GPU machine: for each model
of bench/model_zoo.py and each way to run it (eager, torch.compile, fuse, torch.compile(fuse)), a new
Python process builds the model and times everything up to its first output, with empty caches
(a fresh FUSEBLOCK_CACHE_DIR, TORCHINDUCTOR_CACHE_DIR and TRITON_CACHE_DIR), then a second new process
does the same with the caches the first one left (a user's second run).

    python3 bench/first_call.py --out OUT [--only NAME ...] [--variants ...] [--dtype D] [--budget-s S]
    python3 bench/first_call.py --cpu-smoke --out OUT   # tiny models on the CPU: the harness itself

Each process reports: import_s (import torch, fuseblock, the model's library), build_s (construct,
.eval(), .to(device, dtype), inputs on the device), fuse_s (fuse() itself), first_s (the first call,
synchronised: NVRTC compiles and cubin loads, cuDNN plans, Inductor and Triton compiles), total_s
(build_s + fuse_s + first_s: construction to the first output) and next_ms (the fastest of three
later calls, so the first call's extra cost is visible), how many blocks fuse() fused and how many of
them ran unfused (a CUDA refusal, warned at the first call). The parent counts the *.fbcubin files the
process wrote (fuseblock's distinct compiled programs; none on the CPU backend) and Inductor's graphs.
Eager and fuse run for every model first, the compiled variants after them while --budget-s lasts
(a case is skipped when the estimate of its two processes, from the last measured ones, would end
past it). Writes OUT/first_call.json and OUT/first_call.png; prints a table last.
"""
from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
VARIANTS = ["eager", "fuse", "torch.compile", "torch.compile(fuse)"]
# A process's time before one of its kind was measured (seconds): import, build, a whole-model compile.
FIRST_GUESS_S = {"eager": 30.0, "fuse": 60.0, "compile": 150.0}
CACHE_VARS = ("FUSEBLOCK_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "CUDA_CACHE_PATH")


def child(case: dict) -> dict:
    """One process's measurement of one (model, variant): runs in the child (--child)."""
    t_import = time.perf_counter()
    import torch

    sys.path.insert(0, HERE)
    import fuseblock.torch as fbt
    import model_zoo
    from model_zoo import output_of, to_device
    zoo = model_zoo.models(case["size"])
    (model_zoo.monai_nets if case["model"].startswith("monai") else model_zoo.diffusers).load()  # its library
    import_s = time.perf_counter() - t_import
    device, dtype, variant = case["device"], getattr(torch, case["dtype"]), case["variant"]
    torch.backends.cudnn.benchmark = case["cudnn_benchmark"]
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    make, inputs = zoo[case["model"]]
    with torch.no_grad():
        sync()
        t0 = time.perf_counter()
        torch.manual_seed(0)
        model = make().eval().to(device=device, dtype=dtype)
        xs = to_device(inputs(), device, dtype)
        sync()
        t1 = time.perf_counter()
        fused = 0
        if "fuse" in variant:
            fused = len(fbt.fuse(model).fused)
        t2 = time.perf_counter()
        fn = model
        if variant.startswith("torch.compile"):
            import torch._dynamo
            if case["compile_backend"] == "inductor":
                fn = torch.compile(model, dynamic=False)
            else:
                fn = torch.compile(model, backend=case["compile_backend"], dynamic=False)
        with warnings.catch_warnings(record=True) as caught:  # a block CUDA cannot run says so here
            warnings.simplefilter("always")
            y = output_of(fn(*xs))
            sync()
        t3 = time.perf_counter()
        later = []
        for _ in range(3):
            s = time.perf_counter()
            fn(*xs)
            sync()
            later.append(time.perf_counter() - s)
    out = {"import_s": import_s, "build_s": t1 - t0, "fuse_s": t2 - t1, "first_s": t3 - t2, "total_s": t3 - t0,
           "next_ms": 1e3 * min(later), "fused_blocks": fused, "output_shape": list(y.shape),
           "blocks_run_unfused": len({str(w.message) for w in caught if "runs unfused" in str(w.message)}),
           "output_finite": bool(torch.isfinite(y).all())}
    if variant.startswith("torch.compile"):
        from torch._dynamo.utils import counters
        out["graphs"] = counters["stats"]["unique_graphs"]
        out["graph_breaks"] = sum(counters["graph_break"].values())
        out["fx_graph_cache_hits"] = counters["inductor"]["fxgraph_cache_hit"]
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def count_files(folder: str, pattern: str) -> int:
    return len(glob.glob(os.path.join(folder, "**", pattern), recursive=True))


def run_process(case: dict, caches: dict, timeout_s: float) -> dict:
    """case in a new Python process with the given cache folders; its report, the files it wrote."""
    env = {k: v for k, v in os.environ.items() if k not in CACHE_VARS}
    env.update(caches)
    cubins = count_files(caches["FUSEBLOCK_CACHE_DIR"], "*.fbcubin")
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(case)], env=env,
                           capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s (the time budget)", "process_s": timeout_s}
    row = {"process_s": round(time.perf_counter() - t0, 2)}
    last = p.stdout.strip().splitlines()[-1:] if p.stdout.strip() else []
    if p.returncode != 0 or not last or not last[0].startswith("{"):
        tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
        return {**row, "error": f"rc={p.returncode}: {tail[:240]}"}
    row.update(json.loads(last[0]))
    row["fbcubins_written"] = count_files(caches["FUSEBLOCK_CACHE_DIR"], "*.fbcubin") - cubins
    row["inductor_cache_files"] = count_files(caches["TORCHINDUCTOR_CACHE_DIR"], "*")
    return row


class Budget:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.deadline = time.time() + seconds
        self.estimate = dict(FIRST_GUESS_S)

    def left(self) -> float:
        return self.deadline - time.time()

    @staticmethod
    def kind(variant: str) -> str:
        """Both compiled variants share one estimate: the last whole-model compile measured."""
        return "compile" if variant.startswith("torch.compile") else variant

    def needs(self, variant: str) -> float:
        return 2 * self.estimate[self.kind(variant)]  # a cold and a warm process

    def fits(self, variant: str) -> bool:
        return self.left() > self.needs(variant)


def run_case(model: str, variant: str, args, budget: Budget) -> dict:
    entry = {"model": model, "variant": variant, "dtype": args.dtype}
    if not budget.fits(variant):
        entry["skipped"] = (f"time budget (--budget-s {budget.seconds:.0f}: {budget.left():.0f} s left, "
                            f"~{budget.needs(variant):.0f} s needed)")
        return entry
    case = {"model": model, "variant": variant, "dtype": args.dtype, "device": args.device, "size": args.size,
            "cudnn_benchmark": args.cudnn_benchmark, "compile_backend": args.compile_backend}
    with tempfile.TemporaryDirectory(prefix="fb-first-call-") as tmp:
        caches = {"FUSEBLOCK_CACHE_DIR": os.path.join(tmp, "fuseblock"),
                  "TORCHINDUCTOR_CACHE_DIR": os.path.join(tmp, "inductor"),
                  "TRITON_CACHE_DIR": os.path.join(tmp, "triton"), "CUDA_CACHE_PATH": os.path.join(tmp, "nv")}
        for d in caches.values():
            os.makedirs(d)
        for run in ("cold", "warm"):
            entry[run] = run_process(case, caches, max(budget.left(), 1.0))
            if "error" in entry[run]:
                break
    if "process_s" in entry.get("cold", {}):
        budget.estimate[budget.kind(variant)] = entry["cold"]["process_s"]
    return entry


def print_table(results: dict) -> None:
    print(f"\n== first call: {results['device']}, {results['date']}, torch {results['torch']}, "
          f"{results['settings']['dtype']} ==")
    print("settings: " + ", ".join(f"{k}={v}" for k, v in results["settings"].items()))
    print("cold: empty fuseblock/Inductor/Triton caches; warm: a second process on the caches the cold one left.")
    print("total = build + fuse + first call (construction to the first output, seconds); "
          "programs = *.fbcubin files written")
    print(f"{'model':<31} {'variant':<20} {'cold s':>8} {'(first)':>8} {'warm s':>8} {'(first)':>8} {'fuse s':>7} "
          f"{'next ms':>9} {'programs':>8} {'fused':>5} {'import s':>8}  note")
    for e in results["cases"]:
        cold, warm = e.get("cold", {}), e.get("warm", {})
        f = lambda r, k, fmt: format(r[k], fmt) if k in r else "-"  # noqa: E731
        note = e.get("skipped") or cold.get("error") or warm.get("error") or ""
        if "graphs" in cold:
            note += f"[{cold['graphs']} graph(s), {cold['graph_breaks']} break(s)]"
        if cold.get("blocks_run_unfused"):
            note += f" {cold['blocks_run_unfused']} fused block(s) ran unfused (a CUDA refusal)"
        if cold and "error" not in cold and not cold.get("output_finite", True):
            note += " NON-FINITE OUTPUT"
        programs = f"{f(cold, 'fbcubins_written', 'd')}/{f(warm, 'fbcubins_written', 'd')}"
        print(f"{e['model']:<31} {e['variant']:<20} {f(cold, 'total_s', '.2f'):>8} {f(cold, 'first_s', '.2f'):>8} "
              f"{f(warm, 'total_s', '.2f'):>8} {f(warm, 'first_s', '.2f'):>8} {f(cold, 'fuse_s', '.2f'):>7} "
              f"{f(warm, 'next_ms', '.2f'):>9} {programs:>8} {f(cold, 'fused_blocks', 'd'):>5} "
              f"{f(cold, 'import_s', '.1f'):>8}  {note}")
    print("programs: cold/warm (a warm process that writes programs did not find them in the cache)")


def plot(results: dict, path: str) -> str:
    sys.path.insert(0, HERE)
    from charts import bar_chart
    models = list(dict.fromkeys(e["model"] for e in results["cases"]))
    series = {}
    for v in VARIANTS:
        for run in ("cold", "warm"):
            by_model = {e["model"]: e.get(run, {}).get("total_s") for e in results["cases"] if e["variant"] == v}
            values = [by_model.get(m) for m in models]
            if any(values):
                series[f"{v} {run}"] = values
    return bar_chart(path, [m.split("-", 1)[-1] for m in models], series, "construction to first output (s)",
                     f"first call, {results['device']}, {results['date']}, torch {results['torch']}")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".")
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny models on the CPU")
    ap.add_argument("--only", nargs="*", help="model names (bench/model_zoo.py)")
    ap.add_argument("--variants", nargs="*", choices=VARIANTS, help="default all four")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--budget-s", type=float, default=420.0, help="skip cases that would end later than this")
    ap.add_argument("--no-cudnn-benchmark", dest="cudnn_benchmark", action="store_false",
                    help="PyTorch's default (bench/models.py turns cudnn.benchmark on, so does this by default)")
    ap.add_argument("--compile-backend", default="inductor", help="torch.compile's backend (eager: the smoke test)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.device = "cpu" if args.cpu_smoke else "cuda"
    args.size = "smoke" if args.cpu_smoke else "full"
    args.variants = args.variants or VARIANTS
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))), flush=True)
        return 0
    import torch
    sys.path.insert(0, HERE)
    from model_zoo import models
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("first_call.py needs a CUDA GPU (or --cpu-smoke)")
    names = list(models(args.size))
    unknown = set(args.only or []) - set(names)
    if unknown:
        sys.exit(f"unknown model(s) {sorted(unknown)}; the models are {names}")
    names = [n for n in names if not args.only or n in args.only]
    t0 = time.time()
    budget = Budget(args.budget_s)
    results = {"device": torch.cuda.get_device_name() if args.device == "cuda" else "CPU",
               "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "torch": torch.__version__,
               "settings": {"dtype": args.dtype, "mode": "eval, torch.no_grad()",
                            "cudnn.benchmark": args.cudnn_benchmark, "tf32": True,
                            "compile": f"torch.compile(model, dynamic=False), backend {args.compile_backend}",
                            "fresh caches": "+".join(CACHE_VARS)},
               "cases": []}
    # The cheap variants of every model first: fuseblock's cost for each model fits the budget.
    order = [(m, v) for v in args.variants if not v.startswith("torch.compile") for m in names]
    order += [(m, v) for m in names for v in args.variants if v.startswith("torch.compile")]
    for model, variant in order:
        entry = run_case(model, variant, args, budget)
        results["cases"].append(entry)
        print(json.dumps(entry), flush=True)
    results["cases"].sort(key=lambda e: (names.index(e["model"]), VARIANTS.index(e["variant"])))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "first_call.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(plot(results, os.path.join(args.out, "first_call.png")))
    print_table(results)
    failed = [e for e in results["cases"] if "error" in e.get("cold", {}) or "error" in e.get("warm", {})]
    print(f"({time.time() - t0:.0f} s; {len(failed)} case(s) failed)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
