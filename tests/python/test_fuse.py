"""fuseblock.torch.fuse(model) on small models shaped like diffusers' and MONAI's (fuse_models.py):
fused vs unfused outputs in eval mode (float32 tight, bf16 2e-2), NaN positions, dropout in
train mode, state_dict round trips, .to(dtype), training with autograd, and the report."""
from __future__ import annotations

import copy
import math

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import fuseblock.torch as fbt  # noqa: E402
import fuse_models as fm  # noqa: E402


def rel_err(y, want):
    y, want = y.double(), want.double()
    return ((y - want).norm() / want.norm()).item()


def rand(shape, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) * 4 - 2).to(dtype)


# (model maker, inputs maker, how many blocks fuse() must find)
CASES = {
    "resnet_like": (lambda: fm.ResnetLike(), lambda d: (rand((2, 8, 6, 6), 1, d), rand((2, 6), 2, d)), 1),
    "tiny_unet": (lambda: fm.TinyUNet(), lambda d: (rand((2, 3, 8, 8), 3, d), rand((2,), 4, d)), 2),
    "monai_like_unet": (fm.monai_like_unet, lambda d: (rand((2, 1, 8, 8, 8), 5, d),), 2),
    "segresnet_like": (fm.segresnet_like, lambda d: (rand((1, 1, 6, 6, 6), 6, d),), 2),
    "nested_sequentials": (fm.nested_sequentials, lambda d: (rand((3, 4, 17), 7, d),), 1),
    "data_dependent": (lambda: fm.DataDependent(), lambda d: (rand((2, 3, 7, 7), 8, d),), 1),
}


def pair(name, seed=0):
    """(unfused model, fused copy, report), both in eval mode."""
    make, _, _ = CASES[name]
    torch.manual_seed(seed)
    model = make().eval()
    fused = copy.deepcopy(model)
    report = fbt.fuse(fused)
    return model, fused, report


@pytest.mark.parametrize("name", CASES)
def test_fused_matches_unfused_in_float32(name):
    model, fused, report = pair(name)
    assert len(report.fused) == CASES[name][2], str(report)
    inputs = CASES[name][1](torch.float32)
    with torch.no_grad():
        y, want = fused(*inputs), model(*inputs)
    assert rel_err(y, want) <= 1e-5, (rel_err(y, want), str(report))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", CASES)
def test_fused_matches_unfused_in_half_precision(name, dtype):
    model, fused, report = pair(name)
    model.to(dtype)
    fused.to(dtype)
    inputs = CASES[name][1](dtype)
    with torch.no_grad():
        y, want = fused(*inputs), model(*inputs)
    assert y.dtype == dtype
    assert rel_err(y, want) <= 2e-2, rel_err(y, want)


@pytest.mark.parametrize("name", ["resnet_like", "monai_like_unet", "segresnet_like", "nested_sequentials"])
def test_nan_in_the_input_reaches_the_same_positions(name):
    model, fused, _ = pair(name)
    inputs = list(CASES[name][1](torch.float32))
    x = inputs[0]
    x[0, 0, 1] = float("nan")  # sample 0 only
    with torch.no_grad():
        y, want = fused(*inputs), model(*inputs)
    assert torch.isnan(want).any() and not torch.isnan(want[1:]).any()
    assert torch.equal(torch.isnan(y), torch.isnan(want))


def test_the_blocks_really_run_fused():
    """The fused model calls the op: a FusedBlock's output, not its modules', reaches the result
    (checked by counting the op's calls)."""
    model, fused, report = pair("tiny_unet")
    calls = []
    for entry in report.fused:
        entry.block.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        fused(*CASES["tiny_unet"][1](torch.float32))
    assert len(calls) == 2


def test_temb_none_is_traced_again_and_fused():
    """A VAE calls its resnets with temb=None: a call of another kind, traced at its first use."""
    model, fused, report = pair("resnet_like")
    x = rand((2, 8, 6, 6), 9)
    with torch.no_grad():
        for call in (lambda m: m(x, None), lambda m: m(x, temb=None)):
            assert rel_err(call(fused), call(model)) <= 1e-5
    assert any("+ per-(sample, channel) input" not in e.block.extra_repr() for e in report.fused)
    assert not report.notes, report.notes


