"""Mixed dtypes through fuse() and the torch op (issue 20 d2, issue 21 d3): a bfloat16/float16 conv
followed by a GroupNorm/InstanceNorm kept in float32 (eager runs it: F.group_norm computes in float32
and returns the input's dtype) runs fused with float32 norm parameters, output dtype as eager's; every
other mix runs what eager runs (the modules, with a one-time warning) or raises eager's own error, never
fuseblock's TypeError. Property tests over random conv / norm parameter / input dtypes, set before or
after fuse(), on Sequentials and fx-traced forwards. CPU here; CUDA too on a GPU machine."""
from __future__ import annotations

import copy
import random
import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import fuseblock._fused_block as fused_block_module  # noqa: E402
import fuseblock.torch as fbt  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
DTYPES = [torch.float32, torch.bfloat16, torch.float16]
HALF = (torch.bfloat16, torch.float16)
TOL = {torch.float32: 1e-5, torch.bfloat16: 2e-2, torch.float16: 2e-2}  # relative, by norm (design.md 5)


def rel_err(y, want):
    y, want = y.double().nan_to_num(), want.double().nan_to_num()
    return ((y - want).norm() / want.norm().clamp_min(1e-30)).item()


def eager_accepts(conv_dtype, norm_dtype, x_dtype) -> bool:
    """What eager PyTorch runs (probed on torch 2.15, CPU): the conv in the input's dtype, the norm's
    parameters in the input's dtype or float32 after a 16-bit input."""
    return conv_dtype == x_dtype and (norm_dtype == x_dtype or (norm_dtype == torch.float32 and x_dtype in HALF))


class Traced(nn.Module):
    """A forward fuse() traces with fx (not a Sequential)."""

    def __init__(self, conv, norm, act):
        super().__init__()
        self.conv, self.norm, self.act = conv, norm, act

    def forward(self, x):
        return self.act(self.norm(self.conv(x))) * 0.5


def random_model(rng: random.Random):
    dims = rng.choice([1, 2, 3])
    conv_t = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
    cin, cout = rng.randint(1, 5), rng.choice([4, 6, 8])
    conv = conv_t(cin, cout, rng.choice([1, 3]), padding=rng.choice([0, 1]), bias=rng.random() < 0.8)
    if rng.random() < 0.6:
        norm = nn.GroupNorm(rng.choice([g for g in (1, 2, cout) if cout % g == 0]), cout, affine=rng.random() < 0.9)
    else:
        norm = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}[dims](cout, affine=True)
    if norm.affine:
        with torch.no_grad():  # a non-trivial affine, so the parameters' dtype matters
            norm.weight.uniform_(0.5, 2.0)
            norm.bias.uniform_(-0.5, 0.5)
    act = rng.choice([nn.SiLU(), nn.ReLU(), nn.GELU(), nn.Tanh()])
    if rng.random() < 0.5:
        model = nn.Sequential(conv, norm, act, nn.Dropout(0.2))
    else:
        model = Traced(conv, norm, act)
    shape = [rng.randint(1, 3), cin] + [rng.randint(5, 8) for _ in range(dims)]
    return model, conv, norm, shape


def set_dtypes(conv, norm, conv_dtype, norm_dtype):
    conv.to(conv_dtype)
    norm.to(norm_dtype)


class OpCalls:
    """Counts the fused block's calls of the op's body (forward_eager), so a test knows the block ran
    fused rather than falling back to its modules."""

    def __init__(self, monkeypatch):
        self.n = 0
        real = fused_block_module.forward_eager

        def counting(*args, **kwargs):
            self.n += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(fused_block_module, "forward_eager", counting)


def run(model, x):
    try:
        with torch.no_grad():
            return model(x), None
    except Exception as e:  # noqa: BLE001 - the property compares what eager and fused raise
        return None, e


