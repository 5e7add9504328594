"""fuse() never changes what a model computes (issue 21): properties over generated models. Random
small models of nested Sequentials (conv, GroupNorm, activations, dropout) are fused; then random
hooks and random edits are applied after fuse(), and the fused model must give the unfused
model's output on fresh random inputs with NaN injected (eval; train with the same generator
state). Also: conv subclasses, hooks present at fuse() time, numpy constants in a traced forward,
a forward whose default-argument trace fails, torch.jit.script."""
from __future__ import annotations

import copy
import random
import warnings

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import fuseblock.torch as fbt  # noqa: E402

ACTIVATIONS = [nn.SiLU, nn.ReLU, nn.GELU, nn.Tanh, lambda: nn.LeakyReLU(0.2), nn.Identity, nn.Sigmoid]


def random_block(rng, c_in, c_out):
    """conv -> GN -> [act/dropout]*, as one Sequential or split over nested ones (MONAI's shape)."""
    mods = [nn.Conv2d(c_in, c_out, rng.choice([1, 3]), padding=rng.choice([0, 1])), nn.GroupNorm(2, c_out)]
    mods += [rng.choice(ACTIVATIONS)() for _ in range(rng.randint(0, 2))]
    if rng.random() < 0.5:
        mods.insert(rng.randint(2, len(mods)), nn.Dropout(rng.choice([0.0, 0.3])))
    cut = rng.randint(1, len(mods))
    return nn.Sequential(mods[0], nn.Sequential(*mods[1:])) if rng.random() < 0.5 else nn.Sequential(*mods[:cut],
                                                                                                   *mods[cut:])


def random_model(rng):
    c = [3] + [rng.choice([4, 6]) for _ in range(rng.randint(1, 3))]
    return nn.Sequential(*[random_block(rng, a, b) for a, b in zip(c, c[1:])], nn.Conv2d(c[-1], 2, 1))


def fresh_input(seed, nan=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 7, 6, generator=g)
    if nan:
        x.view(-1)[torch.randint(0, x.numel(), (1,), generator=g)] = float("nan")
    return x


def same(fused, model, x, train=False):
    """The fused and unfused models' outputs, equal up to float32 rounding and NaN in the same places.
    In train mode with the same generator state; fuseblock's dropout masks are its own, so there
    every dropout's p is 0 for the call (p is read at every call: that is tested too)."""
    drops = [m for net in (fused, model) for m in net.modules() if type(m) is nn.Dropout] if train else []
    kept = [d.p for d in drops]
    for m in (fused, model):
        m.train(train)
    for d in drops:
        d.p = 0.0
    try:
        with torch.no_grad():
            torch.manual_seed(11)
            y = fused(x)
            torch.manual_seed(11)
            want = model(x)
    finally:
        for d, p in zip(drops, kept):
            d.p = p
    torch.testing.assert_close(y, want, rtol=2e-5, atol=2e-5, equal_nan=True)


def leaves(model, kind):
    return [(p, m) for p, m in model.named_modules() if isinstance(m, kind)]


def edit(rng, model, fused, log):
    """One random edit made to both models at the same place (fresh modules seeded alike)."""
    what = rng.choice(["replace_act", "append", "hook", "pre_hook", "container_hook", "attribute", "lora",
                       "global_hook"])
    log.append(what)
    seqs = [p for p, m in model.named_modules() if isinstance(m, nn.Sequential) and len(m)]
    path = rng.choice(seqs)
    a, b = model.get_submodule(path), fused.get_submodule(path)
    if what == "replace_act":
        i = rng.randrange(len(a))
        a[i], b[i] = nn.Tanh(), nn.Tanh()
    elif what == "append" and path != "":
        a.append(nn.Sigmoid())
        b.append(nn.Sigmoid())
    elif what in ("hook", "pre_hook"):
        p, _ = rng.choice(leaves(model, (nn.Conv2d, nn.GroupNorm)))
        for m in (model, fused):
            mod = m.get_submodule(p)
            if what == "hook":
                mod.register_forward_hook(lambda _m, _a, y: y * 0.5)
            else:
                mod.register_forward_pre_hook(lambda _m, args: (args[0] + 1.0,))
    elif what == "container_hook":
        for m in (a, b):
            m.register_forward_hook(lambda _m, _a, y: y - 0.25)
    elif what == "attribute":
        p, _ = rng.choice(leaves(model, nn.GroupNorm) + leaves(model, nn.Conv2d))
        for m in (model, fused):
            mod = m.get_submodule(p)
            if isinstance(mod, nn.GroupNorm):
                mod.eps = 0.5
            else:
                mod.dilation = (2, 2)
                mod.padding = (2, 2) if mod.kernel_size[0] == 3 else mod.padding
    elif what == "lora":
        p, conv = rng.choice(leaves(model, nn.Conv2d))
        parent, _, name = p.rpartition(".")
        for m in (model, fused):
            setattr(m.get_submodule(parent), name, Scaled(m.get_submodule(p)))
    elif what == "global_hook":
        return nn.modules.module.register_module_forward_hook(lambda _m, _a, y: y)
    return None