def test_training_mode_dropout_is_valid():
    """conv -> GroupNorm -> SiLU -> Dropout in train mode (no autograd): each kept value is the
    eval-mode value / (1 - p), the dropped share near p, a fresh mask each call."""
    torch.manual_seed(1)
    p = 0.3
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(4, 8), nn.SiLU(), nn.Dropout(p))
    report = fbt.fuse(model)
    assert len(report.fused) == 1
    x = rand((4, 3, 10, 10), 10)
    with torch.no_grad():
        ref = model.eval()(x)
        model.train()
        y, y2 = model(x), model(x)
    kept = y != 0
    n = y.numel()
    assert abs((1 - kept.float().mean().item()) - p) < 5 * math.sqrt(p * (1 - p) / n)
    scale = torch.tensor(1.0 / torch.tensor(1 - p, dtype=torch.float32).item(), dtype=torch.float32)
    assert torch.equal(y[kept], ref[kept] * scale)
    assert not torch.equal(y != 0, y2 != 0)


def test_training_mode_without_autograd_runs_fused_with_fresh_masks():
    model, fused, report = pair("resnet_like")
    calls = []
    report.fused[0].block.register_forward_hook(lambda *a: calls.append(1))
    fused.train()
    x, t = CASES["resnet_like"][1](torch.float32)
    with torch.no_grad():
        a, b = fused(x, t), fused(x, t)
        ref = model(x, t)
    assert len(calls) == 2 and not torch.equal(a, b) and not torch.equal(a, ref)


def test_a_new_value_every_call_stops_tracing():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.norm = nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4)

        def forward(self, x, scale: float = 1.0):
            return self.norm(self.conv(x)) * scale

    model = Scaled().eval()
    report = fbt.fuse(model)
    x = rand((1, 3, 5, 5), 12)
    with torch.no_grad():
        for i in range(20):
            assert torch.allclose(model(x, scale=float(i)), model.norm(model.conv(x)) * float(i), atol=1e-5)
    assert len(model.forward.graphs) == 16 and any("kinds of call" in n for n in report.notes)


@pytest.mark.parametrize("warm_up", [False, True])
def test_compile_fullgraph_of_a_traced_model(warm_up):
    """torch.compile(fullgraph=True): a kind of call first seen while compiling runs the original
    forward (tracing's exec cannot be compiled); one seen eagerly before runs its fused graph."""
    model, fused, _ = pair("resnet_like")
    x, t = CASES["resnet_like"][1](torch.float32)
    with torch.no_grad():
        if warm_up:
            fused(x, t)  # no_grad is a new kind of call: traced here, eagerly
        y = torch.compile(fused, fullgraph=True, backend="eager")(x, t)
        assert rel_err(y, model(x, t)) <= 1e-5


def test_modules_with_hooks_are_not_fused_and_their_hooks_run():
    """A fused block does not call its modules, so a conv or norm with forward hooks (old-style
    weight_norm computes the weight in a pre-hook) is left, and a hooked activation ends the chain;
    the hooks run as before."""
    torch.manual_seed(0)
    seen = []
    hooked = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), nn.SiLU()).eval()
    hooked[0].register_forward_hook(lambda m, a, y: seen.append("conv"))
    report = fbt.fuse(hooked)
    assert not report.fused and "forward hooks" in report.left["0"], str(report)
    chain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), nn.ReLU(), nn.SiLU()).eval()
    chain[3].register_forward_pre_hook(lambda m, a: seen.append("silu"))
    report = fbt.fuse(chain)
    assert [e.block.names for e in report.fused] == [["0", "1", "2"]], str(report)
    x = rand((2, 3, 6, 6), 20)
    with torch.no_grad():
        hooked(x), chain(x)
    assert seen == ["conv", "silu"]


def test_weight_norm_old_and_new_style_follow_their_weights():
    """torch.nn.utils.weight_norm (a pre-hook sets .weight at each call) is left unfused; the
    parametrization (.weight computed when read) fuses; both follow changes of g and v."""
    def make(style):
        torch.manual_seed(0)  # one model twice (an old-style weight_norm cannot be deep-copied)
        conv = nn.Conv2d(3, 4, 3)
        if style == "old":
            with pytest.warns(FutureWarning):
                conv = nn.utils.weight_norm(conv)
        else:
            conv = nn.utils.parametrizations.weight_norm(conv)
        return nn.Sequential(conv, nn.GroupNorm(2, 4), nn.SiLU()).eval()
    x = rand((2, 3, 6, 6), 21)
    for style in ("old", "new"):
        model, fused = make(style), make(style)
        assert bool(fbt.fuse(fused).fused) == (style == "new")
        with torch.no_grad():
            for m in (model, fused):  # the same change of the magnitude g in both
                g = m[0].weight_g if style == "old" else m[0].parametrizations.weight.original0
                g.mul_(1.5)
            assert rel_err(fused(x), model(x)) <= 1e-5, style


