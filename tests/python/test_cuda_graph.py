"""A fuse()d model in a CUDA graph (issue 20, deliverable 4): captured with torch.cuda.graph and
replayed, and under torch.compile(mode="reduce-overhead") (Inductor's CUDA graph trees). In training
mode every replay must draw a fresh dropout mask: FusedBlock draws the [seed, offset] with
torch.randint on the device, a kernel the graph records, so each replay writes new values that the
block's kernels read from device memory. Each replay's output must be eager PyTorch's with the mask
that replay drew: the unfused modules in eval mode, times mask / (1 - p). Eval-mode replays must give
eager's output (NaN positions included) and the fused model's own uncaptured output bit for bit.
GPU only: skipped without CUDA."""
from __future__ import annotations

import copy
import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import fuseblock.torch as fbt  # noqa: E402

pytestmark = [pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
              pytest.mark.usefixtures("strict_float32")]  # conftest.py: the references compare tightly
P = 0.3


def two_blocks():
    """(unfused model, its fuse()d copy): two conv -> GroupNorm -> SiLU -> Dropout blocks, so the model's
    output is the second block's and its zeros are that block's mask."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv3d(3, 8, 3, padding=1), nn.GroupNorm(4, 8), nn.SiLU(), nn.Dropout(P),
                          nn.Conv3d(8, 16, 3, padding=1), nn.GroupNorm(8, 16), nn.SiLU(), nn.Dropout(P)).cuda()
    with torch.no_grad():  # a non-trivial affine, so that it is exercised
        for norm in (model[1], model[5]):
            norm.weight.uniform_(0.5, 2.0)
            norm.bias.uniform_(-0.5, 0.5)
    fused = copy.deepcopy(model)
    report = fbt.fuse(fused)
    assert len(report.fused) == 2, str(report)
    return model, fused


def block_pair(model):
    """The two blocks of `model` as fuse()d modules of their own (the fused Sequential's slices would be
    its unfused modules: fuse() gives the Sequential a forward, not new children)."""
    halves = [copy.deepcopy(model[:4]), copy.deepcopy(model[4:])]
    for h in halves:
        assert len(fbt.fuse(h).fused) == 1
    return halves


def rand(shape, seed, lo=-2.0, hi=2.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) * (hi - lo) + lo).cuda()


def capture(fn, static_x):
    """fn(static_x) recorded in a CUDA graph after a warm-up on a side stream (which compiles the
    kernels and builds cuDNN's plans, as PyTorch's CUDA graph docs ask). Returns (graph, outputs)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            fn(static_x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn(static_x)
    return graph, out


def scale():
    """float32(1 / float32(1 - p)): the factor PyTorch's dropout (and fuseblock's) multiplies kept values by."""
    keep = torch.tensor(1.0 - P, dtype=torch.float32).item()
    return torch.tensor(1.0 / keep, dtype=torch.float32).item()


def check_is_eager_with_its_mask(y, eval_ref, what):
    """y is eval_ref with some values dropped: dropped exactly zero, near a share P of them, the kept
    ones eval_ref / (1 - p) to float32 rounding; returns the mask (True: kept)."""
    kept = y != 0
    dropped = 1.0 - kept.float().mean().item()
    sigma = math.sqrt(P * (1 - P) / y.numel())
    assert abs(dropped - P) < 6 * sigma, f"{what}: dropped share {dropped:.4f}, expected {P} +- {6 * sigma:.4f}"
    assert torch.count_nonzero(eval_ref == 0) == 0, f"{what}: the eval reference has zeros; the mask is ambiguous"
    want = torch.where(kept, eval_ref * scale(), torch.zeros_like(eval_ref))
    torch.testing.assert_close(y, want, rtol=1e-4, atol=1e-5,
                               msg=lambda m: f"{what}: not eager's output with the replay's own mask: {m}")
    return kept


def check_masks_differ(masks, what):
    for i in range(len(masks)):
        for j in range(i):
            differ = (masks[i] != masks[j]).float().mean().item()
            # Two independent masks differ at a share 2p(1 - p) = 0.42 of the positions.
            assert differ > 0.2, (f"{what}: masks {j} and {i} differ at {differ:.3f} of the positions: a replay "
                                  "reused a mask (the dropout state was not redrawn inside the graph)")


def test_train_mode_replays_of_a_captured_fused_model_draw_fresh_masks_and_are_eager_with_them():
    model, _ = two_blocks()
    first, second = block_pair(model)
    model.eval()
    x = rand((2, 3, 6, 9, 10), 11)
    with torch.no_grad():
        static_x = x.clone()
        def both(t):
            h = first(t)
            return h, second(h)
        graph, (h, y) = capture(both, static_x)
        masks_h, masks_y = [], []
        for r in range(3):
            graph.replay()
            torch.cuda.synchronize()
            hh, yy = h.clone(), y.clone()
            masks_h.append(check_is_eager_with_its_mask(hh, model[:3](x), f"replay {r}, block 1"))
            # The second block's reference takes the first block's output as this replay drew it.
            masks_y.append(check_is_eager_with_its_mask(yy, model[4:7](hh), f"replay {r}, block 2"))
    check_masks_differ(masks_h, "block 1")
    check_masks_differ(masks_y, "block 2")
    # The two blocks of one replay draw two masks, not one (seed, offset) twice (which would give the same
    # mask at the same flat positions).
    n = masks_h[0].numel()
    check_masks_differ([masks_h[0].flatten(), masks_y[0].flatten()[:n]], "block 1 and block 2 of one replay")


def test_train_mode_replays_of_the_whole_fused_sequential_draw_fresh_masks():
    """The fuse()d Sequential itself (its own forward) captured: replays differ, each at the right rate."""
    _, fused = two_blocks()
    fused.train()
    with torch.no_grad():
        graph, y = capture(fused, rand((2, 3, 6, 9, 10), 12))
        outs = []
        for _ in range(3):
            graph.replay()
            torch.cuda.synchronize()
            outs.append(y.clone())
    masks = []
    for r, o in enumerate(outs):
        kept = o != 0
        dropped = 1.0 - kept.float().mean().item()
        assert abs(dropped - P) < 6 * math.sqrt(P * (1 - P) / o.numel()), f"replay {r}: dropped share {dropped:.4f}"
        assert torch.isfinite(o).all(), f"replay {r}: non-finite output"
        masks.append(kept)
    check_masks_differ(masks, "the fused Sequential")


def test_replays_follow_torch_manual_seed():
    """A replay draws from PyTorch's generator, as eager dropout does under a CUDA graph: seeding it
    before two replays repeats the mask."""
    _, fused = two_blocks()
    fused.train()
    with torch.no_grad():
        graph, y = capture(fused, rand((2, 3, 6, 9, 10), 13))
        outs = []
        for _ in range(2):
            torch.manual_seed(21)
            graph.replay()
            torch.cuda.synchronize()
            outs.append(y.clone())
    assert torch.equal(outs[0], outs[1]), "two replays after torch.manual_seed(21) drew different masks"


def test_eval_mode_replays_equal_eager_and_the_uncaptured_fused_model():
    model, fused = two_blocks()
    model.eval()
    fused.eval()
    with torch.no_grad():
        static_x = rand((2, 3, 6, 9, 10), 14)
        graph, y = capture(fused, static_x)
        for r in range(3):
            x = rand((2, 3, 6, 9, 10), 15 + r)
            if r == 2:
                x[1, 2, 3, 4, 5] = float("nan")  # NaN spreads over its sample, as in eager
                x[0, 0, 0, 0, 0] = float("inf")
            static_x.copy_(x)
            graph.replay()
            torch.cuda.synchronize()
            got, want = y.clone(), model(x)
            assert torch.equal(torch.isnan(got), torch.isnan(want)), f"replay {r}: NaN positions differ from eager"
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5, equal_nan=True,
                                       msg=lambda m, r=r: f"replay {r} against eager: {m}")
            direct = fused(x)
            same = (got == direct) | (torch.isnan(got) & torch.isnan(direct))
            assert same.all(), (f"replay {r}: differs from the same fused model run outside the graph at "
                                f"{int((~same).sum())} positions (expected bit-identical)")