class Scaled(nn.Module):
    """A LoRA-like wrapper: the wrapped conv's output scaled."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x) * 1.5


@pytest.mark.parametrize("seed", range(12))
def test_random_models_with_random_edits_after_fuse_compute_what_unfused_does(seed):
    rng = random.Random(seed)
    torch.manual_seed(seed)
    model = random_model(rng).eval()
    fused = copy.deepcopy(model)
    report = fbt.fuse(fused)
    assert report.fused, str(report)
    same(fused, model, fresh_input(seed))
    log, handles = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(3):
            handles.append(edit(rng, model, fused, log))
            same(fused, model, fresh_input(100 * seed + k))
            same(fused, model, fresh_input(100 * seed + k + 50), train=True)
        for h in handles:
            if h is not None:
                h.remove()
        same(fused, model, fresh_input(7 * seed))
    assert report.notes or log == [], (log, str(report))


def test_a_change_after_fuse_is_said_once_and_replanned():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), nn.SiLU(), nn.ReLU()).eval()
    fused = copy.deepcopy(model)
    report = fbt.fuse(fused)
    model[2] = fused[2] = nn.Tanh()
    x = fresh_input(1)
    with pytest.warns(UserWarning, match="modules of <model> were replaced"):
        same(fused, model, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once: the new plan is fresh
        same(fused, model, fresh_input(2))
    assert any("fused again" in n for n in report.notes), str(report)
    assert "tanh" in fused.forward.steps[0]._spec(False)  # the new plan fuses the new module


def test_hooked_inner_containers_are_not_flattened_and_their_hooks_run():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.GroupNorm(2, 4), nn.SiLU()),
                          nn.Sequential(nn.Conv2d(4, 4, 3), nn.GroupNorm(2, 4), nn.ReLU())).eval()
    seen = []
    model[1].register_forward_hook(lambda m, a, y: seen.append("adn") or y * 2)
    model[2].register_forward_pre_hook(lambda m, a: seen.append("pre") or None)
    fused = copy.deepcopy(model)
    report = fbt.fuse(fused)
    assert "which has hooks" in report.left["0"], str(report)
    assert [e.block.names for e in report.fused] == [["2.0", "2.1", "2.2"]], str(report)
    same(fused, model, fresh_input(3))
    assert seen == ["adn", "pre"] * 2


class WeightStandardized(nn.Conv2d):
    def _conv_forward(self, x, weight, bias):
        w = (weight - weight.mean(dim=(1, 2, 3), keepdim=True)) / (weight.std(dim=(1, 2, 3), keepdim=True) + 1e-5)
        return super()._conv_forward(x, w, bias)


class OnlyInit(nn.Conv2d):
    def __init__(self, c_in, c_out):
        super().__init__(c_in, c_out, 3, padding=1)
    kind = "plain data"


class Mixin:
    def forward(self, x):
        return nn.Conv2d.forward(self, x) * 3


class MixedIn(Mixin, nn.Conv2d):
    pass


@pytest.mark.parametrize("conv_class,fuses", [(WeightStandardized, False), (OnlyInit, True), (MixedIn, False)])
def test_conv_subclasses_fuse_only_when_they_override_nothing_but_init(conv_class, fuses):
    torch.manual_seed(0)
    conv = conv_class(3, 4) if conv_class is OnlyInit else conv_class(3, 4, 3, padding=1)
    model = nn.Sequential(conv, nn.GroupNorm(2, 4), nn.SiLU()).eval()
    fused = copy.deepcopy(model)
    report = fbt.fuse(fused)
    assert bool(report.fused) == fuses, str(report)
    if not fuses:
        method = "_conv_forward" if conv_class is WeightStandardized else "forward"
        assert f"overrides {'Mixin' if conv_class is MixedIn else conv_class.__name__}.{method}" in report.left["0"]
    same(fused, model, fresh_input(4))


class Scaled2(nn.Module):
    """A traced forward dividing by a numpy scalar (diffusers' output_scale_factor=np.sqrt(2.0))."""

    def __init__(self):
        super().__init__()
        import numpy as np
        self.conv, self.norm, self.scale = nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), np.sqrt(np.float64(2.0))

    def forward(self, x, scale_twice=False):
        y = torch.relu(self.norm(self.conv(x)))
        return y / self.scale / (self.scale if scale_twice else 1.0)