@pytest.mark.parametrize("seed", range(40))
def test_random_dtype_mixes_run_as_eager_fused_where_supported(seed, monkeypatch):
    rng = random.Random(seed)
    model, conv, norm, shape = random_model(rng)
    conv_dtype, norm_dtype, x_dtype = (rng.choice(DTYPES) for _ in range(3))
    if seed % 4 == 0:  # the common case, drawn often: a 16-bit input and conv, the norm in float32
        x_dtype = conv_dtype = rng.choice(HALF)
        norm_dtype = torch.float32
    before = rng.random() < 0.5  # dtypes set before fuse() (the report judges them) or after (each call does)
    model.to(DEVICE).eval()
    if before:
        set_dtypes(conv, norm, conv_dtype, norm_dtype)
    reference = copy.deepcopy(model)
    report = fbt.fuse(model)
    if not before:
        set_dtypes(conv, norm, conv_dtype, norm_dtype)
        set_dtypes(reference.conv if isinstance(reference, Traced) else reference[0],
                   reference.norm if isinstance(reference, Traced) else reference[1], conv_dtype, norm_dtype)
    if not norm.affine:
        norm_dtype = x_dtype  # no parameters: only the conv's dtype can clash
    if before and not eager_accepts(conv_dtype, norm_dtype, conv_dtype):
        # A mix no input dtype makes eager run: fuse() leaves it, saying why.
        assert not report.fused and report.left, str(report)
        assert any("dtype" in why or "float" in why for why in report.left.values()), str(report)
    else:
        assert len(report.fused) == 1, str(report)
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(shape, generator=g) * 4 - 2).to(DEVICE, x_dtype)
    x.view(-1)[rng.randrange(x.numel())] = float("nan")  # NaN spreads through its sample's groups as in eager
    calls = OpCalls(monkeypatch)
    want, eager_error = run(reference, x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got, fused_error = run(model, x)
    if eager_error is not None:
        # Eager refuses the mix: the fused model raises eager's own error, not fuseblock's.
        assert fused_error is not None and type(fused_error) is type(eager_error), (eager_error, fused_error)
        assert str(fused_error) == str(eager_error)
        assert not eager_accepts(conv_dtype, norm_dtype, x_dtype)
        return
    assert fused_error is None, f"eager ran, the fused model raised {fused_error!r}"
    assert eager_accepts(conv_dtype, norm_dtype, x_dtype)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert torch.equal(torch.isnan(got), torch.isnan(want))
    if report.fused and DEVICE.type == "cpu":
        assert calls.n == 1, "the block fell back to its modules"
        assert not caught, [str(w.message) for w in caught]
    if calls.n:
        assert rel_err(got, want) <= TOL[x_dtype], rel_err(got, want)
    else:
        assert torch.equal(got.nan_to_num(), want.nan_to_num())  # the modules themselves ran


def mixed_block(dtype, norm_t="group"):
    torch.manual_seed(3)
    conv = nn.Conv2d(4, 8, 3, padding=1)
    norm = nn.GroupNorm(2, 8) if norm_t == "group" else nn.InstanceNorm2d(8, affine=True)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-0.5, 0.5)
    model = nn.Sequential(conv.to(dtype), norm, nn.SiLU()).to(DEVICE).eval()
    return model, (torch.randn(2, 4, 9, 7) * 2).to(DEVICE, dtype)


@pytest.mark.parametrize("norm_t", ["group", "instance"])
@pytest.mark.parametrize("dtype", HALF)
def test_float32_norm_after_a_half_conv_is_fused_and_rounds_once_as_eager(dtype, norm_t, monkeypatch):
    """The float32 parameters are read unrounded: a model whose norm was rounded to the input's dtype
    first gives another answer, and the fused block gives eager's, not that one."""
    model, x = mixed_block(dtype, norm_t)
    rounded = copy.deepcopy(model)
    rounded[1].to(dtype).float()  # the same norm with its parameters rounded to bf16/f16
    with torch.no_grad():
        want, want_rounded = model(x), rounded(x)
        report = fbt.fuse(model)
        calls = OpCalls(monkeypatch)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = model(x)
    assert len(report.fused) == 1, str(report)
    # The op ran and did not fall back (on CUDA: store_once, the strategy that reads float32 norm parameters).
    assert calls.n == 1 and not caught, [str(w.message) for w in caught]
    assert got.dtype == dtype == want.dtype
    assert rel_err(got, want) <= TOL[dtype]
    assert rel_err(got, want) < rel_err(got, want_rounded)


