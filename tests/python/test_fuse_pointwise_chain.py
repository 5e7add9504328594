"""Pointwise ops that join a fused chain (nn.ELU, nn.Mish, MONAI's Mish, nn.Identity, F.leaky_relu,
F.elu, F.mish): random chains of them after conv -> GroupNorm fuse whole, and the fused output
equals the unfused model's, NaN positions included."""
from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import fuseblock.torch as fbt  # noqa: E402


def _modules(rng):
    acts = [lambda: nn.ELU(rng.uniform(-1.0, 2.0)), nn.Mish, nn.Identity, lambda: nn.LeakyReLU(rng.uniform(0, 0.5))]
    try:
        from monai.networks.blocks.activation import Mish as MonaiMish
        acts.append(MonaiMish)
    except ImportError:
        pass
    return [rng.choice(acts)() for _ in range(rng.randint(1, 4))]


class _Functional(nn.Module):
    def __init__(self, slope, alpha):
        super().__init__()
        self.conv, self.norm, self.slope, self.alpha = nn.Conv2d(3, 8, 3), nn.GroupNorm(4, 8), slope, alpha

    def forward(self, x):
        return F.mish(F.elu(F.leaky_relu(self.norm(self.conv(x)), self.slope), alpha=self.alpha))


@pytest.mark.parametrize("seed", range(8))
def test_random_chains_fuse_whole_and_match(seed):
    rng = random.Random(seed)
    torch.manual_seed(seed)
    if seed % 2:
        model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(4, 8), *_modules(rng)).eval()
        length = len(model)
    else:
        model = _Functional(rng.uniform(-0.5, 0.5), rng.uniform(0.1, 2.0)).eval()
        length = 5
    x = torch.randn(2, 3, 9, 7) * rng.uniform(0.5, 4)
    x[0, 1, 2, 3] = float("nan")
    with torch.no_grad():
        want = model(x)
        report = fbt.fuse(model)
        assert len(report.fused) == 1, str(report)
        assert len(report.fused[0].block.names) == length, str(report)
        calls = []
        report.fused[0].block.register_forward_hook(lambda *a: calls.append(1))
        got = model(x)
    assert calls, "the block did not run fused"
    assert torch.equal(torch.isnan(got), torch.isnan(want))
    finite = ~torch.isnan(want)
    assert torch.allclose(got[finite], want[finite], rtol=1e-4, atol=1e-5)
