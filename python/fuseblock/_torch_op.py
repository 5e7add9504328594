"""The custom op fuseblock::block_forward (torch.library), its fake implementation for
torch.compile / FakeTensor tracing, and an autograd registration that says plainly that there
is no backward. Imported by fuseblock.torch; needs torch.

No `from __future__ import annotations` here: torch.library reads the op's schema from its type
annotations, which must be real types, not strings."""
import functools
from typing import List, Optional

import torch

from . import _core
from ._param_dtypes import DTYPES, dtype_problem, norm_param_dtype

# Seeds for the dropout mask are drawn from torch's default generator in [0, 2^63), so
# torch.manual_seed makes fuseblock's masks reproducible as it does PyTorch's.
_SEED_HIGH = 2**63 - 1


@functools.lru_cache(maxsize=64)
def compiled_block(spec: str, training: bool, assume_finite: bool, input_shape: Optional[tuple],
                   dtype: Optional[str] = None, norm_dtype: Optional[str] = None) -> _core.CompiledBlock:
    """The block for one spec, mode, input shape (None: the spec's input line), storage type
    (None: the spec's; else "f32", "bf16" or "f16") and norm parameter type (None: the storage type;
    "f32": kept in float32 in a bf16/f16 block), parsed and planned once."""
    shape = None if input_shape is None else list(input_shape)
    return _core.CompiledBlock(spec, "<torch spec>", "", assume_finite, training, shape, dtype, norm_dtype)


@torch._dynamo.assume_constant_result
def cuda_refusal(spec: str, training: bool, input_shape: tuple, dtype: str,
                 norm_dtype: Optional[str] = None) -> Optional[str]:
    """Why no CUDA strategy runs this block (None: one does). A constant to dynamo, which cannot
    trace the C++ planner: the answer depends only on the arguments, which its graph guards."""
    return compiled_block(spec, training, False, input_shape, dtype, norm_dtype).cuda_refusal


def draw_dropout_seed(device: Optional[torch.device] = None) -> torch.Tensor:
    """A fresh mask for one forward call: an int64 tensor [seed, offset], both random, drawn on
    `device` from PyTorch's generator. On a CUDA device the draw is itself a kernel: under
    torch.cuda.graph (or torch.compile's CUDA graphs) every replay draws new values, and the
    block's kernels read them from device memory, so each replay gets a fresh mask, as PyTorch's
    dropout does. torch.manual_seed makes the draws reproducible."""
    return torch.randint(0, _SEED_HIGH, (2,), dtype=torch.int64, device=device)


def runs_direct(x) -> bool:
    """Whether a call on x may skip the op's dispatch (forward_eager): nothing traces it (torch.compile,
    torch.jit.trace, fx) and x is a plain tensor, not a FakeTensor, Proxy or a functorch wrapper
    (torch.vmap's batched tensors have no storage; PyTorch runs the op per slice)."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing() or type(x) is not torch.Tensor:
        return False
    return not torch._C._functorch.is_functorch_wrapped_tensor(x)


def _check_dtypes(x: torch.Tensor, params: dict, extra: dict) -> tuple:
    """(storage type, norm parameter type or None) for x and the block's tensors, or a TypeError
    naming the tensor whose dtype eager PyTorch would not take with x's (_param_dtypes says which)."""
    norm = {k: params.get(k) for k in ("norm.weight", "norm.bias")}
    others = {k: t for k, t in {**params, **extra}.items() if k not in norm}
    problem = dtype_problem(x.dtype, others, norm)
    if problem is not None:
        raise TypeError(f"fuseblock::block_forward: {problem}")
    norm_dtype = next((t.dtype for t in norm.values() if t is not None), None)
    return DTYPES[x.dtype], norm_param_dtype(x.dtype, norm_dtype)


def _host_array(t: torch.Tensor):
    # numpy has no bfloat16: half-precision values travel as float32 (exact both ways), and the
    # C++ side rounds to the block's type, which leaves them unchanged.
    return t.detach().cpu().float().contiguous().numpy()


def _prelu_names(n: int) -> list:
    # The spec's parameter keys of a block's prelu ops, in spec order (prelu_weight_key in C++).
    return ["prelu.weight"] if n == 1 else [f"prelu.{i}.weight" for i in range(n)]


# The schema is spelled out: PyTorch before 2.12 cannot infer "Tensor[]?" from Optional[List[Tensor]].
_SCHEMA = ("(Tensor x, Tensor conv_weight, Tensor? conv_bias, Tensor? norm_weight, Tensor? norm_bias, "
           "Tensor? dropout_seed, str spec, bool training, bool assume_finite, Tensor? channel_add=None, "
           "Tensor[]? prelu_weights=None) -> Tensor")


