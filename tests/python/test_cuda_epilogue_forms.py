"""prelu and the per-(sample, channel) add on CUDA through the torch op (store_once): the op on
CUDA tensors against the same op on CPU tensors (the CPU backend, the reference) in every dtype,
NaN/Inf in the add and the input, the dropout mask drawn from one stream on both; and fuse() on
CUDA fusing diffusers' ResnetBlock2D and MONAI's PReLU blocks instead of running them unfused.
Skipped without a CUDA GPU."""
from __future__ import annotations

import copy
import warnings

import pytest

torch = pytest.importorskip("torch")

import fuseblock.torch as fbt  # noqa: E402
from fuseblock._torch_op import forward_eager  # noqa: E402

cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

SPEC = ("input f32[2, 8, 12, 10]\nconv2d 16 3 padding=1\nadd_per_sample_channel\ngroup_norm 4 eps=1e-6\n"
        "prelu num_parameters=16\ndropout p=0.25 seed=3\nsilu\nprelu\n")
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def op_inputs(dtype, seed):
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape, lo=-1.0, hi=1.0: (torch.rand(*shape, generator=g) * (hi - lo) + lo).to(dtype)  # noqa: E731
    x = r(2, 8, 12, 10, lo=-2, hi=2)
    x[0, 1, 2, 3] = float("nan")  # through the conv and the norm: all of sample 0 is NaN
    add = r(2, 16, lo=-3, hi=3)
    # Sample 1: groups 0, 2 and 3 (channels 0-3, 8-11, 12-15) go NaN, group 1 stays finite.
    add[1, 2], add[1, 9], add[1, 15] = float("nan"), float("inf"), float("-inf")
    slopes = [r(16, lo=-1.5, hi=1.5), r(1, lo=-1.5, hi=1.5)]
    return x, r(16, 8, 3, 3, lo=-0.2, hi=0.2), r(16), r(16, lo=0.5, hi=1.5), r(16), add, slopes


@cuda_only
@pytest.mark.parametrize("dtype", DTYPES)
def test_op_with_the_add_and_prelu_on_cuda_matches_the_cpu(dtype):
    x, w, b, gamma, beta, add, slopes = op_inputs(dtype, 11)
    seed = torch.tensor([1234, 7], dtype=torch.int64)  # one stream: the same mask on both devices
    args = lambda dev: [t.to(dev) for t in (x, w, b, gamma, beta)] + [seed, SPEC, True, False]  # noqa: E731
    want = forward_eager(*args("cpu"), add, slopes)
    got = forward_eager(*args("cuda"), add.cuda(), [s.cuda() for s in slopes]).cpu()
    assert got.dtype == dtype
    assert torch.equal(torch.isnan(got), torch.isnan(want))
    assert torch.isnan(want).any() and not torch.isnan(want).all()
    assert torch.equal(got == 0, want == 0)  # the dropped elements: silu(0) * prelu = 0 on both
    finite = torch.isfinite(want)
    tol = {torch.float32: 5e-3, torch.bfloat16: 3e-2, torch.float16: 2e-2}[dtype]  # TF32 on CUDA in float32
    err = (got[finite].double() - want[finite].double()).norm() / want[finite].double().norm()
    assert err <= tol


@cuda_only
def test_op_on_cuda_checks_the_add_against_the_spec():
    x, w, b, gamma, beta, add, slopes = [t.cuda() if torch.is_tensor(t) else [s.cuda() for s in t]
                                         for t in op_inputs(torch.float32, 12)]
    with pytest.raises(ValueError, match=r"channel_add has shape \[2, 3\].*\[2, 16\]"):
        forward_eager(x, w, b, gamma, beta, None, SPEC, False, False, add[:, :3], slopes)
    import fuseblock
    with pytest.raises(fuseblock.UserError, match="none was given"):
        forward_eager(x, w, b, gamma, beta, None, SPEC, False, False, None, slopes)


def fused_on_cuda(make, inputs, dtype):
    """(fused output, eager output, the 'runs unfused' warnings) of a model on CUDA."""
    torch.manual_seed(0)
    model = make().eval()
    fused = copy.deepcopy(model)
    report = fbt.fuse(fused)
    assert report.fused, str(report)
    model.to("cuda", dtype)
    fused.to("cuda", dtype)
    args = [(a.to(dtype) if a.is_floating_point() else a).cuda() for a in inputs()]
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        y, want = fused(*args), model(*args)
    unfused = [str(w.message) for w in caught if "runs unfused" in str(w.message)]
    y, want = (t.sample if hasattr(t, "sample") else t for t in (y, want))
    return y, want, unfused


MODELS = {"diffusers": ["UNet2DModel", "UNet2DConditionModel"], "monai": ["UNet", "UNet2d", "HighResNet"]}


@cuda_only
@pytest.mark.parametrize("name", MODELS["diffusers"] + MODELS["monai"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fuse_runs_resnet_and_prelu_blocks_fused_on_cuda(name, dtype):
    import test_fuse_real as real
    models = real.diffusers_models() if name in MODELS["diffusers"] else real.monai_models()
    make, inputs, _ = models[name]
    y, want, unfused = fused_on_cuda(make, inputs, dtype)
    forms = [m for m in unfused if "prelu" in m or "add_per_sample_channel" in m]
    assert not forms, "\n".join(forms)
    if dtype == torch.float32:  # nothing else keeps these models' blocks unfused in float32
        assert not unfused, "\n".join(unfused)
    tol = 3e-3 if dtype == torch.float32 else 2e-2  # TF32 convs in both (PyTorch's default)
    assert real.rel_err(y, want) <= tol
