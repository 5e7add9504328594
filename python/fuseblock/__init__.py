"""fuseblock: runs the PyTorch block conv -> GroupNorm -> pointwise chain -> Dropout as the
fewest, fastest kernels, with PyTorch's semantics (NaN and Inf included).

numpy API (this module; needs no torch):

    import fuseblock
    block = fuseblock.Block(fuseblock.default_spec())   # spec text, or the path of a spec file
    print(block.explain())                               # IR after every pass, plan, guard, kernels
    y = block.run(x)                                     # x: float32 array of block.input_shape
                                                         # (float16 for an `input f16[...]` block)

numpy has no bfloat16: a bf16 block's arrays are float32 holding bf16 values; bfloat16 tensors
and modules go through ``fuseblock.torch``.

PyTorch API: ``import fuseblock.torch`` (the custom op ``fuseblock::block_forward``, the ``Block``
nn.Module, the KernelBench-compatible ``ModelNew`` and ``fuse(model)``).

Errors the caller can fix raise ``fuseblock.UserError`` (a ValueError) whose message names the
spec's line:col and a hint.
"""
from __future__ import annotations

import operator
import os
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from . import _core
from ._core import InternalError, UserError

__all__ = ["Block", "UserError", "InternalError", "default_spec", "init_params", "resolve_device"]

SpecSource = Union[str, "os.PathLike[str]", None]


def default_spec() -> str:
    """The embedded default block: KernelBench level-2 problem 83, in training mode."""
    return _core.default_spec()


def resolve_device(device: str = "auto") -> str:
    """The device a request resolves to ("cpu" or "cuda"); "cuda" without a usable GPU raises."""
    return _core.resolve_device(device)[0]


def _read_spec(spec: SpecSource) -> tuple[str, str, str]:
    """(text, source name for messages, folder for relative `params file=`).

    A spec is text when it holds a newline (every spec has at least an input and a conv line);
    a one-line string that names no file and has ';' or starts with `input ` or `params ` is text
    (';' between lines, as the CLI's --spec-text); any other one-line string or an os.PathLike
    names a file."""
    if spec is None:
        return default_spec(), "<default>", ""
    if isinstance(spec, str) and "\n" in spec:
        return spec, "<spec>", ""
    if isinstance(spec, str) and not os.path.exists(spec) and (
            ";" in spec or spec.lstrip().startswith(("input ", "params "))):
        return spec.replace(";", "\n"), "<spec>", ""
    path = os.fspath(spec)
    # One byte past the spec's size limit at most: the parser reports a longer spec, and a path
    # like /dev/zero cannot make this read forever.
    with open(path, "rb") as f:
        data = f.read(_core.max_spec_bytes + 1)
    return data.decode("utf-8", errors="replace"), path, os.path.dirname(path)


def _user_error(message: str, hint: str = "") -> UserError:
    """A fuseblock.UserError raised from Python, with the attributes the C++ ones carry."""
    e = UserError(f"error: {message}" + (f"\n  hint: {hint}" if hint else ""))
    e.line, e.col, e.hint, e.message = 0, 0, hint, message
    return e


def _int_in_range(name: str, value, lo: int, hi: int) -> int:
    """value as a Python int in [lo, hi]: a float or other non-integer is a TypeError, an
    integer out of range a UserError naming the argument (not the binding library's text)."""
    try:
        if isinstance(value, (bool, np.bool_)):  # an int to operator.index, never meant as a size or seed
            raise TypeError
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}") from None
    if not lo <= v <= hi:
        raise _user_error(f"{name} is {v}, outside [{lo}, {hi}]",
                          "sizes are >= 0; seeds and offsets are unsigned 64-bit integers")
    return v


