"""Peer benchmark (GPU machine): fuseblock against PyTorch eager, torch.compile and the seed's
Triton ModelNew, in one process, on the problem-83 block (training and eval) and on non-collapsing
chains (SiLU, GELU, minimum 0.5 / clamp 0..0.5).

    python3 bench/peers.py --out OUT      # OUT gets peers.json and peers.png

First correctness against eager PyTorch (strict float32, TF32 off): fresh random inputs, outputs
poisoned through the caching allocator, NaN injection, inputs left unchanged, exact match in
eval mode within tolerance, dropout keep rate and kept values checked statistically in training
mode. Then timing with PyTorch's defaults (TF32 allowed): CUDA events around each forward, warm-up,
median of many runs, the L2 cache flushed by writing a 256 MB buffer before each run. The floor is
measured in the same run: bytes / copy bandwidth and FLOPs / TF32 matmul rate.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback

import torch
import torch.nn as nn

import fuseblock
import fuseblock.torch as fbt

# Problem 83's constructor arguments and input (KernelBench level 2).
P83 = dict(in_channels=3, out_channels=16, kernel_size=3, groups=8, min_value=0.0, max_value=1.0, dropout_p=0.2)
P83_INPUT = (128, 3, 16, 64, 64)


# ---- the reference models (eager PyTorch) --------------------------------------------------


class Model83(nn.Module):
    """KernelBench level-2 problem 83's reference Model (its forward reads min_value and
    max_value as module globals; here they are attributes)."""

    def __init__(self, in_channels, out_channels, kernel_size, groups, min_value, max_value, dropout_p):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size)
        self.norm = nn.GroupNorm(groups, out_channels)
        self.dropout = nn.Dropout(dropout_p)
        self.min_value, self.max_value = min_value, max_value

    def forward(self, x):
        x = self.conv(x)
        x = self.norm(x)
        x = torch.min(x, torch.tensor(self.min_value))
        x = torch.clamp(x, min=self.min_value, max=self.max_value)
        x = self.dropout(x)
        return x


class MinClamp(nn.Module):
    def forward(self, x):
        return torch.clamp(torch.minimum(x, torch.tensor(0.5, device=x.device)), min=0.0, max=0.5)


class ChainModel(nn.Module):
    """Problem 83's conv and GroupNorm with another pointwise chain: real work, no collapse."""

    def __init__(self, chain: nn.Module):
        super().__init__()
        self.conv = nn.Conv3d(P83["in_channels"], P83["out_channels"], P83["kernel_size"])
        self.norm = nn.GroupNorm(P83["groups"], P83["out_channels"])
        self.chain = chain
        self.dropout = nn.Dropout(P83["dropout_p"])

    def forward(self, x):
        return self.dropout(self.chain(self.norm(self.conv(x))))


def fuseblock_chain_ops(name):
    return {"silu": [nn.SiLU()], "gelu": [nn.GELU()],
            "min_clamp": [fbt.Minimum(0.5), fbt.Clamp(min=0.0, max=0.5)]}[name]


class Case:
    def __init__(self, name, chain, training):
        self.name, self.chain, self.training = name, chain, training

    @property
    def collapses(self):
        return self.chain == "p83"

    def make_reference(self):
        if self.chain == "p83":
            return Model83(**P83)
        return ChainModel({"silu": nn.SiLU(), "gelu": nn.GELU(), "min_clamp": MinClamp()}[self.chain])


CASES = [Case("p83_train", "p83", True), Case("p83_eval", "p83", False),
         Case("silu_train", "silu", True), Case("gelu_train", "gelu", True),
         Case("min_clamp_train", "min_clamp", True), Case("silu_eval", "silu", False)]


