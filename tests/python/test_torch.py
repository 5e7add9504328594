"""fuseblock.torch: the custom op (opcheck, torch.compile), the Block module and ModelNew against
eager PyTorch. Skipped where torch is not installed (CI); the GPU suite runs them, on the CPU and,
where there is one, on CUDA."""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import fuseblock  # noqa: E402
import fuseblock.torch as fbt  # noqa: E402

# Where torch sees a GPU the CUDA cases run, and fail (not skip) if fuseblock cannot use it.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
P83 = dict(in_channels=3, out_channels=16, kernel_size=3, groups=8, min_value=0.0, max_value=1.0, dropout_p=0.2)
SMALL_INPUT = (4, 3, 6, 9, 10)


class Model83(nn.Module):
    """KernelBench level-2 problem 83's reference Model."""

    def __init__(self, in_channels, out_channels, kernel_size, groups, min_value, max_value, dropout_p):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size)
        self.norm = nn.GroupNorm(groups, out_channels)
        self.dropout = nn.Dropout(dropout_p)
        self.min_value, self.max_value = min_value, max_value

    def forward(self, x):
        x = self.conv(x)
        x = self.norm(x)
        x = torch.min(x, torch.tensor(self.min_value))
        x = torch.clamp(x, min=self.min_value, max=self.max_value)
        return self.dropout(x)


pytestmark = pytest.mark.usefixtures("strict_float32")  # conftest.py


def chain_modules(name):
    """(fuseblock's pointwise ops, the eager function they mean)."""
    return {
        "silu": ([nn.SiLU()], torch.nn.functional.silu),
        "gelu": ([nn.GELU()], torch.nn.functional.gelu),
        "min_clamp": ([fbt.Minimum(0.5), fbt.Clamp(min=0.0, max=0.5)],
                      lambda y: torch.clamp(torch.minimum(y, torch.tensor(0.5, device=y.device)), 0.0, 0.5)),
    }[name]


def chain_block(name, device, p=0.3):
    torch.manual_seed(1)
    conv = nn.Conv3d(3, 8, 3, padding=1)
    norm = nn.GroupNorm(4, 8)
    with torch.no_grad():  # non-trivial affine, so it is exercised
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-0.5, 0.5)
    ops, fn = chain_modules(name)
    block = fbt.Block.from_modules(conv, norm, *ops, nn.Dropout(p)).to(device)
    eager = lambda x: fn(block.norm(block.conv(x)))  # noqa: E731 - the eval-mode reference
    return block, eager


def rand(shape, device, seed, lo=0.0, hi=1.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) * (hi - lo) + lo).to(device)


# ---- the custom op -------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("training", [False, True])
def test_opcheck(device, training):
    block, _ = chain_block("gelu", device)
    x = rand((2, 3, 5, 6, 7), device, 0)
    seed = fbt.draw_dropout_seed() if training else None
    args = (x, block.conv.weight.detach(), block.conv.bias.detach(), block.norm.weight.detach(),
            block.norm.bias.detach(), seed, block.spec, training, False)
    torch.library.opcheck(torch.ops.fuseblock.block_forward.default, args)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_compile_traces_the_op(device):
    block, eager = chain_block("silu", device)
    block.eval()
    x = rand((2, 3, 5, 6, 7), device, 1, -1.0, 1.0)
    with torch.no_grad():
        expected = block(x)
        backends = ["aot_eager"] + (["inductor"] if device == "cuda" else [])
        for backend in backends:
            torch._dynamo.reset()
            compiled = torch.compile(block, backend=backend, fullgraph=True)
            torch.testing.assert_close(compiled(x), expected, rtol=0, atol=0)
            # another batch size: planned again for the new shape
            x3 = rand((3, 3, 5, 6, 7), device, 2, -1.0, 1.0)
            torch.testing.assert_close(compiled(x3), block(x3), rtol=0, atol=0)


def test_no_backward():
    block, _ = chain_block("silu", "cpu")
    y = block.eval()(rand((1, 3, 4, 4, 4), "cpu", 3))
    with pytest.raises(RuntimeError, match="no backward"):
        y.sum().backward()


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_torch_compile_with_grad_enabled_runs_forward_and_backward_says_there_is_none(backend):
    """README's `torch.compile(block)(x)` without no_grad: parameters that require grad make
    AOTAutograd trace a backward, which must not fail the forward; backward raises when it runs,
    as it does in eager mode."""
    block, _ = chain_block("silu", "cpu")
    block.eval()
    x = rand((2, 3, 5, 6, 7), "cpu", 11, -1.0, 1.0)
    with torch.no_grad():
        expected = block(x)
    torch._dynamo.reset()
    y = torch.compile(block, backend=backend)(x)
    torch.testing.assert_close(y, expected, rtol=0, atol=0)
    assert y.requires_grad
    with pytest.raises(RuntimeError, match="no backward"):
        y.sum().backward()


