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
    x2 = lambda: (torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2)),)  # noqa: E731
    return {
        "SegResNet": (lambda: nets.SegResNet(spatial_dims=3, init_filters=8, in_channels=1, out_channels=2,
                                             blocks_down=(1, 2), blocks_up=(1,)), lambda: (x(),), 4),
        "UNet": (lambda: nets.UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(4, 8, 16), strides=(2, 2),
                                   num_res_units=1, dropout=0.1), lambda: (x(),), 4),
        # Not named by the issue: instance norm with LeakyReLU and dropout (BasicUNet, 2-D), the
        # nnU-Net form (DynUNet), PReLU after dropout in 2-D (UNet, NDA order), HighResNet's
        # dilated convs with GroupNorm(1).
        "BasicUNet2d": (lambda: nets.BasicUNet(spatial_dims=2, in_channels=3, out_channels=2,
                                               features=(4, 4, 8, 8, 16, 4), dropout=0.1), x2, 18),
        "DynUNet": (lambda: nets.DynUNet(3, 1, 2, kernel_size=[3, 3, 3], strides=[1, 2, 2], upsample_kernel_size=[2, 2]),
                    lambda: (x(),), 10),
        "UNet2d": (lambda: nets.UNet(spatial_dims=2, in_channels=3, out_channels=2, channels=(4, 8, 16), strides=(2, 2),
                                     num_res_units=2, dropout=0.2), x2, 7),
        "HighResNet": (lambda: nets.HighResNet(spatial_dims=3, in_channels=1, out_channels=2,
                                               norm_type=("group", {"num_groups": 1})), lambda: (x(),), 12),
    }


class Unquantized(torch.nn.Module):
    """A VQModel's encoder and decoder without the codebook lookup between them: the nearest code
    is a discontinuous choice, so bf16's last-bit differences may pick another code."""

    def __init__(self, vq):
        super().__init__()
        self.vq = vq

    def forward(self, x):
        return self.vq.decode(self.vq.encode(x).latents, force_not_quantize=True).sample


def diffusers_models():
    diffusers = pytest.importorskip("diffusers", reason="diffusers is not installed")
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    unet = dict(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(32, 64),
                down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                norm_num_groups=8)
    vae = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
               up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(32, 64), layers_per_block=1,
               latent_channels=4, norm_num_groups=8, sample_size=16)
    cond = dict(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32, norm_num_groups=8,
                attention_head_dim=8)
    vq = {k: v for k, v in vae.items() if k != "sample_size"}
    return {
        "UNet2DModel": (lambda: diffusers.UNet2DModel(**unet),
                        lambda: (torch.randn(2, 3, 16, 16, generator=g(2)), torch.tensor([10, 500])), 8),
        "AutoencoderKL": (lambda: diffusers.AutoencoderKL(**vae),
                          lambda: (torch.randn(1, 3, 16, 16, generator=g(3)),), 10),
        # Not named by the issue: the text-conditioned UNet (temb added between conv1 and norm2,
        # cross-attention between the blocks), the VQ autoencoder, a UNet whose temb is a
        # scale-shift (not a plain add: conv1 -> norm1 only).
        "UNet2DConditionModel": (lambda: diffusers.UNet2DConditionModel(**cond),
                                 lambda: (torch.randn(2, 4, 16, 16, generator=g(4)), torch.tensor([3, 700]),
                                          torch.randn(2, 5, 32, generator=g(5))), 8),
        "VQModel": (lambda: Unquantized(diffusers.VQModel(**vq, num_vq_embeddings=16)),
                    lambda: (torch.randn(1, 3, 16, 16, generator=g(3)),), 10),
        "UNet2DModel_scale_shift": (lambda: diffusers.UNet2DModel(**dict(unet, resnet_time_scale_shift="scale_shift")),
                                    lambda: (torch.randn(2, 3, 16, 16, generator=g(2)), torch.tensor([10, 500])), 8),
    }


MONAI = ["SegResNet", "UNet", "BasicUNet2d", "DynUNet", "UNet2d", "HighResNet"]
DIFFUSERS = ["UNet2DModel", "AutoencoderKL", "UNet2DConditionModel", "VQModel", "UNet2DModel_scale_shift"]


def out(y):
    return y.sample if hasattr(y, "sample") else y


