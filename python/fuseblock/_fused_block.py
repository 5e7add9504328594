"""FusedBlock: one conv -> [+ per-(sample, channel) input] -> norm -> chain that fuse() found in a
model, run by the custom op on the model's own modules.

It holds the modules without registering them (a tuple is not an nn.Module attribute), so the
model's module tree, state_dict keys and parameters stay exactly as they were: a checkpoint loads
into the fused model and back, and .to(dtype/device) moves what the block reads. It reads the
parameters and the dropout module's .training at every call."""
from __future__ import annotations

import warnings
from typing import Optional, Sequence

import torch
from torch import nn

from . import _module_spec as ms
from ._core import UserError
from ._param_dtypes import DTYPES, dtype_problem, module_dtype_problem, norm_param_dtype
from ._torch_op import block_forward, compiled_block, cuda_refusal, draw_dropout_seed, forward_eager, runs_direct


class FusedBlock(nn.Module):
    """conv -> [add] -> norm -> chain, each op a module of the model (or a torch function of its
    forward). `chain` holds (spec source, eager callable) pairs: a module is both; a function of
    a traced forward has its spec line and the function.

    forward(x, other=None): `other` is what the model's forward added to the conv output. The op
    runs when it can; otherwise the modules themselves run, exactly as unfused (and no warning)
    when autograd is recording through the block (the op has no backward), under torch.autocast,
    when `other` is not a per-(sample, channel) tensor of x's dtype, x is unbatched, or x's dtype
    is not float32/bfloat16/float16; with
    one warning per reason when x's device cannot run this block's form (fuseblock.UserError from
    the CUDA backend's selection, e.g. a bf16 block whose chain folds to a constant) or the dtypes
    of x and the parameters are a mix the block does not run (_param_dtypes: float32 norm
    parameters after a bf16/f16 conv run fused; eager's own error where eager refuses a mix)."""

    def __init__(self, conv: nn.Module, norm: nn.Module, chain: Sequence[tuple], channel_add: bool,
                 names: Sequence[str]):
        super().__init__()
        self._parts = (conv, norm, tuple(chain))  # not registered: see the module docstring
        self.channel_add = channel_add
        self.names = list(names)
        self._specs: dict = {}
        self._warned: set = set()
        # Checks the whole block now, so fuse() reports a refusal rather than the first forward: a
        # dtype mix the block cannot run (a ValueError, which fuse() reports as the reason) too.
        if problem := module_dtype_problem(conv, norm):
            raise ValueError(problem)
        compiled_block(self._spec(channel_add), True, False, None)

    def extra_repr(self) -> str:
        return " -> ".join(self.names)

    def modules_by_name(self) -> list:
        """(path, module) of each module the block runs in place of (functions of a traced forward
        and the added input are not modules)."""
        conv, norm, chain = self._parts
        names = [n for i, n in enumerate(self.names) if not (self.channel_add and i == 1)]
        parts = [conv, norm, *(src for src, _ in chain)]
        return [(n, m) for n, m in zip(names, parts) if isinstance(m, nn.Module)]

    def _dropouts(self) -> list:
        return [src for src, _ in self._parts[2] if type(src) is nn.Dropout]

    def _dropout(self) -> Optional[nn.Dropout]:
        """The dropout whose mode and p decide whether the call draws a mask: the first that
        draws (p > 0), else the first (a Dropout(0) before a Dropout(0.3) must not hide it)."""
        drops = self._dropouts()
        return next((d for d in drops if d.p > 0), drops[0] if drops else None)

    def _spec(self, with_add: bool) -> str:
        conv, norm, chain = self._parts
        key = (with_add, tuple(d.p for d in self._dropouts()))  # the attribute models change at run time
        if key not in self._specs:
            self._specs[key] = ms.block_spec(conv, norm, [src for src, _ in chain], channel_add=with_add)
        return self._specs[key]

    def _eager(self, x, other):
        conv, norm, chain = self._parts
        y = conv(x)
        if other is not None:
            y = y + other
        y = norm(y)
        for _, fn in chain:
            y = fn(y)
        return y

    def _records_grad(self, x, other) -> bool:
        """Whether autograd would record through the block: x, `other` or a parameter of its
        modules requires grad. (_parameters directly: named_parameters() costs microseconds.)"""
        if x.requires_grad or (isinstance(other, torch.Tensor) and other.requires_grad):
            return True
        conv, norm, chain = self._parts
        modules = (conv, norm, *(s for s, _ in chain if isinstance(s, nn.Module)))
        return any(p is not None and p.requires_grad for m in modules for p in m._parameters.values())

    def _per_sample_channel(self, x, other):
        """other as [N, C_out] when it is [N or 1, C_out, 1, ...] of x's dtype and device, else None."""
        conv = self._parts[0]
        n, c = x.shape[0], conv.out_channels
        if not isinstance(other, torch.Tensor) or other.dtype != x.dtype or other.device != x.device:
            return None
        if other.dim() != x.dim() or other.shape[1] != c or other.shape[0] not in (1, n) or any(d != 1 for d in other.shape[2:]):
            return None
        return other.reshape(other.shape[0], c).expand(n, c).contiguous()

    def forward(self, x: torch.Tensor, other: Optional[torch.Tensor] = None) -> torch.Tensor:
        conv, norm, chain = self._parts
        drop = self._dropout()
        training = drop is not None and drop.training
        # Autograd recording through the block, in train or eval mode, dropout or none: the op has
        # no backward, so the modules run (the chain's PReLU slopes and `other` count too).
        recording = torch.is_grad_enabled() and self._records_grad(x, other)
        # Under torch.autocast eager PyTorch runs the conv in the autocast dtype (and x may come in
        # bf16 while the parameters stay float32): the modules, as unfused.
        autocast = x.device.type != "meta" and torch.is_autocast_enabled(x.device.type)  # meta has no autocast
        # An unbatched input ([C, H, W] to a Conv2d), which PyTorch's modules take: the op plans [N, C, ...].
        unbatched = x.dim() != ms.conv_dims(conv) + 2
        if recording or x.dtype not in DTYPES or autocast or unbatched:
            return self._eager(x, other)
        add = None
        if other is not None:
            add = self._per_sample_channel(x, other)
            if add is None:
                return self._eager(x, other)
        conv_weight, conv_bias = conv.weight, conv.bias  # read once: a module attribute costs ~0.3 us
        norm_weight = getattr(norm, "weight", None)
        norm_bias = getattr(norm, "bias", None)
        prelu = ms.prelu_weights([src for src, _ in chain])
        # The dtypes as they are now (the model may have been converted since fuse()): a mix eager
        # accepts and the block does not, or one eager refuses (its own error then), runs the modules.
        tensors = (conv_weight, conv_bias, norm_weight, norm_bias, prelu)
        if problem := self._dtype_problem(x, *tensors):
            return self._unfused(x, other, problem)
        spec = self._spec(add is not None)
        # After the check, norm parameters of another dtype than x's are float32 ones after a bf16/f16 x.
        norm_dtype = None if norm_weight is None or norm_weight.dtype == x.dtype else norm_param_dtype(
            x.dtype, norm_weight.dtype)
        if x.device.type == "cuda":
            refusal = cuda_refusal(spec, training, tuple(x.shape), DTYPES[x.dtype], norm_dtype)
            if refusal is not None:
                return self._unfused(x, other, refusal)
        seed = draw_dropout_seed(x.device) if training and drop.p > 0 else None
        # The op's body directly where nothing traces or records the call (Block._needs_op says why).
        run = forward_eager if runs_direct(x) else block_forward
        try:
            return run(x.contiguous(), conv_weight, conv_bias, norm_weight, norm_bias, seed, spec, training,
                       False, add, prelu)
        except UserError as e:
            # The modules agree with each other, so on CPU a UserError is a bug to show; on CUDA it
            # is the backend refusing (no strategy for this shape or form): the model keeps working.
            if x.device.type != "cuda":
                raise
            return self._unfused(x, other, str(e).splitlines()[0])

    @staticmethod
    def _dtype_problem(x, conv_weight, conv_bias, norm_weight, norm_bias, prelu) -> Optional[str]:
        d = x.dtype
        if (conv_weight.dtype == d and (conv_bias is None or conv_bias.dtype == d) and not prelu
                and (norm_weight is None or norm_weight.dtype == d) and (norm_bias is None or norm_bias.dtype == d)):
            return None  # one dtype throughout: the common case, checked without building dicts
        same = {"conv.weight": conv_weight, "conv.bias": conv_bias}
        same.update((f"PReLU {i} weight", w) for i, w in enumerate(prelu or []))
        return dtype_problem(d, same, {"norm.weight": norm_weight, "norm.bias": norm_bias})

    def _unfused(self, x, other, why: str):
        if why not in self._warned:
            self._warned.add(why)
            warnings.warn(f"fuseblock: {' -> '.join(self.names)} runs unfused on {x.device}: {why}", stacklevel=3)
        return self._eager(x, other)