def test_meta_tensors_give_the_output_shape_as_pytorch_modules_do():
    """Shape inference on the meta device (a model made under torch.device('meta')): the output's
    shape and dtype, as the unfused modules give, not 'fuseblock runs on CPU and CUDA tensors'."""
    with torch.device("meta"):
        block = fbt.Block.from_modules(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.GroupNorm(4, 8), nn.SiLU(),
                                       nn.Dropout(0.1))
        x = torch.empty(5, 3, 9, 7, dtype=torch.bfloat16)
    block.to(torch.bfloat16)
    want = nn.functional.silu(block.norm(block.conv(x)))
    for mode in (block.eval, block.train):
        with torch.no_grad():
            y = mode()(x)
        assert (y.device.type, y.shape, y.dtype) == ("meta", want.shape, want.dtype)


def test_vmap_runs_the_block_per_sample():
    """torch.vmap wraps x in a batched tensor that has no storage: the call goes through the op
    (which PyTorch runs per slice), not the direct path's numpy view."""
    block, _ = chain_block("silu", "cpu")
    block.eval()
    xs = rand((3, 2, 3, 4, 5, 6), "cpu", 12, -1.0, 1.0)
    with torch.no_grad():
        y = torch.vmap(block)(xs)
        want = torch.stack([block(x) for x in xs])
    torch.testing.assert_close(y, want, rtol=0, atol=0)


@pytest.mark.parametrize("seed", [[1, 2, 3], [1.5, 2.0], [7]])
def test_a_dropout_seed_that_is_not_two_int64_values_is_refused_on_cpu_as_on_cuda(seed):
    block, _ = chain_block("silu", "cpu")
    args = (rand((1, 3, 4, 4, 4), "cpu", 13), block.conv.weight.detach(), block.conv.bias.detach(),
            block.norm.weight.detach(), block.norm.bias.detach(), torch.tensor(seed), block.spec, True, False)
    with pytest.raises(ValueError, match="dropout_seed must hold two int64 values"):
        fbt.block_forward(*args)


def test_a_negative_int64_dropout_seed_is_its_unsigned_bits_as_on_cuda():
    """The CUDA kernels read the [seed, offset] tensor's bits as unsigned 64-bit values."""
    block, _ = chain_block("silu", "cpu")
    x = rand((1, 3, 4, 4, 4), "cpu", 14)
    params = (block.conv.weight.detach(), block.conv.bias.detach(), block.norm.weight.detach(), block.norm.bias.detach())
    y = fbt.block_forward(x, *params, torch.tensor([-1, -2]), block.spec, True, False)
    want = fbt.block_forward(x, *params, torch.tensor([2**63 - 1, 2**63 - 2]), block.spec, True, False)
    assert not torch.equal(y, want)  # another stream, and no error
    seeds = fuseblock.Block(block.spec, training=True, input_shape=list(x.shape))
    np_params = {k: v.numpy() for k, v in zip(["conv.weight", "conv.bias", "norm.weight", "norm.bias"], params)}
    expected = seeds.run(x.numpy(), np_params, device="cpu", dropout_seed=2**64 - 1, dropout_offset=2**64 - 2)
    np.testing.assert_array_equal(y.numpy(), expected)