def test_the_op_takes_float32_norm_parameters_and_names_a_mix_it_refuses():
    model, x = mixed_block(torch.bfloat16)
    conv, norm = model[0], model[1]
    spec = fbt.Block.from_modules(conv, norm, nn.SiLU()).spec
    with torch.no_grad():
        y = torch.ops.fuseblock.block_forward(x, conv.weight, conv.bias, norm.weight, norm.bias, None, spec, False,
                                              False)
        assert y.dtype == torch.bfloat16
        for w, b in ((norm.weight.half(), norm.bias.half()), (norm.weight, norm.bias.bfloat16())):
            with pytest.raises(TypeError, match="norm"):
                torch.ops.fuseblock.block_forward(x, conv.weight, conv.bias, w, b, None, spec, False, False)
        with pytest.raises(TypeError, match="conv.weight"):
            torch.ops.fuseblock.block_forward(x.float(), conv.weight, conv.bias, norm.weight.float(),
                                              norm.bias.float(), None, spec, False, False)


def test_fuse_reports_a_float32_conv_with_bfloat16_norm_parameters_as_left():
    """The reverse of "norms kept in float32": eager refuses it ("mixed dtype ... expect parameter to have
    scalar type of Float"), so fuse() leaves it and says why, and the model raises eager's error."""
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(2, 8).bfloat16(), nn.ReLU())
    report = fbt.fuse(model)
    assert not report.fused and "norm.weight is torch.bfloat16" in report.left["0"], str(report)
    with pytest.raises(RuntimeError, match="mixed dtype"):
        model(torch.randn(1, 3, 6, 6))


@pytest.mark.parametrize("dtype", HALF)
def test_under_autocast_the_fused_model_runs_as_eager(dtype):
    """torch.autocast: eager casts the conv to the autocast dtype (and on CUDA runs group_norm in float32);
    the fused block runs its modules there, so output and dtype are eager's exactly."""
    model, _ = mixed_block(torch.float32)
    reference = copy.deepcopy(model)
    fbt.fuse(model)
    x = torch.randn(2, 4, 9, 7, device=DEVICE)
    with torch.no_grad(), torch.autocast(DEVICE.type, dtype=dtype):
        want, got = reference(x), model(x)
    assert got.dtype == want.dtype
    assert torch.equal(got, want)


def test_torch_compile_runs_the_mixed_block_as_the_custom_op():
    model, x = mixed_block(torch.bfloat16)
    with torch.no_grad():
        fbt.fuse(model)
        want = model(x)
        torch._dynamo.reset()
        got = torch.compile(model, fullgraph=True)(x)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_diffusers_unet_in_bf16_with_its_group_norms_kept_in_float32():
    """The setup users run: the model in bfloat16, every GroupNorm back in float32 (with affine values
    that bf16 would round). Its ResnetBlock2D blocks (conv -> + temb -> GroupNorm -> SiLU) fuse and give
    eager's output in eager's dtype."""
    pytest.importorskip("diffusers")
    from diffusers import UNet2DModel

    torch.manual_seed(6)
    model = UNet2DModel(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(32, 64),
                        norm_num_groups=8, down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
    model = model.to(DEVICE, torch.bfloat16).eval()
    for m in model.modules():
        if isinstance(m, nn.GroupNorm):
            m.float()
            with torch.no_grad():
                m.weight.uniform_(0.5, 2.0)
                m.bias.uniform_(-0.5, 0.5)
    reference = copy.deepcopy(model)
    x = torch.randn(2, 3, 16, 16, device=DEVICE, dtype=torch.bfloat16)
    t = torch.tensor([10, 500], device=DEVICE)
    with torch.no_grad():
        want = reference(x, t).sample
        report = fbt.fuse(model)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = model(x, t).sample
    assert report.fused, str(report)
    # On CUDA a block may still run its modules for a form the CUDA path lacks (the per-(sample, channel)
    # add, issue 20 d1), never for the dtypes; on the CPU every fused block runs fused.
    fell_back = [str(w.message) for w in caught if "fuseblock" in str(w.message)]
    assert not (fell_back if DEVICE.type == "cpu" else [m for m in fell_back if "dtype" in m]), fell_back
    assert got.dtype == want.dtype == torch.bfloat16
    assert rel_err(got, want) <= TOL[torch.bfloat16], rel_err(got, want)
