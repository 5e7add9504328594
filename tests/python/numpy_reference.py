"""A float64 numpy reference for small blocks, written from PyTorch's definitions and apart from
fuseblock's code: convolution, GroupNorm, a few pointwise ops, and the dropout mask recomputed
from its definition (Philox4x32-10 at (seed, offset, element index), docs/semantics.md)."""
from __future__ import annotations

import math

import numpy as np


def conv_nd(x, w, b, stride=1, padding=0):
    """PyTorch's ConvNd (groups = 1, dilation 1) in float64, for 1 to 3 spatial dims."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    dims = x.ndim - 2
    pad = [(0, 0), (0, 0)] + [(padding, padding)] * dims
    xp = np.pad(x, pad)
    windows = np.lib.stride_tricks.sliding_window_view(xp, w.shape[2:], axis=tuple(range(2, 2 + dims)))
    windows = windows[(slice(None), slice(None)) + (slice(None, None, stride),) * dims]
    # windows: [N, C_in, out..., k...]; contract C_in and k with w [C_out, C_in, k...]
    letters = "defg"[:dims]
    kernel = "uvw"[:dims]
    y = np.einsum(f"nc{letters}{kernel},oc{kernel}->no{letters}", windows, w)
    if b is not None:
        y += np.asarray(b, np.float64).reshape((1, -1) + (1,) * dims)
    return y


def group_norm(y, groups, weight, bias, eps=1e-5):
    n, c = y.shape[:2]
    g = y.reshape(n, groups, -1)
    mean = g.mean(axis=2, keepdims=True)
    var = g.var(axis=2, keepdims=True)  # biased, as PyTorch
    out = ((g - mean) / np.sqrt(var + eps)).reshape(y.shape)
    shape = (1, c) + (1,) * (y.ndim - 2)
    return out * np.asarray(weight, np.float64).reshape(shape) + np.asarray(bias, np.float64).reshape(shape)


def silu(y):
    return y / (1.0 + np.exp(-y))


def gelu(y):
    erf = np.vectorize(math.erf)
    return 0.5 * y * (1.0 + erf(y / math.sqrt(2.0)))


def minimum(y, v):
    return np.where(np.isnan(y), np.nan, np.minimum(y, v))


def clamp(y, lo, hi):
    return np.minimum(np.maximum(y, lo), hi)


_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
_MASK32 = np.uint64(0xFFFFFFFF)


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 (Salmon et al., SC'11) on uint64 arrays holding 32-bit words."""
    c0, c1, c2, c3 = (np.asarray(v, np.uint64) & _MASK32 for v in (c0, c1, c2, c3))
    k0, k1 = np.uint64(k0) & _MASK32, np.uint64(k1) & _MASK32
    for _ in range(10):
        p0, p1 = _M0 * c0, _M1 * c2
        h0, l0 = p0 >> np.uint64(32), p0 & _MASK32
        h1, l1 = p1 >> np.uint64(32), p1 & _MASK32
        c0, c1, c2, c3 = h1 ^ c1 ^ k0, l1, h0 ^ c3 ^ k1, l0
        k0, k1 = (k0 + _W0) & _MASK32, (k1 + _W1) & _MASK32
    return c0, c1, c2, c3


def dropout_keep_mask(count: int, p: float, seed: int, offset: int) -> np.ndarray:
    """Element i is kept when its 24-bit draw (word i % 4 of Philox at counter (i / 4, offset),
    key seed, shifted right by 8) is below ceil((1 - p) * 2^24)."""
    blocks = np.arange((count + 3) // 4, dtype=np.uint64)
    words = philox4x32_10(blocks, blocks >> np.uint64(32), offset & 0xFFFFFFFF, offset >> 32,
                          seed & 0xFFFFFFFF, seed >> 32)
    draws = np.stack(words, axis=1).reshape(-1)[:count] >> np.uint64(8)
    threshold = math.ceil((1.0 - p) * 2**24)
    return draws < np.uint64(threshold)


def dropout_scale(p: float) -> np.float32:
    """float32(1 / float32(1 - p)), as PyTorch's fused dropout computes its scale."""
    return np.float32(1.0 / float(np.float32(1.0 - p)))