def test_no_backward_through_channel_add_alone():
    """Frozen parameters and x, a channel_add that requires grad (a time embedding being trained):
    the call goes through the op, so backward says there is none instead of dropping the gradient."""
    block = fbt.Block.from_modules(nn.Conv2d(4, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.SiLU()).eval()
    block.requires_grad_(False)
    y = block(rand((2, 4, 6, 6), "cpu", 5), channel_add=rand((2, 8), "cpu", 6).requires_grad_())
    assert y.requires_grad
    with pytest.raises(RuntimeError, match="no backward"):
        y.sum().backward()


def test_jit_trace_records_the_op():
    """torch.jit.trace records the op, not one call's output as a constant."""
    block, _ = chain_block("silu", "cpu")
    with torch.no_grad():
        traced = torch.jit.trace(block.eval(), (rand((1, 3, 4, 4, 4), "cpu", 7),), check_trace=False)
        x = rand((1, 3, 4, 4, 4), "cpu", 8)
        torch.testing.assert_close(traced(x), block(x), rtol=0, atol=0)


def test_float64_input_is_refused():
    block, _ = chain_block("silu", "cpu")
    with pytest.raises(TypeError, match="float32"):
        block(rand((1, 3, 4, 4, 4), "cpu", 4).double())


@pytest.mark.parametrize("x, add, name", [(None, None, "x"), ("numpy", None, "x"), ("tensor", [[1.0] * 8], "channel_add")])
def test_a_non_tensor_argument_is_a_type_error_naming_it(x, add, name):
    block, _ = chain_block("silu", "cpu")
    x = {"numpy": rand((1, 3, 4, 4, 4), "cpu", 5).numpy(), "tensor": rand((1, 3, 4, 4, 4), "cpu", 5)}.get(x)
    with pytest.raises(TypeError, match=f"{name} must be a torch.Tensor"):
        block(x, channel_add=add)


def test_fuse_of_a_non_module_is_a_type_error():
    with pytest.raises(TypeError, match="nn.Module"):
        fbt.fuse("model")


# ---- Block from modules against eager PyTorch ----------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("chain", ["silu", "gelu", "min_clamp"])
def test_block_eval_matches_eager(chain, device):
    block, eager = chain_block(chain, device)
    block.eval()
    x = rand((3, 3, 5, 7, 6), device, 5, -2.0, 2.0)
    x_before = x.clone()
    with torch.no_grad():
        y, expected = block(x), eager(x)
    assert torch.equal(x, x_before)
    assert expected.std() > 0.05
    torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-5)
    x[1, 0, 1, 2, 3] = float("nan")
    with torch.no_grad():
        assert torch.equal(torch.isnan(block(x)), torch.isnan(eager(x)))


@pytest.mark.parametrize("device", DEVICES)
def test_block_training_dropout_statistics(device):
    p = 0.3
    block, eager = chain_block("silu", device, p)
    x = rand((4, 3, 6, 7, 8), device, 6, -2.0, 2.0)
    with torch.no_grad():
        expected = eager(x)
        torch.manual_seed(123)
        y = block.train()(x)
        y_again = block(x)
        torch.manual_seed(123)
        y_same_seed = block(x)
    live = expected != 0
    kept = live & (y != 0)
    rate = kept.sum().item() / live.sum().item()
    assert abs(rate - (1 - p)) < 5 * math.sqrt(p * (1 - p) / live.sum().item())
    torch.testing.assert_close(y[kept], expected[kept] / (1 - p), rtol=1e-4, atol=1e-5)
    assert not torch.equal(y_again != 0, y != 0)  # a fresh mask every call
    assert torch.equal(y_same_seed, y)  # torch.manual_seed reproduces it


def test_explain_refuses_a_non_integer_size_as_the_numpy_api_does():
    block, _ = chain_block("silu", "cpu")
    with pytest.raises(TypeError, match=r"input_shape\[2\] must be an integer"):
        block.explain((2, 3, 5.5, 6, 7))
    assert "conv3d" in block.explain((2, 3, np.int64(5), 6, 7))


def test_block_from_spec():
    spec = ("input f32[2, 3, 6, 6]\nconv2d out_channels=4 kernel_size=3\ngroup_norm num_groups=2\n"
            "gelu\ndropout p=0.5 training=true\nparams seed=5\n")
    block = fbt.Block(spec)
    assert sorted(block.state_dict()) == ["conv.bias", "conv.weight", "norm.bias", "norm.weight"]
    expected = fuseblock.init_params(fuseblock.Block(spec), 5)
    assert torch.equal(block.conv.weight.detach(), torch.from_numpy(expected["conv.weight"]))
    x = rand((3, 3, 6, 6), "cpu", 7)  # another batch size than the spec's input line
    with torch.no_grad():
        eval_out = block.eval()(x)
        train_out = block.train()(x)
    assert eval_out.shape == (3, 4, 4, 4)
    assert (eval_out != 0).all() and (train_out == 0).any()
    numpy_out = fuseblock.Block(spec, training=False, input_shape=x.shape).run(x.numpy(), device="cpu")
    assert torch.equal(eval_out, torch.from_numpy(numpy_out))


# ---- ModelNew: KernelBench level 2, problem 83 ---------------------------------------------


