"""fuseblock: runs the PyTorch block conv -> GroupNorm -> pointwise chain -> Dropout as the
fewest, fastest kernels, with PyTorch's semantics (NaN and Inf included).

numpy API (this module; needs no torch):

    import fuseblock
    block = fuseblock.Block(fuseblock.default_spec())   # spec text, or the path of a spec file
    print(block.explain())                               # IR after every pass, plan, guard, kernels
    y = block.run(x)                                     # x: float32 array of block.input_shape
                                                         # (float16 for an `input f16[...]` block)

PyTorch API: ``import fuseblock.torch`` (the custom op ``fuseblock::block_forward``, the ``Block``
nn.Module and the KernelBench-compatible ``ModelNew``).

Errors the caller can fix raise ``fuseblock.UserError`` (a ValueError) whose message names the
spec's line:col and a hint.
"""
from __future__ import annotations

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
    a one-line string or an os.PathLike names a file."""
    if spec is None:
        return default_spec(), "<default>", ""
    if isinstance(spec, str) and "\n" in spec:
        return spec, "<spec>", ""
    path = os.fspath(spec)
    with open(path, encoding="utf-8") as f:
        return f.read(), path, os.path.dirname(path)


# The numpy dtype a block's arrays have, by the block's spec dtype. numpy has no bfloat16: a bf16
# block takes and returns float32 arrays holding bf16 values (inputs and parameters that are not
# bf16 values are rounded to nearest even, as torch's .to(torch.bfloat16) rounds them).
_NUMPY_DTYPE = {"f32": np.float32, "f16": np.float16, "bf16": np.float32}


def _block_array(name: str, a, block_dtype: str) -> np.ndarray:
    """A C-contiguous float32 array of an array in the block's numpy dtype (float16 converts
    exactly); any other dtype is an error rather than a silent cast."""
    want = _NUMPY_DTYPE[block_dtype]
    arr = np.asarray(a)
    if arr.dtype != want:
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
        self.assume_finite = assume_finite
        shape = None if input_shape is None else [int(d) for d in input_shape]
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
            allow_tf32: bool = True, dropout_seed: Optional[int] = None, dropout_offset: int = 0) -> np.ndarray:
        """Runs the block on x (shape input_shape; float32, or float16 for an f16 block, or
        float32 holding bf16 values for a bf16 block: see `dtype`); returns a new array of the same
        numpy dtype.

        params: None for the spec's own parameters, or a dict with the keys conv.weight,
          conv.bias, norm.weight, norm.bias (float32 arrays; the ones the block has no use for
          may be left out).
        device: "auto" (CUDA where a usable GPU is found, else CPU), "cpu" or "cuda".
        allow_tf32: CUDA may use TF32 matrix units, as PyTorch's cudnn.allow_tf32 default.
        dropout_seed, dropout_offset: the dropout mask's Philox stream (None: the spec's seed and
          offset).
        """
        x = _block_array("x", x, self.dtype)
        p = self._default_params() if params is None else self._core_params(params)
        stream = None if dropout_seed is None else (int(dropout_seed), int(dropout_offset))
        y = self._compiled.run(p, x, device, allow_tf32, stream)
        return y.astype(np.float16) if self.dtype == "f16" else y  # exact: y holds f16 values

    def _default_params(self):
        if self._spec_params is None:
            self._spec_params = self._compiled.spec_params()
        return self._spec_params

    def _core_params(self, params: Mapping[str, np.ndarray]):
        return self._compiled.params_from({k: _block_array(k, v, self.dtype) for k, v in params.items()})

    def _to_block_dtype(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: v.astype(np.float16) for k, v in arrays.items()} if self.dtype == "f16" else arrays

    def __repr__(self) -> str:
        return f"fuseblock.Block({self.source_name}: {self.input_shape} -> {self.output_shape})"


def init_params(block: Block, seed: int) -> dict[str, np.ndarray]:
    """PyTorch's default initialisation of the block's parameters (kaiming-uniform conv weight
    with a = sqrt(5), bias uniform in +-1/sqrt(fan_in), GroupNorm weight 1 and bias 0), drawn
    from `seed` with fuseblock's Philox stream (not torch's generator)."""
    return block._to_block_dtype(block._compiled.params_to_dict(block._compiled.init_params(int(seed))))