@torch.library.custom_op("fuseblock::block_forward", mutates_args=(), schema=_SCHEMA)
def block_forward(x: torch.Tensor, conv_weight: torch.Tensor, conv_bias: Optional[torch.Tensor],
                  norm_weight: Optional[torch.Tensor], norm_bias: Optional[torch.Tensor],
                  dropout_seed: Optional[torch.Tensor], spec: str, training: bool,
                  assume_finite: bool, channel_add: Optional[torch.Tensor] = None,
                  prelu_weights: Optional[List[torch.Tensor]] = None) -> torch.Tensor:
    """Runs the block `spec` on x (float32, bfloat16 or float16, any N; the spec's input line is
    replaced by x's shape and dtype, and the output has x's dtype, as eager's modules give it). The
    conv parameters, channel_add and prelu_weights must have x's dtype; the norm's have x's dtype, or
    float32 when x is bfloat16/float16 (the norm then computes with them unrounded, as F.group_norm
    does); a TypeError names a tensor that breaks this (_param_dtypes).

    channel_add: the [N, C_out] input of a block with add_per_sample_channel (None otherwise).
    prelu_weights: the slopes of the block's prelu ops, in spec order (None when it has none).

    training overrides the spec's dropout mode; dropout_seed ([seed, offset], int64) picks the mask
    (None: the spec's own seed and offset); on x's CUDA device its values are read by the kernels
    when they run (no host synchronisation, fresh values under CUDA graph replays). The block runs on x's device: CUDA tensors on
    their device pointers, in PyTorch's current stream, with no copy and no synchronisation (the
    parameters are moved to x's device if they are elsewhere); CPU tensors on fuseblock's CPU
    backend. Its conv may use TF32 exactly when torch.backends.cudnn.allow_tf32 allows PyTorch's
    (read at each call, as cuDNN does, rather than traced).
    """
    return forward_eager(x, conv_weight, conv_bias, norm_weight, norm_bias, dropout_seed, spec, training,
                         assume_finite, channel_add, prelu_weights)


def forward_eager(x, conv_weight, conv_bias, norm_weight, norm_bias, dropout_seed, spec, training, assume_finite,
                  channel_add=None, prelu_weights=None):
    """block_forward's body. Block.forward calls it directly when nothing traces or records the call
    (no torch.compile, no autograd graph): the custom op's dispatch costs more host time than a
    small block's kernels, and host time per call is what a model of many small blocks pays."""
    params = {"conv.weight": conv_weight, "conv.bias": conv_bias, "norm.weight": norm_weight, "norm.bias": norm_bias}
    params.update(zip(_prelu_names(len(prelu_weights or [])), prelu_weights or []))
    params = {k: t for k, t in params.items() if t is not None}
    extra = {} if channel_add is None else {"channel_add": channel_add}
    dtype, norm_dtype = _check_dtypes(x, params, extra)
    if x.device.type == "meta":  # shape inference, as PyTorch's modules give on meta tensors
        return _block_forward_fake(x, conv_weight, conv_bias, norm_weight, norm_bias, dropout_seed, spec, training,
                                   assume_finite, channel_add, prelu_weights)
    block = compiled_block(spec, training, assume_finite, tuple(x.shape), dtype, norm_dtype)
    allow_tf32 = torch.backends.cudnn.allow_tf32
    if dropout_seed is not None and (dropout_seed.dtype != torch.int64 or dropout_seed.numel() != 2):
        raise ValueError(f"dropout_seed must hold two int64 values [seed, offset], not "
                         f"{dropout_seed.dtype}{list(dropout_seed.shape)}")
    if x.device.type == "cuda" and dropout_seed is not None and dropout_seed.device == x.device:
        state = dropout_seed.detach().contiguous()
        return _run_cuda(block, x, params, None, allow_tf32, channel_add, state)
    # The kernels read the tensor's bits as unsigned 64-bit values: the same here.
    stream = None if dropout_seed is None else tuple(int(v) % 2**64 for v in dropout_seed.reshape(2).tolist())
    if x.device.type == "cuda":
        return _run_cuda(block, x, params, stream, allow_tf32, channel_add)
    if x.device.type != "cpu":
        raise ValueError(f"fuseblock runs on CPU and CUDA tensors, not on {x.device}")
    host_params = block.params_from({k: _host_array(t) for k, t in params.items()})
    add = None if channel_add is None else _host_array(channel_add)
    y = block.run(host_params, _host_array(x), "cpu", allow_tf32, stream, add)
    return torch.from_numpy(y).to(x.dtype)  # exact: y holds values of x's dtype