def _flag(name: str, value) -> bool:
    """A bool argument: anything else is a TypeError naming it (not the binding's signature dump)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


_INT64_MAX = 2**63 - 1
_UINT64_MAX = 2**64 - 1


# The numpy dtype a block's arrays have, by the block's spec dtype. numpy has no bfloat16: a bf16
# block takes and returns float32 arrays holding bf16 values (inputs and parameters that are not
# bf16 values are rounded to nearest even, as torch's .to(torch.bfloat16) rounds them).
_NUMPY_DTYPE = {"f32": np.float32, "f16": np.float16, "bf16": np.float32}


def _block_array(name: str, a, block_dtype: str) -> np.ndarray:
    """A C-contiguous float32 array of an array in the block's numpy dtype (float16 converts
    exactly); any other dtype is an error rather than a silent cast."""
    want = _NUMPY_DTYPE[block_dtype]
    arr = np.asarray(a)
    if arr.dtype.newbyteorder("=") != want:  # float32 of either byte order is float32
        raise TypeError(f"{name} must be {np.dtype(want).name} for a {block_dtype} block, got {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


class Block:
    """A parsed and planned block.

    spec: the spec text, the path of a spec file (a one-line string or an os.PathLike), or None
      for the default block (KernelBench level-2 problem 83).
    assume_finite: plan as if every input is finite and bounded (no run-time guard).
    training: overrides the spec's `dropout training=` (None keeps it).
    input_shape: overrides the spec's input line.
    """

    def __init__(self, spec: SpecSource = None, *, assume_finite: bool = False,
                 training: Optional[bool] = None, input_shape: Optional[Sequence[int]] = None):
        self.spec_text, self.source_name, folder = _read_spec(spec)
        self.assume_finite = assume_finite = _flag("assume_finite", assume_finite)
        training = None if training is None else _flag("training", training)
        shape = None if input_shape is None else [
            _int_in_range(f"input_shape[{i}]", d, 0, _INT64_MAX) for i, d in enumerate(input_shape)]
        self._compiled = _core.CompiledBlock(self.spec_text, self.source_name, folder, assume_finite,
                                             training, shape)
        self._spec_params = None  # the spec's own parameters, made on first use

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._compiled.input_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self._compiled.output_shape

    @property
    def dtype(self) -> str:
        """The block's storage type: "f32", "bf16" or "f16" (the spec's `input` line). Arrays are
        float32 for f32, float16 for f16, and float32 holding bf16 values for bf16 (numpy has no
        bfloat16)."""
        return self._compiled.dtype

    @property
    def fill_path(self) -> bool:
        """True when the plan replaced conv, norm and chain by a constant fill (under a guard
        unless assume_finite)."""
        return self._compiled.fill_path

    @property
    def guarded(self) -> bool:
        """True when the plan relies on a run-time guard, with the exact pipeline as fallback."""
        return self._compiled.guarded

    def explain(self) -> str:
        """The IR after every pass, then the plan with its guard and kernels."""
        return self._compiled.explain()

    def params(self) -> dict[str, np.ndarray]:
        """The spec's own parameters (its `params file=`, else PyTorch's default init from its
        `params seed=`), as float32 arrays keyed conv.weight, conv.bias, norm.weight, norm.bias."""
        return self._to_block_dtype(self._compiled.params_to_dict(self._default_params()))

    def run(self, x, params: Optional[Mapping[str, np.ndarray]] = None, device: str = "auto", *,
            allow_tf32: bool = True, dropout_seed: Optional[int] = None,
            dropout_offset: Optional[int] = None, channel_add=None) -> np.ndarray:
        """Runs the block on x (shape input_shape; float32, or float16 for an f16 block, or
        float32 holding bf16 values for a bf16 block: see `dtype`); returns a new array of the same
        numpy dtype.

        params: None for the spec's own parameters, or a dict with the keys conv.weight,
          conv.bias, norm.weight, norm.bias (float32 arrays; the ones the block has no use for
          may be left out).
        device: "auto" (CUDA where a usable GPU is found, else CPU), "cpu" or "cuda".
        allow_tf32: CUDA may use TF32 matrix units, as PyTorch's cudnn.allow_tf32 default.
        dropout_seed, dropout_offset: the dropout mask's Philox stream, unsigned 64-bit integers
          (None: the spec's seed and offset; an offset needs a seed, and a seed alone has offset 0).
        channel_add: the per-(sample, channel) input of a block with add_per_sample_channel, shape
          [N, C_out] in x's dtype (temb of conv1(x) + temb[:, :, None, None]); required by such a
          block, refused by any other.
        """
        x = _block_array("x", x, self.dtype)
        if not isinstance(device, str):
            raise TypeError(f"device must be 'auto', 'cpu' or 'cuda', got {type(device).__name__} {device!r}")
        allow_tf32 = _flag("allow_tf32", allow_tf32)
        p = self._default_params() if params is None else self._core_params(params)
        if dropout_seed is None and dropout_offset is not None:
            raise _user_error("dropout_offset is given without dropout_seed",
                              "give both, or neither to use the spec's dropout seed and offset")
        stream = None if dropout_seed is None else (
            _int_in_range("dropout_seed", dropout_seed, 0, _UINT64_MAX),
            _int_in_range("dropout_offset", 0 if dropout_offset is None else dropout_offset, 0, _UINT64_MAX))
        add = None if channel_add is None else _block_array("channel_add", channel_add, self.dtype)
        y = self._compiled.run(p, x, device, allow_tf32, stream, add)
        return y.astype(np.float16) if self.dtype == "f16" else y  # exact: y holds f16 values

    def _default_params(self):
        if self._spec_params is None:
            self._spec_params = self._compiled.spec_params()
        return self._spec_params

    def _core_params(self, params: Mapping[str, np.ndarray]):
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a dict of arrays keyed conv.weight, conv.bias, ..., got {type(params).__name__}")
        bad = next((k for k in params if not isinstance(k, str)), None)
        if bad is not None:
            raise TypeError(f"params' keys must be str (conv.weight, conv.bias, ...), got {type(bad).__name__} {bad!r}")
        return self._compiled.params_from({k: _block_array(k, v, self.dtype) for k, v in params.items()})

    def _to_block_dtype(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: v.astype(np.float16) for k, v in arrays.items()} if self.dtype == "f16" else arrays

    def __repr__(self) -> str:
        return f"fuseblock.Block({self.source_name}: {self.input_shape} -> {self.output_shape})"


def init_params(block: Block, seed: int) -> dict[str, np.ndarray]:
    """PyTorch's default initialisation of the block's parameters (kaiming-uniform conv weight
    with a = sqrt(5), bias uniform in +-1/sqrt(fan_in), GroupNorm weight 1 and bias 0), drawn
    from `seed` with fuseblock's Philox stream (not torch's generator)."""
    if not isinstance(block, Block):
        raise TypeError(f"init_params takes a fuseblock.Block, got {type(block).__name__}")
    return block._to_block_dtype(
        block._compiled.params_to_dict(block._compiled.init_params(_int_in_range("seed", seed, 0, _UINT64_MAX))))
