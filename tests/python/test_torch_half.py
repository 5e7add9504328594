"""fuseblock.torch in bfloat16 and float16: the op, Block and ModelNew take half-precision tensors
and modules (.to(torch.bfloat16)), against PyTorch eager's own computation in that dtype and
against float64; and the block forms of MONAI and diffusers (InstanceNorm, PReLU, dropout inside
the chain, the per-(sample, channel) add) through Block.from_modules. CPU here; on a GPU machine
the CUDA cases run too (and accept a clear fuseblock.UserError where no CUDA strategy runs the form)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import fuseblock  # noqa: E402
import fuseblock.torch as fbt  # noqa: E402

HALF = [torch.bfloat16, torch.float16]
TOL = 2e-2  # relative, by norm (design.md 5)


def rel_err(y, want):
    y, want = y.double(), want.double()
    return ((y - want).norm() / want.norm()).item()


def modules(seed=0, chain="silu"):
    torch.manual_seed(seed)
    conv = nn.Conv2d(5, 8, 3, padding=1)
    norm = nn.GroupNorm(4, 8)
    with torch.no_grad():  # non-trivial affine, so it is exercised
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-0.5, 0.5)
    act = {"silu": nn.SiLU(), "gelu": nn.GELU(), "prelu": nn.PReLU(8, init=0.1)}[chain]
    return conv, norm, act, nn.Dropout(0.25)


def eager(conv, norm, act, x, add=None):
    y = conv(x)
    if add is not None:
        y = y + add[:, :, None, None]
    return act(norm(y))


def rand(shape, seed, lo=-2.0, hi=2.0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) * (hi - lo) + lo).to(dtype)


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("chain", ["silu", "gelu", "prelu"])
def test_eval_matches_eager_in_the_dtype_and_float64(dtype, chain):
    conv, norm, act, drop = modules(1, chain)
    block = fbt.Block.from_modules(conv, norm, act, drop).to(dtype).eval()
    x = rand((3, 5, 7, 6), 2, dtype=dtype)
    with torch.no_grad():
        y = block(x)
        want = eager(conv, norm, act, x)  # eager PyTorch in the same dtype (the modules are bf16/f16 now)
        want64 = eager(*[m.double() for m in (conv, norm, act)], x.double())
        block.to(dtype)
    assert y.dtype == dtype and y.shape == want.shape
    assert want.float().std() > 0.05
    assert rel_err(y, want) <= TOL, rel_err(y, want)
    assert rel_err(y, want64) <= TOL, rel_err(y, want64)


@pytest.mark.parametrize("dtype", HALF)
def test_nan_reaches_the_positions_eager_gives(dtype):
    conv, norm, act, drop = modules(3)
    block = fbt.Block.from_modules(conv, norm, act, drop).to(dtype).eval()
    x = rand((2, 5, 6, 6), 4, dtype=dtype)
    x[1, 2, 3, 3] = float("nan")  # poisons the groups of sample 1 only
    with torch.no_grad():
        y, want = block(x), eager(conv, norm, act, x)
    assert torch.isnan(y[1]).all() and not torch.isnan(y[0]).any()
    assert torch.equal(torch.isnan(y), torch.isnan(want))


@pytest.mark.parametrize("norm_f32", [False, True], ids=["norm_in_dtype", "norm_in_f32"])
@pytest.mark.parametrize("dtype", HALF)
def test_training_dropout_keeps_values_scaled_exactly(dtype, norm_f32):
    p = 0.25
    conv, norm, act, drop = modules(5)
    block = fbt.Block.from_modules(conv, norm, act, drop).to(dtype)
    if norm_f32:
        block.norm.float()  # norms kept in float32 (test_torch_mixed_dtypes.py covers the mixes)
    x = rand((4, 5, 8, 8), 6, dtype=dtype)
    with torch.no_grad():
        y_eval = block.eval()(x)
        torch.manual_seed(9)
        y = block.train()(x)
    assert y.dtype == dtype
    live = y_eval != 0
    kept = live & (y != 0)
    rate = kept.sum().item() / live.sum().item()
    assert abs(rate - (1 - p)) < 0.05
    # x * (1 / (1 - p)) in float32, rounded once to the dtype: PyTorch's dropout in half precision
    scale = torch.tensor(1.0 / torch.tensor(1.0 - p, dtype=torch.float32).item(), dtype=torch.float32)
    assert torch.equal(y[kept], (y_eval[kept].float() * scale).to(dtype))


@pytest.mark.parametrize("dtype", HALF)
def test_model_new_in_half_precision(dtype):
    model = fbt.ModelNew(3, 16, 3, 8, 0.0, 1.0, 0.2).to(dtype).eval()
    x = rand((2, 3, 6, 7, 8), 7, 0.0, 1.0, dtype)
    with torch.no_grad():
        assert (model(x) == 0).all() and model(x).dtype == dtype
        x[1, 0, 2, 2, 2] = float("nan")
        y = model(x)
    assert torch.isnan(y[1]).all() and not torch.isnan(y[0]).any()


def test_mixed_dtypes_are_a_type_error_naming_the_tensor_and_the_fix():
    conv, norm, act, drop = modules(6)
    block = fbt.Block.from_modules(conv, norm, act, drop).eval()
    with pytest.raises(TypeError, match=r"x is torch.bfloat16 but conv.weight is torch.float32.*\.to\(torch.bfloat16\)"):
        block(rand((1, 5, 4, 4), 8, dtype=torch.bfloat16))
    block.to(torch.float16)
    with pytest.raises(TypeError, match=r"x is torch.float32 but conv.weight is torch.float16"):
        block(rand((1, 5, 4, 4), 8))
    with pytest.raises(TypeError, match="float32, bfloat16 or float16"):
        block(rand((1, 5, 4, 4), 8, dtype=torch.float64))


def test_block_from_a_bf16_spec_has_bf16_parameters():
    spec = "input bf16[2, 3, 6, 6]\nconv2d 4 3\ngroup_norm 2\nrelu\nparams seed=3\n"
    block = fbt.Block(spec).eval()
    assert block.conv.weight.dtype == torch.bfloat16
    x = rand((2, 3, 6, 6), 9, dtype=torch.bfloat16)
    with torch.no_grad():
        y = block(x)
    want = fuseblock.Block(spec, training=False).run(x.float().numpy(), device="cpu")
    assert y.dtype == torch.bfloat16 and torch.equal(y.float(), torch.from_numpy(want))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_instance_norm_prelu_and_dropout_inside_the_chain(dtype):
    """MONAI's ADN order: conv -> InstanceNorm (affine off) -> Dropout -> PReLU."""
    torch.manual_seed(10)
    conv, norm, drop, act = nn.Conv3d(2, 6, 3, padding=1), nn.InstanceNorm3d(6), nn.Dropout(0.3), nn.PReLU(6)
    block = fbt.Block.from_modules(conv, norm, drop, act).to(dtype).eval()
    x = rand((2, 2, 4, 5, 6), 11, dtype=dtype)
    with torch.no_grad():
        y, want = block(x), act(drop(norm(conv(x))))
    tol = 1e-5 if dtype == torch.float32 else TOL
    assert rel_err(y, want) <= tol
    with torch.no_grad():
        y_eval = y
        torch.manual_seed(1)
        y = block.train()(x)
    kept = y != 0
    assert 0.5 < kept.float().mean().item() < 0.9
    # PReLU after the dropout: the kept values are PReLU(x / (1 - p)), which is PReLU(x) / (1 - p)
    torch.testing.assert_close(y[kept].float(), y_eval[kept].float() / 0.7, rtol=tol * 2, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dropout_inside_the_chain_draws_a_fresh_mask_each_call(dtype):
    """As nn.Dropout: each training-mode call draws a new mask from torch's generator, and
    torch.manual_seed repeats it, wherever the dropout stands in the chain."""
    conv, norm, act, drop = modules(16)
    block = fbt.Block.from_modules(conv, norm, drop, act).to(dtype).train()
    x = rand((2, 5, 6, 6), 17, dtype=dtype)
    with torch.no_grad():
        torch.manual_seed(3)
        first, second = block(x), block(x)
        torch.manual_seed(3)
        again = block(x)
    assert not torch.equal(first == 0, second == 0)
    assert torch.equal(first, again)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_channel_add_matches_the_eager_time_embedding(dtype):
    conv, norm, act, _ = modules(12)
    block = fbt.Block.from_modules(conv, norm, act).to(dtype).eval()
    x = rand((3, 5, 6, 6), 13, dtype=dtype)
    temb = rand((3, 8), 14, -3, 3, dtype=dtype)
    with torch.no_grad():
        y, want = block(x, channel_add=temb), eager(conv, norm, act, x, temb)
        plain = block(x)
    tol = 1e-5 if dtype == torch.float32 else TOL
    assert rel_err(y, want) <= tol and rel_err(plain, want) > 0.05


cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda_only
@pytest.mark.parametrize("dtype", HALF)
def test_cuda_half_runs_or_says_why(dtype):
    """A half-precision block on CUDA runs on sm_80 and later (store_once: cuDNN's conv, or the
    igemm engine where cuDNN cannot load) and matches the CPU backend; an older GPU raises
    fuseblock.UserError saying why: never a crash or a wrong answer."""
    conv, norm, act, drop = modules(15)
    block = fbt.Block.from_modules(conv, norm, act, drop).to(dtype).eval()
    x = rand((2, 5, 8, 8), 16, dtype=dtype)
    with torch.no_grad():
        want = block(x)
        try:
            got = block.cuda()(x.cuda())
        except fuseblock.UserError as e:
            assert torch.cuda.get_device_capability()[0] < 8, f"store_once should run this block: {e}"
            assert "CUDA" in str(e) or "sm_80" in str(e)
            return
    assert got.dtype == dtype
    assert rel_err(got.cpu(), want) <= TOL
