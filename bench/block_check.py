"""Correctness of one peer's output against a float64 run of the same modules in eval mode, in the
mode the peer is timed in: eval by relative error (by norm, over the finite reference values);
training by the kept values (each kept element is the eval value / (1 - p)) and the keep rate;
in both, NaN at the same positions as PyTorch with one NaN injected into the input."""
from __future__ import annotations

import math

import torch

TOLERANCE = {torch.float32: 3e-3, torch.bfloat16: 2e-2, torch.float16: 2e-2}
# Beyond 5 sigma, elements within rounding of 0 that a ReLU sends either way: 1% of the keep rate.
KEEP_RATE_SLACK = 0.01


def relative_error(got, want):
    """Relative error by norm over the finite values of want; inf where NaN positions differ."""
    got, want = got.double(), want.double()
    if not torch.equal(torch.isnan(got), torch.isnan(want)):
        return math.inf
    finite = torch.isfinite(want)
    d = (got - want)[finite]
    return (d.norm() / want[finite].norm().clamp_min(1e-30)).item()


def with_one_nan(x):
    """x with flat element 7 of its logical (NCHW) order set to NaN, in x's memory format."""
    bad = x.clone()
    bad[tuple(int(i) for i in torch.unravel_index(torch.tensor(7), x.shape))] = float("nan")
    return bad


def check(peer, reference64, x, training: bool, dropout_p: float) -> dict:
    """peer(x) in its mode against reference64 (float64, eval). A NaN in sample 0 makes whole
    groups NaN through the conv and the norm (a batch of one has no finite value left to compare,
    hence two runs)."""
    out = {}
    with torch.no_grad():
        y = peer(x).double()
        want = reference64(x.double())
        if training:
            kept = (y != 0) & (want != 0)
            live = int((want != 0).sum())
            rate = int(kept.sum()) / max(live, 1)
            sigma = math.sqrt(dropout_p * (1 - dropout_p) / max(live, 1))
            out["keep_rate"] = rate
            out["keep_rate_ok"] = abs(rate - (1 - dropout_p)) <= 5 * sigma + KEEP_RATE_SLACK
            out["rel_error"] = relative_error(y[kept], want[kept] / (1 - dropout_p))
        else:
            out["rel_error"] = relative_error(y, want)
        bad = with_one_nan(x)
        out["nan_positions_match"] = torch.equal(torch.isnan(peer(bad)), torch.isnan(reference64(bad.double())))
    out["correct"] = (out["rel_error"] <= TOLERANCE[x.dtype] and out["nan_positions_match"]
                      and out.get("keep_rate_ok", True))
    return out