def test_training_with_autograd_runs_the_modules():
    """With autograd recording a training step the op (no backward) steps aside: gradients flow."""
    model, fused, _ = pair("resnet_like")
    fused.train()
    x, t = CASES["resnet_like"][1](torch.float32)
    fused(x, t).sum().backward()
    assert fused.conv1.weight.grad is not None and fused.norm2.weight.grad is not None


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_autograd_without_dropout_runs_the_modules(mode):
    """Blocks without a dropout (SegResNet's) step aside too, in train or eval mode: the gradients
    are the unfused model's, not the op's 'no backward' error."""
    model, fused, _ = pair("segresnet_like")
    getattr(model, mode)(), getattr(fused, mode)()
    x = CASES["segresnet_like"][1](torch.float32)[0]
    fused(x).sum().backward()
    model(x).sum().backward()
    for (name, p), q in zip(fused.named_parameters(), model.parameters()):
        assert p.grad is not None and torch.allclose(p.grad, q.grad, atol=1e-5), name


@pytest.mark.parametrize("needs_grad", ["input", "prelu_slope_only"])
def test_any_tensor_needing_grad_runs_the_modules(needs_grad):
    """Frozen conv and norm, but the input or only a PReLU's slopes require grad: autograd
    records, so the modules run and the gradients are the unfused model's."""
    model, fused, _ = pair("monai_like_unet")
    x = CASES["monai_like_unet"][1](torch.float32)[0]
    for m in (model, fused):
        for name, p in m.named_parameters():
            p.requires_grad_(needs_grad == "prelu_slope_only" and isinstance(m.get_submodule(name.rsplit(".", 1)[0]), nn.PReLU))
    xs = [x.clone().requires_grad_(needs_grad == "input") for _ in range(2)]
    fused(xs[0]).sum().backward()
    model(xs[1]).sum().backward()
    if needs_grad == "input":
        assert torch.allclose(xs[0].grad, xs[1].grad, atol=1e-5)
    grads = [(p.grad, q.grad) for p, q in zip(fused.parameters(), model.parameters()) if q.requires_grad]
    prelus = sum(isinstance(m, nn.PReLU) for m in model.modules())
    assert prelus >= 1 and len(grads) == (0 if needs_grad == "input" else prelus)
    for g, want in grads:
        assert g is not None and torch.allclose(g, want, atol=1e-5)


def test_autocast_runs_the_modules():
    """Under torch.autocast x reaches a block in bf16 while its parameters stay float32: the
    modules run, as unfused, instead of the op refusing the mixed dtypes."""
    model, fused, _ = pair("segresnet_like")
    x = CASES["segresnet_like"][1](torch.float32)[0]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y, want = fused(x), model(x)
    assert y.dtype == want.dtype and torch.equal(y, want)


@pytest.mark.parametrize("name", CASES)
def test_state_dict_is_unchanged_and_loads_both_ways(name):
    model, fused, _ = pair(name)
    assert list(fused.state_dict()) == list(model.state_dict())
    for k, v in model.state_dict().items():
        assert torch.equal(fused.state_dict()[k], v)
    torch.manual_seed(99)  # other weights, loaded into the fused model from an unfused one ...
    other = CASES[name][0]().eval()
    fused.load_state_dict(other.state_dict())
    back = CASES[name][0]().eval()
    back.load_state_dict(fused.state_dict())  # ... and back
    inputs = CASES[name][1](torch.float32)
    with torch.no_grad():
        assert rel_err(fused(*inputs), other(*inputs)) <= 1e-5
        assert torch.equal(back(*inputs), other(*inputs))


