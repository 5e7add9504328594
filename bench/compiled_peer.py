"""torch.compile as a benchmark peer, measured as a user runs it, and checked to have run.

One compiled object per case: a fresh dynamo state (torch._dynamo.reset()), dynamic=False, a
module in one memory format, warm-up until no new graph compiles, and a check that a compiled
region really ran (the profiler shows dynamo's "Torch-Compiled Region" around every call of
compiled code). Without these, many blocks compiled in one process go through one code object
(the wrapper dynamo puts around every module call): after the first change of shape its sizes
become symbolic (automatic dynamic shapes), and past dynamo's recompile limit (8 graphs) every
later call runs eager with only a log warning. docs/benchmarks.md ("Why torch.compile ran at
eager speed") shows it.
"""
from __future__ import annotations

import time

import torch
import torch._dynamo
import torch._inductor.metrics
from torch._dynamo.utils import counters
from torch.profiler import ProfilerActivity, profile

MODES = ("default", "max-autotune-no-cudagraphs", "max-autotune")
MAX_WARMUP_ROUNDS = 8


class CompileFellBack(RuntimeError):
    """The compiled peer did not run compiled code: its time would be eager's under another name."""


def settings(modes) -> dict:
    """What the peers ran with, for the output and the JSON."""
    return {
        "torch": torch.__version__,
        "cudnn.benchmark": torch.backends.cudnn.benchmark,
        "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "compile_modes": list(modes),
        "dynamic": False,
        "fresh_dynamo_state_per_case": True,
        "recompile_limit": torch._dynamo.config.recompile_limit,
        "eager": "the same modules, no torch.compile",
    }


def graphs_compiled() -> int:
    return counters["stats"]["unique_graphs"]


def compiled_region_ran(call) -> bool:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        call()
    return any(e.name.startswith("Torch-Compiled Region") for e in prof.events())


def step_call(fn, mode: str):
    """fn as the timing loop calls it: with CUDA graphs (mode max-autotune) each call starts a new
    step, so a replay may overwrite the last output (the loop keeps none)."""
    if mode != "max-autotune":
        return fn
    mark = torch.compiler.cudagraph_mark_step_begin

    def call(*args):
        mark()
        return fn(*args)
    return call


def compile_checked(module, mode: str, calls, backend: str = "inductor"):
    """torch.compile(module, mode) in a fresh dynamo state, warmed up by running every calls[i](fn)
    (one per setting the case times: eval, train) until a whole round compiles no new graph.
    Returns (fn, stats); raises CompileFellBack if a setting runs no compiled region. backend
    "eager" (dynamo alone, no Inductor: the smoke tests' quick check of the harness) takes no mode."""
    torch._dynamo.reset()
    counters.clear()
    torch._inductor.metrics.reset()
    if backend == "inductor":
        compiled = torch.compile(module, mode=None if mode == "default" else mode, dynamic=False)
    else:
        compiled = torch.compile(module, backend=backend, dynamic=False)
    fn = step_call(compiled, mode)
    t0 = time.perf_counter()
    seen = []
    for _ in range(MAX_WARMUP_ROUNDS):
        for call in calls:
            call(fn)
        seen.append(graphs_compiled())
        if len(seen) >= 2 and seen[-1] == seen[-2]:
            break
    else:
        raise CompileFellBack(f"still compiling new graphs after {MAX_WARMUP_ROUNDS} rounds: {seen}")
    stats = {"mode": mode, "backend": backend, "compile_s": round(time.perf_counter() - t0, 2), "graphs": seen[-1],
             "graph_breaks": sum(counters["graph_break"].values()),
             "inductor_kernels": torch._inductor.metrics.generated_kernel_count,
             "fx_graph_cache_hits": counters["inductor"]["fxgraph_cache_hit"]}
    verify_compiled(fn, calls, stats)
    return fn, stats


def verify_compiled(fn, calls, stats) -> None:
    """Raises CompileFellBack unless each setting runs compiled code without compiling again. Run
    it after timing too: a recompile there would have timed eager or a new graph."""
    if stats["graphs"] == 0:
        raise CompileFellBack("dynamo compiled no graph")
    for i, call in enumerate(calls):
        if not compiled_region_ran(lambda: call(fn)):
            raise CompileFellBack(f"setting {i}: no Torch-Compiled Region ran, dynamo fell back to eager "
                                  "(TORCH_LOGS=recompiles says why)")
    if graphs_compiled() != stats["graphs"]:
        raise CompileFellBack(f"recompiled after warm-up ({stats['graphs']} -> {graphs_compiled()} graphs)")
