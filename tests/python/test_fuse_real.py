"""fuse() on the real model classes of MONAI and diffusers, built from small configs with random
weights (no download). Skipped where monai / diffusers are not installed (CI); on the GPU machine
they come from scripts/pack-gpu-wheels.sh."""
from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

import fuseblock.torch as fbt  # noqa: E402


def monai_models():
    nets = pytest.importorskip("monai.networks.nets", reason="monai is not installed")
    x = lambda: torch.rand(1, 1, 16, 16, 16, generator=torch.Generator().manual_seed(1)) * 4 - 2  # noqa: E731
    return {
        "SegResNet": (lambda: nets.SegResNet(spatial_dims=3, init_filters=8, in_channels=1, out_channels=2,
                                             blocks_down=(1, 2), blocks_up=(1,)), lambda: (x(),), 4),
        "UNet": (lambda: nets.UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(4, 8, 16), strides=(2, 2),
                                   num_res_units=1, dropout=0.1), lambda: (x(),), 4),
    }


def diffusers_models():
    diffusers = pytest.importorskip("diffusers", reason="diffusers is not installed")
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    unet = dict(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(32, 64),
                down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                norm_num_groups=8)
    vae = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
               up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(32, 64), layers_per_block=1,
               latent_channels=4, norm_num_groups=8, sample_size=16)
    return {
        "UNet2DModel": (lambda: diffusers.UNet2DModel(**unet),
                        lambda: (torch.randn(2, 3, 16, 16, generator=g(2)), torch.tensor([10, 500])), 8),
        "AutoencoderKL": (lambda: diffusers.AutoencoderKL(**vae),
                          lambda: (torch.randn(1, 3, 16, 16, generator=g(3)),), 10),
    }


def out(y):
    return y.sample if hasattr(y, "sample") else y


def rel_err(y, want):
    y, want = y.double(), want.double()
    return ((y - want).norm() / want.norm()).item()


@pytest.mark.parametrize("name", ["SegResNet", "UNet", "UNet2DModel", "AutoencoderKL"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_real_model_fused_matches_unfused(name, dtype):
    models = monai_models() if name in ("SegResNet", "UNet") else diffusers_models()
    make, inputs, blocks = models[name]
    torch.manual_seed(0)
    model = make().eval()
    fused = copy.deepcopy(model)
    report = fbt.fuse(fused)
    assert len(report.fused) == blocks, str(report)
    assert list(fused.state_dict()) == list(model.state_dict())
    args = [a.to(dtype) if a.is_floating_point() else a for a in inputs()]
    model.to(dtype)
    fused.to(dtype)
    with torch.no_grad():
        y, want = out(fused(*args)), out(model(*args))
        assert rel_err(y, want) <= (1e-5 if dtype == torch.float32 else 2e-2), str(report)
        args[0][0, 0, 2, 3] = float("nan")  # one sample poisoned; the others must stay clean where eager's do
        y, want = out(fused(*args)), out(model(*args))
    assert torch.isnan(want).any()
    assert torch.equal(torch.isnan(y), torch.isnan(want))