def make_peers(case, reference, with_compile):
    """name -> callable(x), every peer holding the reference's weights."""
    peers = {"eager": reference}
    if with_compile:
        peers["torch.compile"] = torch.compile(reference)
    if case.chain == "p83":
        import seed_triton  # bench/seed_triton.py: the seed's code, verbatim
        seed = seed_triton.ModelNew(**P83).cuda()
        seed.conv.load_state_dict(reference.conv.state_dict())
        peers["seed Triton"] = seed
        fb = fbt.ModelNew(**P83).cuda()
        fb.load_state_dict(reference.state_dict())
    else:
        fb = fbt.Block.from_modules(reference.conv, reference.norm, *fuseblock_chain_ops(case.chain), reference.dropout)
    peers["fuseblock"] = fb
    for m in peers.values():
        m.train(case.training)
    return peers


# ---- correctness ---------------------------------------------------------------------------


def poison_next_output(numel):
    """Fills a block of the caching allocator with NaN and frees it, so that the next output of
    that size most likely lands on NaN: an element a peer fails to write then shows. Returns the
    block's address, to tell whether the output did land there."""
    t = torch.full((numel,), float("nan"), device="cuda")
    ptr = t.data_ptr()
    del t
    return ptr


def fresh_input(seed, nan_at=None):
    g = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.rand(P83_INPUT, device="cuda", generator=g)  # KernelBench's torch.rand
    if nan_at is not None:
        x[nan_at] = float("nan")
    return x


def same_bits(a, b):
    return torch.equal(a.view(torch.int32), b.view(torch.int32))


def check_peer(case, name, peer, reference, seed):
    """Correctness of one peer against eager PyTorch, in strict float32."""
    out = {}
    p = P83["dropout_p"]
    with torch.no_grad():
        # 1. finite input: output against eager (eval: values; training: mask statistics).
        x = fresh_input(seed)
        x_before = x.clone()
        reference.eval()
        y_eval = reference(x)
        reference.train(case.training)
        poisoned = poison_next_output(y_eval.numel())
        y = peer(x)
        torch.cuda.synchronize()
        out["poison_reached_output"] = y.data_ptr() == poisoned
        out["input_unchanged"] = same_bits(x, x_before)
        out["unwritten_or_nan"] = int(torch.isnan(y).sum())
        if not case.training:
            err = (y - y_eval).abs()
            tol = 1e-4 + 1e-4 * y_eval.abs()
            out["max_abs_err"] = float(err.max())
            out["values_match"] = bool((err <= tol).all())
        else:
            out.update(dropout_statistics(y, y_eval, p))
            y2 = peer(x)
            out["fresh_mask_each_call"] = (not case.collapses) and not torch.equal(y2 == 0, y == 0)
        # 2. NaN injection: PyTorch makes the whole of sample 1 NaN (conv window, then GroupNorm
        # statistics; dropout's x * 0 keeps NaN).
        x = fresh_input(seed + 1, nan_at=(1, 0, 2, 3, 4))
        y_ref = reference(x)
        y = peer(x)
        out["nan_positions_match"] = torch.equal(torch.isnan(y), torch.isnan(y_ref))
        out["nan_sample_all_nan"] = bool(torch.isnan(y[1]).all())
    checks = ["input_unchanged", "nan_positions_match"]
    checks.append("values_match" if not case.training else "dropout_ok")
    out["pass"] = all(out.get(k) for k in checks) and out["unwritten_or_nan"] == 0
    return out


def dropout_statistics(y, y_eval, p):
    """Training output y against the eval output: elements whose eval value is non-zero are
    either dropped (exactly 0) or kept (eval value / (1 - p)); the keep rate is binomial."""
    live = y_eval != 0
    n = int(live.sum())
    if n == 0:  # problem 83: the output is all zeros, nothing to count
        return {"keep_rate": None, "dropout_ok": bool((y == 0).all()), "note": "output all zeros: keep rate n/a"}
    kept = live & (y != 0)
    rate = float(kept.sum()) / n
    sigma = math.sqrt(p * (1 - p) / n)
    scaled = y_eval[kept] / (1 - p)
    kept_ok = bool(((y[kept] - scaled).abs() <= 1e-4 + 1e-4 * scaled.abs()).all())
    rate_ok = abs(rate - (1 - p)) <= 5 * sigma
    return {"keep_rate": rate, "keep_rate_expected": 1 - p, "keep_rate_sigma": sigma,
            "kept_values_ok": kept_ok, "dropout_ok": rate_ok and kept_ok}


