"""The code of a rewritten fx graph as a function, and fx's failures in a user's terms.

fx writes each constant of the graph into its code by repr(). A numpy scalar (diffusers' score-SDE
blocks pass output_scale_factor=np.sqrt(2.0)) becomes `np.float64(1.414...)`, which names numpy
where fx's code has no `np` in scope: the first call would raise NameError. The constants are
made Python numbers (the same value: float64 and smaller types convert exactly; torch treats a
numpy scalar operand as that number) and numpy is in the scope for anything else that names it."""
from __future__ import annotations

import torch.fx as fx

try:
    import numpy as _np
except ImportError:  # numpy is optional for fuseblock.torch
    _np = None


def _plain(v):
    return v.item() if _np is not None and isinstance(v, _np.generic) else v


def compile_graph(graph: fx.Graph, root_name: str = "self"):
    """forward(root, *inputs) from the graph's code (fx's own way: GraphModule.recompile)."""
    if _np is not None:
        for node in graph.nodes:
            node.args = fx.node.map_aggregate(node.args, _plain)
            node.kwargs = fx.node.map_aggregate(node.kwargs, _plain)
    code = graph.python_code(root_module=root_name)
    scope = dict(code.globals)
    if _np is not None:
        scope.setdefault("np", _np)
        scope.setdefault("numpy", _np)
    exec(code.src, scope)  # noqa: S102
    return scope["forward"]


def trace_failure(e: Exception) -> str:
    """fx's exception as a sentence: what in the forward stops a trace, and what fuse() does."""
    first = str(e).splitlines()[0] if str(e) else ""
    text = f"{type(e).__name__}: {first}"
    if isinstance(e, KeyError) and "Proxy(" in first:
        return (f"{text} (the forward uses a traced value as a dict key or looks it up by identity, which a "
                "symbolic trace cannot follow)")
    if isinstance(e, fx.proxy.TraceError) or "symbolically traced variables cannot be used" in first:
        return (f"{text} (the forward's control flow depends on a tensor's values or its Python bool, which "
                "a symbolic trace cannot follow)")
    if "Proxy" in first or "proxy" in first:
        return f"{text} (the forward passes a traced value to code that needs a real tensor or number)"
    return text