def test_numpy_constants_in_a_traced_forward():
    pytest.importorskip("numpy")
    torch.manual_seed(0)
    model = Scaled2().eval()
    fused = copy.deepcopy(model)
    assert fbt.fuse(fused).fused
    same(fused, model, fresh_input(5))
    with torch.no_grad():
        torch.testing.assert_close(fused(fresh_input(6), True), model(fresh_input(6), True), equal_nan=True)


def test_diffusers_score_sde_blocks_run_fused():
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    model = diffusers.UNet2DModel(sample_size=8, in_channels=3, out_channels=3, layers_per_block=1,
                                  block_out_channels=(32, 32, 32), norm_num_groups=8, attention_head_dim=8,
                                  down_block_types=("SkipDownBlock2D", "AttnSkipDownBlock2D", "DownBlock2D"),
                                  up_block_types=("UpBlock2D", "SkipUpBlock2D", "SkipUpBlock2D")).eval()
    fused = copy.deepcopy(model)
    report = fbt.fuse(fused)
    assert report.fused, str(report)
    x, t = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(8)), torch.tensor([3, 90])
    x[1, 0, 2, 2] = float("nan")
    with torch.no_grad():
        y, want = fused(x, t).sample, model(x, t).sample
    torch.testing.assert_close(y, want, rtol=1e-4, atol=1e-4, equal_nan=True)
    assert not any("failed at its first call" in n for n in report.notes), str(report)
    for block in ("down_blocks.0.", "down_blocks.1.", "up_blocks.1.", "up_blocks.2."):  # the Skip blocks
        assert any(e.block.names[0].startswith(block) for e in report.fused), (block, str(report))


class DefaultsFail(nn.Module):
    """Its default (mode=None) cannot be traced (a Python bool of a traced tensor); mode='plain' can."""

    def __init__(self):
        super().__init__()
        self.conv, self.norm, self.act = nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), nn.SiLU()

    def forward(self, x, mode=None):
        if mode is None and bool(x.sum() > 0):
            x = x * 2
        return self.act(self.norm(self.conv(x)))


def test_a_forward_whose_default_trace_fails_is_traced_for_other_calls():
    torch.manual_seed(0)
    model = DefaultsFail().eval()
    fused = copy.deepcopy(model)
    report = fbt.fuse(fused)
    assert any("other kinds of call are traced" in n for n in report.notes), str(report)
    x = fresh_input(9)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), equal_nan=True)
        torch.testing.assert_close(fused(x, mode="plain"), model(x, mode="plain"), equal_nan=True)
    assert report.fused and any(g is not None for g in fused.forward.graphs.values()), str(report)


def test_jit_script_of_a_fused_model_scripts_it_unfused():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), nn.SiLU()).eval()
    fused = copy.deepcopy(model)
    fbt.fuse(fused)
    with pytest.warns(UserWarning, match="runs the model unfused"):
        scripted = torch.jit.script(fused)
    assert "forward" in fused.__dict__  # the fused model itself stays fused
    x = fresh_input(10)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x), equal_nan=True)


@pytest.mark.parametrize("change", ["replace", "hook", "attribute"])
def test_a_change_after_torch_compile_recompiles_and_runs_what_unfused_does(change):
    """The guard is traced by Dynamo (no graph break, fullgraph=True): a change after compiling fails
    Dynamo's own guards on what the check read, and the recompiled call runs the modules unfused."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), nn.SiLU(), nn.ReLU()).eval()
    fused = copy.deepcopy(model)
    fbt.fuse(fused)
    torch._dynamo.reset()
    compiled = torch.compile(fused, backend="eager", fullgraph=True)
    x = fresh_input(12)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), equal_nan=True)
        for m in (model, fused):
            if change == "replace":
                m[2] = nn.Tanh()
            elif change == "hook":
                m[1].register_forward_hook(lambda _m, _a, y: y * 3)
            else:
                m[1].eps = 0.75
        torch.testing.assert_close(compiled(x), model(x), equal_nan=True)


class LooksUpByChannels(nn.Module):
    """A dict looked up with a traced value: fx raises KeyError: Proxy(...)."""

    def __init__(self):
        super().__init__()
        self.conv, self.norm = nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4)
        self.scales = {3: 2.0}

    def forward(self, x):
        return self.norm(self.conv(x)) * self.scales[x.shape[1]]


def test_fx_internal_errors_are_explained_in_the_report():
    torch.manual_seed(0)
    model = LooksUpByChannels().eval()
    fused = copy.deepcopy(model)
    report = fbt.fuse(fused)
    assert any("KeyError: Proxy(" in n and "as a dict key" in n for n in report.notes), str(report)
    x = fresh_input(13)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), equal_nan=True)