# ---- timing --------------------------------------------------------------------------------


class L2Flush:
    def __init__(self, mbytes=256):
        self.buf = torch.empty(mbytes * 2**20 // 4, dtype=torch.float32, device="cuda")

    def __call__(self):
        self.buf.fill_(1.0)


def time_cuda(fn, flush, warmup, runs, budget_s):
    """Median milliseconds of fn() over `runs` (fewer when one run is slow enough that `runs`
    would pass budget_s), each run timed with CUDA events after an L2 flush."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    one = time.perf_counter() - t0
    runs = max(5, min(runs, int(budget_s / max(one, 1e-6))))
    times = []
    for _ in range(runs):
        flush()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return {"median_ms": statistics.median(times), "min_ms": min(times), "runs": runs}


def measure_machine(flush):
    """Copy bandwidth (read + write, 256 MB each way) and TF32 matmul rate, on this GPU now."""
    src = torch.rand(64 * 2**20, device="cuda")
    dst = torch.empty_like(src)
    t = time_cuda(lambda: dst.copy_(src), flush, 3, 20, 5.0)["median_ms"]
    bandwidth = 2 * src.numel() * 4 / (t * 1e-3)
    n = 8192
    a, b = torch.rand(n, n, device="cuda"), torch.rand(n, n, device="cuda")
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    t = time_cuda(lambda: a @ b, flush, 3, 10, 5.0)["median_ms"]
    torch.backends.cuda.matmul.allow_tf32 = old
    return {"copy_bandwidth_GBps": bandwidth / 1e9, "tf32_matmul_TFLOPs": 2 * n**3 / (t * 1e-3) / 1e12}


def floor_ms(case, machine):
    n, c_in, d, h, w = P83_INPUT
    k, c_out = P83["kernel_size"], P83["out_channels"]
    out_numel = n * c_out * (d - k + 1) * (h - k + 1) * (w - k + 1)
    nbytes = 4 * (math.prod(P83_INPUT) + out_numel)
    flops = 0 if case.collapses else 2 * out_numel * c_in * k**3
    bytes_ms = nbytes / (machine["copy_bandwidth_GBps"] * 1e9) * 1e3
    flops_ms = flops / (machine["tf32_matmul_TFLOPs"] * 1e12) * 1e3
    return {"bytes": nbytes, "flops": flops, "bytes_ms": bytes_ms, "flops_ms": flops_ms,
            "floor_ms": max(bytes_ms, flops_ms)}


# ---- report --------------------------------------------------------------------------------


def print_table(results):
    head = f"{'case':<16} {'peer':<14} {'correct':<8} {'median ms':>10} {'vs eager':>9} {'vs compile':>10} {'floor ms':>9} {'floor/time':>10}"
    print(head)
    print("-" * len(head))
    for case, r in results["cases"].items():
        eager = r["peers"].get("eager", {}).get("timing", {}).get("median_ms")
        comp = r["peers"].get("torch.compile", {}).get("timing", {}).get("median_ms")
        floor = r["floor"]["floor_ms"]
        for name, pr in r["peers"].items():
            t = pr.get("timing", {}).get("median_ms")
            ok = "ref" if name == "eager" else ("error" if "error" in pr else ("yes" if pr["check"]["pass"] else "NO"))
            cell = lambda v: f"{v:.3f}" if v else "-"
            ratio = lambda base: f"{base / t:.2f}x" if (t and base) else "-"
            print(f"{case:<16} {name:<14} {ok:<8} {cell(t):>10} {ratio(eager):>9} {ratio(comp):>10} "
                  f"{floor:>9.3f} {(f'{floor / t:.0%}' if t else '-'):>10}")
            if "error" in pr:
                print(f"{'':<16} {'':<14} error: {pr['error'].splitlines()[-1]}")


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cases = list(results["cases"])
    peers = ["eager", "torch.compile", "seed Triton", "fuseblock"]
    fig, ax = plt.subplots(figsize=(max(8, 1.8 * len(cases)), 5))
    width = 0.8 / len(peers)
    for i, peer in enumerate(peers):
        xs, ts = [], []
        for j, case in enumerate(cases):
            t = results["cases"][case]["peers"].get(peer, {}).get("timing", {}).get("median_ms")
            if t:
                xs.append(j + (i - (len(peers) - 1) / 2) * width)
                ts.append(t)
        ax.bar(xs, ts, width, label=peer)
    for j, case in enumerate(cases):
        f = results["cases"][case]["floor"]["floor_ms"]
        ax.hlines(f, j - 0.45, j + 0.45, colors="black", linestyles="dashed", label="floor" if j == 0 else None)
    ax.set_yscale("log")
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels(cases, rotation=15)
    ax.set_ylabel("median time per forward (ms, log scale)")
    ax.set_title(f"{results['device']}, batch {P83_INPUT[0]}, float32 ({results['date']})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


# ---- main ----------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for peers.json and peers.png")
    ap.add_argument("--cases", default=",".join(c.name for c in CASES), help="comma-separated subset")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--budget-s", type=float, default=6.0, help="timing budget per peer and case")
    ap.add_argument("--no-compile", action="store_true", help="leave torch.compile out (it compiles for minutes)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("peers.py needs a CUDA GPU")
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    flush = L2Flush()
    machine = measure_machine(flush)
    results = {"device": torch.cuda.get_device_name(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "torch": torch.__version__, "python": platform.python_version(), "machine": machine,
               "fuseblock_device": fuseblock.resolve_device("auto"), "input_shape": P83_INPUT, "cases": {}}
    try:
        import triton
        results["triton"] = triton.__version__
    except ImportError:
        pass
    print(f"{results['device']}: copy {machine['copy_bandwidth_GBps']:.0f} GB/s, TF32 matmul {machine['tf32_matmul_TFLOPs']:.0f} TFLOP/s")
    wanted = args.cases.split(",")
    for case in [c for c in CASES if c.name in wanted]:
        reference = case.make_reference().cuda()
        peers = make_peers(case, reference, not args.no_compile)
        r = {"floor": floor_ms(case, machine), "training": case.training, "peers": {}}
        for i, (name, peer) in enumerate(peers.items()):
            pr = {}
            try:
                if name != "eager":
                    torch.backends.cudnn.allow_tf32 = False  # strict float32 for the comparison
                    pr["check"] = check_peer(case, name, peer, reference, seed=100 + i)
                torch.backends.cudnn.allow_tf32 = True  # PyTorch's default for the timing
                x = fresh_input(7)
                with torch.no_grad():
                    pr["timing"] = time_cuda(lambda: peer(x), flush, args.warmup, args.runs, args.budget_s)
            except Exception as e:  # a failing peer is reported, and the others still run
                pr["error"] = "".join(traceback.format_exception_only(type(e), e)).strip()
                traceback.print_exc()
            torch.backends.cudnn.allow_tf32 = True
            r["peers"][name] = pr
            print(f"  {case.name} / {name}: {json.dumps(pr)}", flush=True)
        results["cases"][case.name] = r
        del peers, reference
        torch.cuda.empty_cache()
    print()
    print_table(results)
    with open(os.path.join(args.out, "peers.json"), "w") as f:
        json.dump(results, f, indent=2)
    plot(results, os.path.join(args.out, "peers.png"))
    print(f"\nwrote {args.out}/peers.json and {args.out}/peers.png")


if __name__ == "__main__":
    main()