def _run_cuda(block, x, params, stream, allow_tf32, channel_add, state=None):
    device = x.device
    index = device.index if device.index is not None else torch.cuda.current_device()  # cuda:N, any N
    _check_param_shapes(block, params)
    # Selection first: a form no CUDA strategy runs raises fuseblock.UserError naming it, before
    # any buffer of the wrong type reaches a kernel.
    scratch_bytes = block.cuda_scratch_bytes(allow_tf32, index)
    if channel_add is not None:
        # The kernels read [N, C_out] values by index: a wrong shape would read past the tensor.
        # (Given or missing against the block's spec: launch_cuda checks it.)
        if tuple(channel_add.shape) != tuple(block.output_shape[:2]):
            raise ValueError(f"channel_add has shape {list(channel_add.shape)}, but the block adds one value per "
                             f"(sample, conv output channel): {list(block.output_shape[:2])} "
                             f"(temb[:, :, None, None] broadcasts a [N, C_out] tensor)")
        params = {**params, "channel add": channel_add}  # bound by the executor's name for it
    if not x.is_contiguous():
        x = x.contiguous()
    if x.data_ptr() % 16:  # the kernels load 16-byte vectors: an offset view gets a fresh copy
        x = x.clone()
    ptrs = {}
    for k, t in params.items():
        if t.device != device or not t.is_contiguous() or t.data_ptr() % 16:
            # Elsewhere, strided, or a view at an unaligned offset of a shared buffer (flat
            # parameters): a fresh aligned copy, as for x.
            t = t.detach().to(device).contiguous()
            if t.data_ptr() % 16:
                t = t.clone()
            params[k] = t  # kept alive until the launch below has been enqueued
        ptrs[k] = t.data_ptr()
    y = torch.empty(block.output_shape, dtype=x.dtype, device=device)
    if y.numel() == 0:
        return y
    # Scratch from PyTorch's allocator on the current stream: freed when this returns, reused
    # only by work ordered after the kernels on that stream.
    scratch = torch.empty(scratch_bytes, dtype=torch.uint8, device=device) if scratch_bytes else None
    # The guard's bound (blocks with a fill path) is computed by the program on the device, from
    # the parameters as they are when the kernels run: no host copy, no synchronisation.
    buffers = {"input": x.data_ptr(), "output": y.data_ptr(), **ptrs}
    if scratch is not None:
        buffers["scratch"] = scratch.data_ptr()
    if state is not None:
        buffers["dropout state"] = state.data_ptr()
    block.launch_cuda(buffers, torch._C._cuda_getCurrentRawStream(index), allow_tf32, stream, index)
    return y


# (id(block), parameter shapes) already checked, each holding its block so that the id stays its.
_checked_shapes: dict = {}


def _check_param_shapes(block, params):
    """The parameters' shapes against the block's, once per block and set of shapes: the check
    crosses into C++ with a dict of lists, which costs microseconds on every call otherwise."""
    key = (id(block),) + tuple((k, tuple(t.shape)) for k, t in params.items())
    if key in _checked_shapes:
        return
    block.check_param_shapes({k: list(t.shape) for k, t in params.items()})
    if len(_checked_shapes) > 1024:
        _checked_shapes.clear()
    _checked_shapes[key] = block


@block_forward.register_fake
def _block_forward_fake(x, conv_weight, conv_bias, norm_weight, norm_bias, dropout_seed, spec, training,
                        assume_finite, channel_add=None, prelu_weights=None):
    # PyTorch's conv output size from the spec's conv attributes, so that symbolic (dynamic)
    # input sizes stay symbolic.
    g = compiled_block(spec, training, assume_finite, None).conv_geometry
    spatial = [(size + 2 * p - d * (k - 1) - 1) // s + 1
               for size, k, s, p, d in zip(x.shape[2:], g["kernel_size"], g["stride"], g["padding"], g["dilation"])]
    return x.new_empty([x.shape[0], g["out_channels"], *spatial])


_NO_BACKWARD = ("fuseblock::block_forward has no backward (fuseblock is an inference and forward-only "
                "engine): run it under torch.no_grad(), or use the PyTorch modules for training")


@torch.library.custom_op("fuseblock::no_backward", mutates_args=())
def _no_backward_op(grad: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The gradient of block_forward for the input `like`: raises when it runs. An op rather than
    a raise in the backward formula, so that AOTAutograd (torch.compile, export) can trace the
    backward of a forward that records autograd, and the error comes when backward runs, as in
    eager mode."""
    raise RuntimeError(_NO_BACKWARD)


@_no_backward_op.register_fake
def _no_backward_fake(grad, like):
    return torch.empty_like(like)


# block_forward's tensor inputs, by position (prelu_weights, a list, is the last one).
_TENSOR_INPUTS = (0, 1, 2, 3, 4, 9)


def _save_inputs(ctx, inputs, output):
    ctx.save_for_backward(*(inputs[i] for i in _TENSOR_INPUTS), *(inputs[10] or []))
    # The gradients must have the inputs' structure: a list (an empty one too) for a list.
    ctx.prelu_is_list = inputs[10] is not None


def _no_backward(ctx, grad):
    saved = ctx.saved_tensors
    fail = lambda t: None if t is None or not t.requires_grad else _no_backward_op(grad, t)  # noqa: E731
    grads = [None] * 11
    for i, t in zip(_TENSOR_INPUTS, saved):
        grads[i] = fail(t)
    prelu = saved[len(_TENSOR_INPUTS):]
    grads[10] = [fail(t) for t in prelu] if ctx.prelu_is_list else None
    return tuple(grads)


torch.library.register_autograd("fuseblock::block_forward", _no_backward, setup_context=_save_inputs)