def test_runs_span_nested_sequentials():
    """MONAI's Convolution(conv, ADN(N, D, A)) and a run split over two Sequentials: one block each."""
    _, _, report = pair("monai_like_unet")
    assert [e.block.names for e in report.fused] == [[f"{i}.conv", f"{i}.adn.N", f"{i}.adn.D", f"{i}.adn.A"]
                                                     for i in (0, 1)]
    assert "nothing follows it" in report.left["2.conv"]
    _, _, report = pair("nested_sequentials")
    assert [e.block.names for e in report.fused] == [["0.0", "0.1", "1.0", "1.1"]]


def test_report_says_what_was_left_and_why():
    torch.manual_seed(2)
    report = fbt.fuse(fm.Refused().eval())
    assert "groups=2: not supported" in report.left["grouped"]
    assert [e.block.names for e in report.fused] == [["conv", "gn2"]]
    assert "gn2 (GroupNorm): its output is used 2 times" in report.fused[0].stop
    text = str(report)
    assert "1 block(s) fused" in text and "grouped: conv has groups=2" in text


def test_report_of_a_failed_trace_names_the_fallback():
    _, _, report = pair("data_dependent")
    assert any("fx could not trace <model> (DataDependent)" in n and "Sequentials were scanned" in n
               for n in report.notes), report.notes
    assert report.fused[0].how == "Sequential"


def test_nothing_to_fuse():
    model = fm.mlp()
    report = fbt.fuse(model)
    assert not report.fused and not report.left and "forward" not in model.__dict__
    report = fbt.fuse(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))
    assert not report.fused and "not a GroupNorm or InstanceNorm" in report.left["0"]


def test_deepcopy_and_fusing_twice():
    model, fused, report = pair("segresnet_like")
    again = fbt.fuse(fused)
    assert not again.fused  # already fused modules are left alone, and not reported as left
    firsts = {e.block.names[0] for e in report.fused}
    assert not firsts & set(again.left), str(again)
    assert any(f"{len(firsts)} block(s) were fused by an earlier fuse()" in n for n in again.notes), str(again)
    clone = copy.deepcopy(fused)
    x = CASES["segresnet_like"][1](torch.float32)
    with torch.no_grad():
        assert torch.equal(clone(*x), fused(*x))


@pytest.mark.parametrize("name", ["monai_like_unet", "resnet_like", "tiny_unet"])
def test_torch_export_of_a_fused_model(name):
    """torch.export reads the root module's forward.__code__: a fused Sequential's or traced
    module's installed forward must have one, and the exported program computes what eager does."""
    _, fused, _ = pair(name)
    inputs = CASES[name][1](torch.float32)
    with torch.no_grad():
        want = fused(*inputs)
    with torch.no_grad():  # with autograd recording, the blocks run (and export) unfused
        exported = torch.export.export(fused, inputs)
        assert "fuseblock.block_forward" in str(exported.graph)
        torch.testing.assert_close(exported.module()(*inputs), want, rtol=0, atol=0)


def test_tracing_a_new_kind_of_call_leaves_other_threads_alone():
    """fx patches nn.Module.__call__ and __getattr__ for every thread while it traces: a traced
    module's first call of a new kind (here fuse() itself, then train mode) must not turn another
    thread's module calls into fx's 'module is not installed as a submodule' or Proxies."""
    import threading
    other = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU()).eval()
    x = rand((1, 3, 4, 4), 20)
    with torch.no_grad():
        want = other(x)
    stop, errors = threading.Event(), []

    def busy():
        while not stop.is_set():
            try:
                with torch.no_grad():
                    y = other(x)
                assert type(y) is torch.Tensor and torch.equal(y, want), type(y)
            except Exception as e:  # noqa: BLE001 - any failure is the finding
                errors.append(f"{type(e).__name__}: {e}")

    thread = threading.Thread(target=busy)
    thread.start()
    try:
        for seed in range(5):
            _, fused, _ = pair("tiny_unet", seed)
            inputs = CASES["tiny_unet"][1](torch.float32)
            with torch.no_grad():
                fused(*inputs)
                fused.train()(*inputs)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[:3]


def test_a_fused_model_on_the_meta_device_gives_the_unfused_shapes():
    with torch.device("meta"):
        model = fm.TinyUNet().eval()
    inputs = tuple(t.to("meta") for t in CASES["tiny_unet"][1](torch.float32))
    fused = copy.deepcopy(model)
    assert fbt.fuse(fused).fused
    with torch.no_grad():
        y, want = fused(*inputs), model(*inputs)
    assert (y.device.type, y.shape, y.dtype) == ("meta", want.shape, want.dtype)


