"""Whole real models for the benchmarks (MONAI and diffusers, random weights): a small config and
an input of the size their users run (`full`) or a tiny one for CPU smoke runs (`smoke`).

models(size) -> {name: (make() -> nn.Module, inputs() -> tuple of CPU tensors, float32 or index)}
"""
from __future__ import annotations

import torch
from torch import nn


class VaeDecode(nn.Module):
    """AutoencoderKL's decode as a module: latents -> image (the pipelines' last step)."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, z):
        return self.vae.decode(z).sample


def output_of(y):
    """The tensor a model returns: diffusers' output classes hold it in .sample."""
    if hasattr(y, "sample"):
        return y.sample
    return y[0] if isinstance(y, (tuple, list)) else y


def _rand(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


class _Library:
    """A library imported at its first use: a process that builds one model (bench/first_call.py) pays the
    import of that model's library only."""

    def __init__(self, name):
        self.name = name

    def load(self):
        import importlib
        return importlib.import_module(self.name)

    def __getattr__(self, attr):
        return getattr(self.load(), attr)


monai_nets, diffusers = _Library("monai.networks.nets"), _Library("diffusers")


def models(size: str = "full"):
    smoke = size == "smoke"
    side3 = 16 if smoke else 96
    vol = lambda: (_rand(1, 1, side3, side3, side3, seed=1),)  # noqa: E731
    groups = 8 if smoke else 32
    chans2 = (32, 64) if smoke else (128, 256, 256, 256)
    n2, side2 = (2, 16) if smoke else (4, 64)
    cond_chans = (32, 64) if smoke else (128, 256, 512)
    cross_dim = 32 if smoke else 512
    n_cond = 1 if smoke else 2
    tokens = 8 if smoke else 77
    vae_chans = (32, 64) if smoke else (128, 256, 512, 512)
    latent = 8 if smoke else 32
    return {
        "monai-SegResNet": (lambda: monai_nets.SegResNet(spatial_dims=3, init_filters=8 if smoke else 16, in_channels=1,
                                              out_channels=2),
                            lambda: (_rand(1, 1, *(3 * [16 if smoke else 128]), seed=1),)),
        "monai-UNet": (lambda: monai_nets.UNet(spatial_dims=3, in_channels=1, out_channels=2,
                                    channels=(8, 16, 32) if smoke else (16, 32, 64, 128, 256),
                                    strides=(2, 2) if smoke else (2, 2, 2, 2), num_res_units=2, dropout=0.1), vol),
        "monai-DynUNet": (lambda: monai_nets.DynUNet(spatial_dims=3, in_channels=1, out_channels=2,
                                          kernel_size=[3] * (3 if smoke else 5), strides=[1] + [2] * (2 if smoke else 4),
                                          upsample_kernel_size=[2] * (2 if smoke else 4), norm_name="instance",
                                          filters=(8, 16, 32) if smoke else (32, 64, 128, 256, 320)), vol),
        "monai-BasicUNet": (lambda: monai_nets.BasicUNet(spatial_dims=3, in_channels=1, out_channels=2,
                                                         dropout=0.1,
                                              features=(8, 8, 16, 32, 64, 8) if smoke else (32, 32, 64, 128, 256, 32)),
                            lambda: (_rand(1, 1, *(3 * [32 if smoke else 96]), seed=1),)),  # 4 halvings: 32 at least
        "diffusers-UNet2DModel": (
            lambda: diffusers.UNet2DModel(sample_size=side2, in_channels=3, out_channels=3,
                                          layers_per_block=1 if smoke else 2,
                                block_out_channels=chans2, norm_num_groups=groups,
                                down_block_types=("DownBlock2D",) * len(chans2) if smoke else
                                ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D",) * len(chans2) if smoke else
                                ("UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D")),
            lambda: (_rand(n2, 3, side2, side2, seed=2), torch.tensor([10] * n2))),
        "diffusers-UNet2DConditionModel": (
            lambda: diffusers.UNet2DConditionModel(sample_size=side2, in_channels=4, out_channels=4,
                                         layers_per_block=1 if smoke else 2, block_out_channels=cond_chans,
                                         norm_num_groups=groups, cross_attention_dim=cross_dim,
                                         attention_head_dim=4 if smoke else 8,
                                         down_block_types=("CrossAttnDownBlock2D",) * (len(cond_chans) - 1) + ("DownBlock2D",),
                                         up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (len(cond_chans) - 1)),
            lambda: (_rand(n_cond, 4, side2, side2, seed=3), torch.tensor([10] * n_cond),
                     _rand(n_cond, tokens, cross_dim, seed=4))),
        "diffusers-AutoencoderKL-decode": (
            lambda: VaeDecode(diffusers.AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=vae_chans,
                                            layers_per_block=1 if smoke else 2, latent_channels=4,
                                            norm_num_groups=groups,
                                            down_block_types=("DownEncoderBlock2D",) * len(vae_chans),
                                            up_block_types=("UpDecoderBlock2D",) * len(vae_chans))),
            lambda: (_rand(1, 4, latent, latent, seed=5),)),
    }


def to_device(inputs, device, dtype):
    """Float inputs in the model's dtype; index tensors (timesteps) as they are."""
    return tuple(t.to(device, dtype) if t.is_floating_point() else t.to(device) for t in inputs)