def cudagraph_trees_recorded() -> int:
    """How many CUDA graphs Inductor's CUDA graph trees recorded on the current device (its tree
    manager's roots), or -1 where this PyTorch keeps them elsewhere."""
    from torch._inductor import cudagraph_trees
    manager = cudagraph_trees.get_container(torch.cuda.current_device()).tree_manager
    if manager is None:
        return 0
    roots = getattr(manager, "roots", None)
    return -1 if roots is None else sum(len(nodes) for nodes in roots.values())


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_reduce_overhead_compile_of_the_fused_model(mode):
    """torch.compile(fuse(model), mode="reduce-overhead"): the fused blocks run inside Inductor's CUDA
    graphs (no skip), train-mode calls draw fresh masks that are eager's with them, eval calls equal eager."""
    import torch._inductor.cudagraph_trees
    from torch._dynamo.utils import counters
    model, _ = two_blocks()
    first, _ = block_pair(model)
    model.eval()
    getattr(first, mode)()
    x = rand((2, 3, 6, 9, 10), 16)
    torch._dynamo.reset()
    torch._inductor.cudagraph_trees.reset_cudagraph_trees()  # so that the count below is this test's
    counters.clear()
    compiled = torch.compile(first, mode="reduce-overhead", fullgraph=True)
    outs = []
    with torch.no_grad():
        for _ in range(5):  # warm-up, recording, then replays
            torch.compiler.cudagraph_mark_step_begin()
            outs.append(compiled(x).clone())
        torch.cuda.synchronize()
        ref = model[:3](x)
    skips = counters["inductor"]["cudagraph_skips"]
    assert skips == 0, f"Inductor skipped CUDA graphs {skips} time(s) (TORCH_LOGS=perf_hints says why)"
    recorded = cudagraph_trees_recorded()
    assert recorded != 0, "no CUDA graph was recorded: the calls ran without CUDA graphs"
    if mode == "eval":
        for r, o in enumerate(outs):
            torch.testing.assert_close(o, ref, rtol=1e-4, atol=1e-5, msg=lambda m, r=r: f"call {r}: {m}")
        return
    masks = [check_is_eager_with_its_mask(o, ref, f"call {r}") for r, o in enumerate(outs)]
    check_masks_differ(masks[2:], "reduce-overhead replays")
    check_masks_differ(masks, "reduce-overhead calls")