def test_model_new_has_the_reference_state_dict_and_init():
    torch.manual_seed(3)
    reference = Model83(**P83)
    torch.manual_seed(3)
    model = fbt.ModelNew(**P83)
    assert list(model.state_dict()) == list(reference.state_dict())
    for k, v in reference.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("training", [False, True])
def test_model_new_reproduces_the_reference(device, training):
    reference = Model83(**P83).to(device).train(training)
    model = fbt.ModelNew(**P83).to(device).train(training)
    model.load_state_dict(reference.state_dict())
    x = rand(SMALL_INPUT, device, 8)
    with torch.no_grad():
        y, expected = model(x), reference(x)
        assert torch.equal(y, expected) and (y == 0).all()
        x[2, 1, 3, 4, 5] = float("nan")
        y, expected = model(x), reference(x)
    assert torch.equal(torch.isnan(y), torch.isnan(expected))
    assert torch.isnan(y[2]).all() and not torch.isnan(y[[0, 1, 3]]).any()


@pytest.mark.parametrize("device", DEVICES)
def test_model_new_follows_an_in_place_weight_change(device):
    # The guard's bound depends on the weights (cached on the GPU path until they change): a NaN
    # written into the weight in place must reach the output as PyTorch's does.
    reference = Model83(**P83).to(device).eval()
    model = fbt.ModelNew(**P83).to(device).eval()
    model.load_state_dict(reference.state_dict())
    x = rand(SMALL_INPUT, device, 9)
    with torch.no_grad():
        assert (model(x) == 0).all()
        model.conv.weight[0, 0, 0, 0, 0] = float("nan")
        reference.conv.weight[0, 0, 0, 0, 0] = float("nan")
        y, expected = model(x), reference(x)
    assert torch.equal(torch.isnan(y), torch.isnan(expected)) and torch.isnan(y).any()


# ---- CUDA: device pointers, the current stream ---------------------------------------------

cuda_only = pytest.mark.skipif("cuda" not in DEVICES, reason="needs a CUDA GPU")


@cuda_only
def test_cuda_matches_cpu_and_draws_the_same_mask():
    block, _ = chain_block("gelu", "cpu", p=0.4)
    x = rand((3, 3, 5, 6, 7), "cpu", 10, -2.0, 2.0)
    seed = torch.tensor([987654321, 5], dtype=torch.int64)
    args = lambda dev: (x.to(dev), block.conv.weight.detach().to(dev), block.conv.bias.detach().to(dev),  # noqa: E731
                        block.norm.weight.detach().to(dev), block.norm.bias.detach().to(dev), seed, block.spec, True,
                        False)
    y_cpu = torch.ops.fuseblock.block_forward(*args("cpu"))
    y_cuda = torch.ops.fuseblock.block_forward(*args("cuda"))
    assert y_cuda.is_cuda
    y_cuda = y_cuda.cpu()
    assert torch.equal(y_cpu == 0, y_cuda == 0)  # Philox at (seed, offset, index) on both backends
    torch.testing.assert_close(y_cuda, y_cpu, rtol=1e-4, atol=1e-5)


@cuda_only
def test_cuda_misaligned_input_and_a_side_stream():
    block, eager = chain_block("silu", "cuda")
    block.eval()
    shape = (2, 3, 5, 6, 7)
    flat = rand((math.prod(shape) + 1,), "cuda", 11, -1.0, 1.0)
    x = flat[1:].view(shape)  # 4 bytes past an allocation: not 16-byte aligned
    assert x.data_ptr() % 16 != 0
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.no_grad(), torch.cuda.stream(side):
        y = block(x)
    side.synchronize()
    with torch.no_grad():
        torch.testing.assert_close(y, eager(x), rtol=1e-4, atol=1e-5)


@cuda_only
def test_cuda_device_state_matches_the_cpu_mask():
    """The same [seed, offset] as a CUDA tensor (read by the kernels) and on the CPU: one mask."""
    block, _ = chain_block("silu", "cpu", p=0.3)
    x = rand((2, 3, 5, 6, 7), "cpu", 12, -2.0, 2.0)
    seed = torch.tensor([123456789, 42], dtype=torch.int64)
    args = lambda dev, s: (x.to(dev), block.conv.weight.detach().to(dev), block.conv.bias.detach().to(dev),  # noqa: E731
                           block.norm.weight.detach().to(dev), block.norm.bias.detach().to(dev), s, block.spec, True,
                           False)
    y_cpu = torch.ops.fuseblock.block_forward(*args("cpu", seed))
    y_dev = torch.ops.fuseblock.block_forward(*args("cuda", seed.cuda())).cpu()
    assert torch.equal(y_cpu == 0, y_dev == 0)
    torch.testing.assert_close(y_dev, y_cpu, rtol=1e-4, atol=1e-5)