def rel_err(y, want):
    y, want = y.double(), want.double()
    return ((y - want).norm() / want.norm()).item()


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", MONAI + DIFFUSERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_real_model_fused_matches_unfused(name, dtype, device):
    models = monai_models() if name in MONAI else diffusers_models()
    make, inputs, blocks = models[name]
    torch.manual_seed(0)
    model = make().eval()
    fused = copy.deepcopy(model)
    report = fbt.fuse(fused)
    assert len(report.fused) == blocks, str(report)
    assert list(fused.state_dict()) == list(model.state_dict())
    args = [(a.to(dtype) if a.is_floating_point() else a).to(device) for a in inputs()]
    model.to(device, dtype)
    fused.to(device, dtype)
    # fp32 on CUDA: eager's cuDNN convs run TF32 (PyTorch's default), and so may the fused blocks.
    tol = 2e-2 if dtype != torch.float32 else (1e-5 if device == "cpu" else 3e-3)
    with torch.no_grad():
        y, want = out(fused(*args)), out(model(*args))
        assert rel_err(y, want) <= tol, str(report)
        args[0][0, 0, 2, 3] = float("nan")  # one sample poisoned; the others must stay clean where eager's do
        y, want = out(fused(*args)), out(model(*args))
    assert torch.isnan(want).any()
    assert torch.equal(torch.isnan(y), torch.isnan(want))


def chain_with_dropout_as(block, x, other, dropout_as):
    """The block's ops run eagerly, its dropout replaced by `dropout_as(y, p)`."""
    conv, norm, chain = block._parts
    y = conv(x)
    if other is not None:
        y = y + other
    y = norm(y)
    for src, fn in chain:
        y = dropout_as(y, src.p) if type(src) is torch.nn.Dropout else fn(y)
    return y


TRAIN_MODELS = {"UNet": monai_models, "BasicUNet2d": monai_models, "UNet2DModel_dropout": diffusers_models}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(TRAIN_MODELS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_real_model_train_mode_dropout_is_valid(name, dtype, device):
    """Train mode: each fused block's output element is the block's eager value with that element
    kept (scaled by 1/(1-p)) or dropped (zero through the ops after the dropout), and about p of
    them are dropped."""
    if name == "UNet2DModel_dropout":
        diffusers = pytest.importorskip("diffusers", reason="diffusers is not installed")
        make = lambda: diffusers.UNet2DModel(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1,  # noqa: E731
                                             block_out_channels=(32, 64), norm_num_groups=8, dropout=0.2,
                                             down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
        inputs = lambda: (torch.randn(2, 3, 16, 16), torch.tensor([10, 500]))  # noqa: E731
    else:
        make, inputs, _ = TRAIN_MODELS[name]()[name]
    torch.manual_seed(0)
    model = make().to(device, dtype).train()
    report = fbt.fuse(model)
    blocks = [e.block for e in report.fused if e.block._dropout() is not None]
    assert blocks, str(report)
    seen = []
    hooks = [b.register_forward_hook(lambda b, args, y: seen.append((b, args, y))) for b in blocks]
    args = [(a.to(dtype) if a.is_floating_point() else a).to(device) for a in inputs()]
    with torch.no_grad():
        model(*args)
        for h in hooks:
            h.remove()
        dropped = decided = 0
        rtol, atol = (1e-4, 1e-5) if dtype == torch.float32 else (3e-2, 1e-2)
        if device == "cuda" and dtype == torch.float32:  # TF32 in both
            rtol, atol = 2e-2, 5e-3
        for block, call_args, y in seen:
            x, other = call_args[0], (call_args[1] if len(call_args) > 1 else None)
            keep = chain_with_dropout_as(block, x, other, lambda v, p: v / (1 - p)).float()
            drop = chain_with_dropout_as(block, x, other, lambda v, p: torch.zeros_like(v)).float()
            y = y.float()
            is_keep = (y - keep).abs() <= atol + rtol * keep.abs()
            is_drop = (y - drop).abs() <= atol + rtol * drop.abs()
            assert bool((is_keep | is_drop).all()), f"{block}: an element is neither kept nor dropped"
            clear = (keep - drop).abs() > 2 * (atol + rtol * torch.maximum(keep.abs(), drop.abs()))
            dropped += int((is_drop & clear).sum())
            decided += int(clear.sum())
            p = block._dropout().p
    assert decided > 1000
    sigma = (p * (1 - p) / decided) ** 0.5
    assert abs(dropped / decided - p) <= 5 * sigma + 1e-3, (dropped, decided, p)