def test_an_unbatched_input_runs_as_unfused():
    """nn.Conv2d and nn.InstanceNorm2d take an unbatched [C, H, W] input; the fused model must
    too (the op plans [N, C, H, W]), and give what the modules give."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.InstanceNorm2d(8, affine=True), nn.ReLU()).eval()
    fused = copy.deepcopy(model)
    assert fbt.fuse(fused).fused
    x = rand((3, 7, 6), 21)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), rtol=0, atol=0)
        xb = rand((2, 3, 7, 6), 22)  # batched input still runs fused, and agrees
        torch.testing.assert_close(fused(xb), model(xb), rtol=1e-5, atol=1e-5)


def test_pickled_fused_model_runs_after_loading():
    """torch.save of the whole model: compiled graphs are not pickled, they are traced again."""
    import io
    model, fused, _ = pair("tiny_unet")
    inputs = CASES["tiny_unet"][1](torch.float32)
    with torch.no_grad():
        want = fused(*inputs)
    buf = io.BytesIO()
    torch.save(fused, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    with torch.no_grad():
        assert torch.equal(loaded(*inputs), want)


def _shared_twice():
    conv, norm, act = nn.Conv2d(4, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.SiLU()
    return nn.Sequential(conv, norm, act, conv, norm, act)


def _shared_inner_sequential():
    inner = nn.Sequential(nn.GroupNorm(2, 4), nn.ReLU())
    return nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), inner, nn.Conv2d(4, 4, 3, padding=1), inner)


@pytest.mark.parametrize("make", [_shared_twice, _shared_inner_sequential])
def test_a_sequential_that_holds_a_module_twice_runs_it_twice(make):
    """nn.Sequential(conv, norm, act, conv, norm, act) with the same modules: its forward calls
    each entry, repeats included (named_children() would list each module once)."""
    torch.manual_seed(0)
    model = make().eval()
    fused = copy.deepcopy(model)
    fbt.fuse(fused)
    x = rand((2, 4, 6, 6), 20)
    with torch.no_grad():
        y, want = fused(x), model(x)
    assert rel_err(y, want) <= 1e-5


class _ConvOutputAddedToItself(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.norm = nn.Conv2d(4, 4, 3, padding=1), nn.GroupNorm(2, 4)

    def forward(self, x):
        h = self.conv(x)
        return torch.nn.functional.silu(self.norm(h + h))


def test_a_conv_output_added_to_itself_is_left_not_a_crash():
    torch.manual_seed(0)
    model = _ConvOutputAddedToItself().eval()
    fused = copy.deepcopy(model)
    report = fbt.fuse(fused)
    assert not report.fused and "conv" in report.left, str(report)
    x = rand((2, 4, 6, 6), 21)
    with torch.no_grad():
        assert torch.equal(fused(x), model(x))


class _ConvCalledByKeyword(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.norm = nn.Conv2d(4, 4, 3, padding=1), nn.GroupNorm(2, 4)

    def forward(self, x):
        return torch.nn.functional.silu(self.norm(self.conv(input=x)))


def test_a_conv_called_by_keyword_is_fused_or_left_not_a_crash():
    torch.manual_seed(0)
    model = _ConvCalledByKeyword().eval()
    fused = copy.deepcopy(model)
    report = fbt.fuse(fused)
    assert len(report.fused) + len(report.left) == 1, str(report)
    x = rand((2, 4, 6, 6), 22)
    with torch.no_grad():
        assert rel_err(fused(x), model(x)) <= 1e-5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", CASES)
def test_fused_on_cuda_matches_unfused(name):
    """On CUDA each block runs fused where a CUDA strategy runs its form, else unfused with a
    warning; either way the model's result is eager's (strict float32)."""
    import warnings
    model, fused, _ = pair(name)
    model.cuda()
    fused.cuda()
    inputs = [a.cuda() for a in CASES[name][1](torch.float32)]
    old = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y, want = fused(*inputs), model(*inputs)
    finally:
        torch.backends.cudnn.allow_tf32 = old
    assert y.is_cuda and rel_err(y, want) <= 1e-4