@cuda_only
def test_cuda_graph_replays_draw_fresh_valid_masks():
    """A training-mode Block captured in a CUDA graph: every replay draws a new mask (the state is
    drawn on the device from PyTorch's generator, inside the graph), each a valid one: the dropped
    share near p, and every kept value exactly the eval-mode value times 1 / (1 - p)."""
    p = 0.3
    block, _ = chain_block("silu", "cuda", p=p)
    x = rand((4, 3, 6, 9, 10), "cuda", 13, 0.5, 2.0)
    with torch.no_grad():
        block.eval()
        ref = block(x).clone()
        block.train()
        static_x = x.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside the graph (compiles the kernels)
            block(static_x)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_y = block(static_x)
        masks = []
        for _ in range(3):
            graph.replay()
            torch.cuda.synchronize()
            y = static_y.clone()
            kept = y != 0
            dropped = 1.0 - kept.float().mean().item()
            n = y.numel()
            assert abs(dropped - p) < 5 * math.sqrt(p * (1 - p) / n), dropped
            keep = torch.tensor(1.0 - p, dtype=torch.float32).item()  # float32(1 - p), as PyTorch's scale
            scale = torch.tensor(1.0 / keep, dtype=torch.float32, device="cuda")
            torch.testing.assert_close(y[kept], ref[kept] * scale, rtol=0, atol=0)
            masks.append(kept)
        for i in range(len(masks)):
            for j in range(i):
                assert (masks[i] != masks[j]).float().mean().item() > 0.05, "a replay reused an earlier mask"
    # torch.manual_seed makes the draws, and so the masks, reproducible.
    with torch.no_grad():
        torch.manual_seed(7)
        a = block(x)
        torch.manual_seed(7)
        b = block(x)
    assert torch.equal(a, b)


@cuda_only
def test_cuda_runs_on_the_tensors_device_and_two_devices_at_once():
    """The op follows its tensor's device (cuda:N, its primary context, its current stream): each
    GPU gives the CPU backend's result; with two GPUs, two threads run a block on each at once."""
    import threading

    block, _ = chain_block("gelu", "cpu", p=0.25)
    block.eval()
    x = rand((2, 3, 5, 6, 7), "cpu", 14, -1.0, 1.0)
    with torch.no_grad():
        want = block(x)
    blocks = {}
    for i in range(torch.cuda.device_count()):
        dev = torch.device("cuda", i)
        blocks[i] = fbt.Block.from_modules(block.conv, block.norm, nn.GELU(), nn.Dropout(0.25)).to(dev).eval()
        with torch.no_grad(), torch.cuda.device(0):  # the current device is not the tensor's
            got = blocks[i](x.to(dev))
        assert got.device == dev
        torch.testing.assert_close(got.cpu(), want, rtol=1e-4, atol=1e-5)
    if len(blocks) < 2:
        return
    results, errors = {}, []

    def work(i):
        try:
            dev = torch.device("cuda", i)
            with torch.no_grad():
                for _ in range(20):
                    results[i] = blocks[i](x.to(dev)).cpu()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i in (0, 1):
        torch.testing.assert_close(results[i], want, rtol=1e-4, atol=1e-5)


def test_group_norm_with_one_value_per_group_raises_as_pytorch_does():
    """N=1, C=G and one spatial element: PyTorch's GroupNorm raises (in eval mode too), so does
    the block; with N=2 both normalize each one-value group to beta."""
    torch.manual_seed(0)
    conv, norm = torch.nn.Conv2d(3, 4, 3), torch.nn.GroupNorm(4, 4).eval()
    block = fbt.Block.from_modules(conv, norm).eval()
    x = torch.randn(1, 3, 3, 3)
    with torch.no_grad():
        with pytest.raises(ValueError, match="more than 1 value per channel"):
            norm(conv(x))
        with pytest.raises(ValueError, match="more than 1 value per channel group"):
            block(x)
        # beta (0) up to rounding: both compute y * a + (beta - mean * a), a = 1/sqrt(eps) ~ 316.
        x2 = torch.randn(2, 3, 3, 3)
        assert torch.allclose(block(x2), norm(conv(x2)), atol=1e-4)