def test_a_captured_fused_monai_unet_draws_fresh_masks_per_replay_and_eval_replays_equal_eager():
    """A real model: MONAI's UNet (conv -> GroupNorm -> LeakyReLU -> Dropout blocks, see distributed_models)
    fuse()d and captured. Train mode: every dropout block's output (kept by a hook, in the graph's memory)
    has a fresh mask at each replay, dropped near p. Eval mode: each replay equals the unfused model."""
    pytest.importorskip("monai")
    import distributed_models as dm
    model = dm.unet().cuda()
    fused, dropout_blocks = dm.fused(model)
    assert dropout_blocks, "fuse() fused no block with a dropout"
    outs: list = []
    hooks = [b.register_forward_hook(lambda b, args, y: outs.append(y)) for b in dropout_blocks]
    try:
        with torch.no_grad():
            fused.train()
            graph, _ = capture(fused, dm.sample_batch(21, 2).cuda())
            captured = outs[-len(dropout_blocks):]  # the capture's own outputs (warm-up calls came first)
            masks = [[] for _ in dropout_blocks]
            for _ in range(3):
                graph.replay()
                torch.cuda.synchronize()
                for i, y in enumerate(captured):
                    kept = y != 0
                    dropped = 1.0 - kept.float().mean().item()
                    sigma = math.sqrt(dm.DROPOUT_P * (1 - dm.DROPOUT_P) / y.numel())
                    assert abs(dropped - dm.DROPOUT_P) < 6 * sigma, f"dropout block {i}: dropped share {dropped:.4f}"
                    masks[i].append(kept.clone())
    finally:
        for h in hooks:
            h.remove()
    for i, m in enumerate(masks):
        check_masks_differ(m, f"dropout block {i} of the UNet")
    model.eval()
    fused.eval()
    with torch.no_grad():
        static_x = dm.sample_batch(22, 2).cuda()
        graph, y = capture(fused, static_x)
        for r in range(2):
            x = dm.sample_batch(23 + r, 2).cuda()
            static_x.copy_(x)
            graph.replay()
            torch.cuda.synchronize()
            torch.testing.assert_close(y.clone(), model(x), rtol=1e-4, atol=1e-5,
                                       msg=lambda m, r=r: f"eval replay {r} of the fused UNet against eager: {m}")
