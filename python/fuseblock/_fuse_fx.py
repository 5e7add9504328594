"""fuse() on a module whose forward calls its blocks' modules in order (diffusers' ResnetBlock2D,
MONAI's SegResNet ResBlock): a torch.fx trace of that forward, the blocks found in its graph
replaced by FusedBlock calls, the graph's code installed as the module's forward (an instance
attribute; the module, its children and parameters stay as they were).

A trace is only true for the call it was made for: fx runs Python `if`s once, so `temb is None`,
a float argument, `self.training` or torch.is_grad_enabled() are fixed in the graph. So the
installed forward (TracedPlan) keeps one graph per kind of call: the module's training flag, grad
mode, and for each argument either "a tensor" or its value (None included). A kind of call not
seen before is traced at that call; where that fails, or an argument cannot be a key (a list of
tensors), the original forward runs."""
from __future__ import annotations

import operator
import threading
import types
from functools import partial

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from . import _module_spec as ms
from ._fuse_report import FuseReport, FusedEntry
from ._fused_block import FusedBlock
from ._fx_codegen import compile_graph, trace_failure
from ._plan_guard import PlanGuard
from ._stale_plan import StalePlanPolicy
from ._pointwise import _FUNCTIONS, FUNCTIONS_WITH_ARGUMENTS, is_identity, pointwise_spec_line, spec_number

_TENSOR = "<tensor>"  # an argument slot that holds a tensor (traced as a graph input)
_METHODS = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}
_ADDS = (operator.add, operator.iadd, torch.add)
_MAX_GRAPHS = 16  # kinds of call one traced module keeps
_MAX_FAILED_KINDS = 4  # kinds of call traced in vain before a module's plan gives up


# fx patches nn.Module.__call__ and __getattr__ process-wide while it traces, and restores what it
# found when done: two traces at once could leave a tracer's patch installed for good.
_TRACE_LOCK = threading.RLock()


class _Tracer(fx.Tracer):
    """torch.nn's own modules are leaves (fx's default), and so are modules already fused.

    Module calls and attribute reads of other threads, which fx's patches see too while a trace
    runs (a fused model's first call of a new kind of call), run as they would untraced."""

    def trace(self, root, concrete_args=None):
        with _TRACE_LOCK:
            self._thread = threading.get_ident()
            self.traced_through = []
            return super().trace(root, concrete_args)

    def is_leaf_module(self, m, qualname):
        if qualname == "m":
            return False
        return "forward" in m.__dict__ or super().is_leaf_module(m, qualname)

    def call_module(self, m, forward, args, kwargs):
        if threading.get_ident() != self._thread:
            return forward(*args, **kwargs)
        qualname = self.path_of_module(m)
        if not self.is_leaf_module(m, qualname):  # its forward is inlined: the plan covers it
            self.traced_through.append((qualname, m))
        return super().call_module(m, forward, args, kwargs)

    def getattr(self, attr, attr_val, parameter_proxy_cache):
        if threading.get_ident() != self._thread:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)


def _root(m, key) -> nn.Module:
    """A root for the trace of one kind of call: its forward takes the call's tensors as
    placeholders and calls the module with them and the call's other values, by position and
    keyword as the call gave them. (fx traces type(root).forward, so the class is made per key.)"""
    _, _, pos, kw = key
    names, args, kwargs = [], [], {}
    for i, slot in enumerate(pos):
        args.append(f"t{len(names)}" if slot == _TENSOR else f"_c[{i}]")
        names += [f"t{len(names)}"] if slot == _TENSOR else []
    for name, slot in kw:
        kwargs[name] = f"t{len(names)}" if slot == _TENSOR else f"_k[{name!r}]"
        names += [f"t{len(names)}"] if slot == _TENSOR else []
    call = ", ".join(args + [f"{k}={v}" for k, v in kwargs.items()])
    # The class's forward, not self.m(...): the module's own forward may be a TracedPlan already.
    scope = {"_c": [None if s == _TENSOR else s[2] for s in pos], "_k": {k: s[2] for k, s in kw if s != _TENSOR},
             "_forward": type(m).forward}
    call = ", ".join(["self.m"] + ([call] if call else []))
    exec(f"def forward(self, {', '.join(names)}):\n    return _forward({call})\n", scope)  # noqa: S102
    root = type("_TraceRoot", (nn.Module,), {"forward": scope["forward"]})()
    root.m = m
    return root


def call_key(module, args, kwargs):
    """The kind of call: (training, grad mode, positional slots, keyword slots); None when an
    argument is neither a tensor nor hashable."""
    def slot(v):
        return _TENSOR if isinstance(v, (torch.Tensor, fx.Proxy)) else ("v", type(v), v)
    key = (module.training, torch.is_grad_enabled(), tuple(slot(a) for a in args),
           tuple((k, slot(v)) for k, v in kwargs.items()))
    if torch.compiler.is_compiling():
        # Dynamo (torch 2.11) cannot trace hash() of a tuple; the values it sees are constants, so
        # plain scalars are known to hash, and anything else runs the original forward.
        plain = (bool, int, float, str, type(None), torch.dtype, torch.device)
        slots = list(key[2]) + [kv[1] for kv in key[3]]
        return key if all(s is _TENSOR or isinstance(s[2], plain) for s in slots) else None
    try:
        hash(key)
    except TypeError:
        return None
    return key


def signature_key(module):
    """The kind of call fuse() traces up front: every parameter without a default a tensor,
    given by position, the others left at their defaults."""
    import inspect
    pos = []
    for p in inspect.signature(module.forward).parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty:
            pos.append(_TENSOR)
    return (module.training, torch.is_grad_enabled(), tuple(pos), ())


def _desc(node, modules, prefix) -> str:
    if node.op == "call_module":
        return f"{prefix}{node.target[2:]} ({type(modules[node.target]).__name__})"
    if node.op == "output":
        return "the module's output"
    name = getattr(node.target, "__name__", str(node.target))
    return f"{name}()"


def _chain_op(node, cur, modules):
    """(spec source, eager callable) of a pointwise op or nn.Dropout applied to `cur`, or None."""
    if not node.args or node.args[0] is not cur:
        return None
    if node.op == "call_module" and len(node.args) == 1 and not node.kwargs:
        m = modules[node.target]
        if ms.hooks_problem(m):
            return None
        if type(m) is nn.Dropout or is_identity(m):
            return m, m
        try:
            pointwise_spec_line(m)
            return m, m
        except TypeError:
            return None
    if node.op == "call_function" and node.target in FUNCTIONS_WITH_ARGUMENTS:
        return _function_with_arguments(node)
    if node.op == "call_function" and len(node.args) == 1:
        if node.target is F.gelu and set(node.kwargs) <= {"approximate"}:
            a = node.kwargs.get("approximate", "none")
            return f"gelu approximate={a}", partial(F.gelu, approximate=a)
        if node.target in _FUNCTIONS and set(node.kwargs) <= {"inplace"}:
            return node.target, node.target
    if node.op == "call_method" and node.target in _METHODS and len(node.args) == 1 and not node.kwargs:
        return _METHODS[node.target], _METHODS[node.target]
    return None


def _function_with_arguments(node):
    """F.leaky_relu(x, 0.2), F.elu(x, alpha=0.5), ...: its spec line and the call, when every
    argument is a number (positional or keyword; inplace too, which changes nothing in a block)."""
    keyword, params = FUNCTIONS_WITH_ARGUMENTS[node.target]
    names = [n for n, _ in params] + ["inplace"]
    values = dict(zip(names, node.args[1:]))
    if len(node.args) - 1 > len(names) or not set(node.kwargs) <= set(names) - set(values):
        return None
    values.update(node.kwargs)
    numbers = {n: values.get(n, d) for n, d in params}
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers.values()):
        return None
    line = " ".join([keyword] + [f"{n}={spec_number(v)}" for n, v in numbers.items()])
    return line, partial(node.target, **numbers)


def _added(node, cur):
    """The other operand when `node` adds a tensor to `cur`, else None."""
    is_add = (node.op == "call_function" and node.target in _ADDS) or (
        node.op == "call_method" and node.target in ("add", "add_"))
    if not is_add or len(node.args) != 2 or node.kwargs:
        return None
    other = node.args[1] if node.args[0] is cur else node.args[0] if node.args[1] is cur else None
    # h + h is not an added input: `other` would be the conv's own output, which the block replaces.
    return other if isinstance(other, fx.Node) and other is not cur else None


def _single_user(node):
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def _conv_input(node):
    """The conv call's input, given by position or as `input=`; None for any other call."""
    if len(node.args) == 1 and not node.kwargs:
        return node.args[0]
    return node.kwargs["input"] if not node.args and set(node.kwargs) == {"input"} else None


def _match(conv_node, modules, prefix):
    """(run nodes, other, norm, chain, stop) from a conv node, or (None, reason)."""
    conv = modules[conv_node.target]
    problem = ms.conv_problem(conv)
    if problem:
        return None, problem
    if _conv_input(conv_node) is None:
        return None, "it is called with arguments other than its input"
    nxt = _single_user(conv_node)
    if nxt is None:
        return None, f"its output is used {len(conv_node.users)} times"
    run, other = [conv_node], _added(nxt, conv_node)
    if other is not None:
        run.append(nxt)
        nxt = _single_user(nxt)
        if nxt is None:
            return None, "the sum of its output and the added tensor is used more than once"
    if not (nxt.op == "call_module" and ms.is_norm(modules[nxt.target])):
        what = "its output plus another tensor" if other is not None else "its output"
        return None, f"{what} goes to {_desc(nxt, modules, prefix)}, not a GroupNorm or InstanceNorm"
    norm = modules[nxt.target]
    problem = ms.norm_problem(norm, conv)
    if problem:
        return None, problem
    run.append(nxt)
    chain, cur = [], nxt
    while True:
        user = _single_user(cur)
        if user is None:
            stop = f"the chain ends at {_desc(cur, modules, prefix)}: its output is used {len(cur.users)} times"
            break
        op = _chain_op(user, cur, modules)
        if op is None or (type(op[0]) is nn.Dropout and any(type(s) is nn.Dropout for s, _ in chain)):
            stop = f"the chain ends before {_desc(user, modules, prefix)}"
            break
        chain.append(op)
        run.append(user)
        cur = user
    return (run, other, norm, chain, stop), None


def _op_name(node) -> str:
    return getattr(node.target, "__name__", str(node.target))


def rewrite(graph: fx.Graph, modules: dict, prefix: str, blocks: dict, report: FuseReport, where: str) -> int:
    """Replaces every block of `graph` by a call of its FusedBlock (kept in `blocks`, by its
    names); returns how many."""
    count = 0
    for node in list(graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], nn.modules.conv._ConvNd):
            continue
        conv_path = prefix + node.target[2:]
        found, why = _match(node, modules, prefix)
        if found is None:
            report.add_left(conv_path, why)
            continue
        run, other, norm, chain, stop = found
        names = [prefix + n.target[2:] if n.op == "call_module" else _op_name(n) for n in run]
        if other is not None:
            names[1] = "+ per-(sample, channel) input"
        key = tuple(names)
        if key not in blocks:
            try:
                blocks[key] = FusedBlock(modules[node.target], norm, chain, other is not None, names)
            except (ValueError, TypeError) as e:
                report.add_left(conv_path, f"fuseblock refuses the block: {str(e).splitlines()[0]}")
                continue
        block = blocks[key]
        index = list(blocks).index(key)
        last = run[-1]
        with graph.inserting_before(last):
            table = graph.get_attr("_fuseblock_blocks")
            fb = graph.call_function(operator.getitem, (table, index))
            new = graph.call_function(_call_block, (fb, _conv_input(node), other))
        last.replace_all_uses_with(new)
        for n in reversed(run):
            graph.erase_node(n)
        report.add_fused(FusedEntry(where, "fx trace", block, stop), conv_path)
        count += 1
    return count


def _call_block(block, x, other):
    return block(x, other)


class TracedPlan:
    """The forward installed on a traced module: one compiled graph per kind of call, each with
    the guard (_plan_guard) of what its trace covered, checked at every call."""

    def __init__(self, module, path: str, report: FuseReport):
        self.module, self.path, self.report = module, path, report
        self.blocks: dict = {}
        self.graphs: dict = {}  # kind of call -> _Graph, or None (the original forward)
        self.failed_kinds = 0
        self.policy = StalePlanPolicy(path, report)
        module.__dict__["_fuseblock_blocks"] = _BlockTable(self.blocks)

    def __getstate__(self):  # compiled graphs are code objects: traced again after unpickling
        return {**self.__dict__, "graphs": {}}

    @property
    def __code__(self):  # torch.export reads the root module's forward.__code__
        return type(self).__call__.__code__

    def build(self, key):
        """The graph for one kind of call (None: the original forward), and how many blocks it
        fused; a failed trace is a sentence saying why."""
        prefix = self.path + "." if self.path else ""
        root = _root(self.module, key)
        tracer = _Tracer()
        try:
            graph = tracer.trace(root)
        except Exception as e:  # noqa: BLE001 - any failure of tracing means "run it unfused"
            return None, 0, trace_failure(e)
        covered = [(prefix + q[2:], m) for q, m in tracer.traced_through]
        hooked = next((p for p, m in covered if ms.hooks_problem(m)), None)
        if hooked is not None:
            return None, 0, f"{hooked} has forward hooks or pre-hooks, which the traced forward would not run"
        modules = dict(root.named_modules())
        count = rewrite(graph, modules, prefix, self.blocks, self.report,
                        f"{self.path or '<model>'} ({type(self.module).__name__})")
        fused = [(p, m) for n in graph.nodes if n.op == "call_function" and n.target is _call_block
                 for p, m in self.blocks_in(n)]
        for n in graph.nodes:  # the graph's code runs with the module itself as `self`
            if n.op in ("call_module", "get_attr") and n.target.startswith("m."):
                n.target = n.target[2:]
            elif n.op == "get_attr" and n.target != "_fuseblock_blocks":
                n.target = self._keep_constant(root, n.target)
        graph.lint()
        guard = PlanGuard([(self.path, self.module)] + covered, fused, root=self.module)
        return _Graph(compile_graph(graph), guard), count, None

    def _keep_constant(self, root, name: str) -> str:
        """A tensor fx made an attribute of the trace's root (a constant of the forward, e.g.
        torch.tensor(...)): kept in a namespace of the module (not an nn.Module: the model's tree
        and state_dict stay as they are), under a name of its own for this graph."""
        constants = self.module.__dict__.setdefault("_fuseblock_constants", types.SimpleNamespace())
        kept = f"c{len(vars(constants))}_{name}"
        setattr(constants, kept, getattr(root, name))
        return f"_fuseblock_constants.{kept}"

    def blocks_in(self, call_node) -> list:
        index = call_node.args[0].args[1]  # _call_block(getitem(table, index), x, other)
        return list(self.blocks.values())[index].modules_by_name()

    def _original(self, args, kwargs):
        return type(self.module).forward(self.module, *args, **kwargs)

    def __call__(self, *args, **kwargs):
        m = self.module
        key = call_key(m, args, kwargs)
        if key is None:
            return self._original(args, kwargs)
        graph = self.graphs.get(key, _UNSEEN)
        if graph is not _UNSEEN and graph is not None:
            why = graph.guard.stale()
            if why is not None:
                if not self.policy.replans(why, torch.compiler.is_compiling()):
                    return self._original(args, kwargs)
                self.graphs.clear()  # every graph may call the changed modules: all are traced again
                self.module.__dict__["_fuseblock_blocks"].clear()
                self.module.__dict__.pop("_fuseblock_constants", None)
                graph = _UNSEEN
        if graph is _UNSEEN:
            if len(self.graphs) >= _MAX_GRAPHS:
                # A value that changes every call (a float schedule) would trace every call: stop.
                self.report.add_note(f"{self.path or '<model>'}: more than {_MAX_GRAPHS} kinds of call; new ones "
                                     "run unfused")
                return self._original(args, kwargs)
            if torch.compiler.is_compiling():
                # Tracing compiles the graph's code with exec, which torch.compile cannot follow (a
                # graph break, an error under fullgraph=True): this kind of call, first seen while
                # compiling, runs the original forward; torch.compile compiles its modules itself.
                return self._original(args, kwargs)
            graph = self._build_for_call(key)
        if graph is None:
            return self._original(args, kwargs)
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        tensors += [v for v in kwargs.values() if isinstance(v, torch.Tensor)]
        if graph.checked or torch.compiler.is_compiling():
            return graph.fn(m, *tensors)
        return self._first_call(key, graph, tensors, args, kwargs)

    def _build_for_call(self, key):
        graph, _, failure = self.build(key)
        if failure:
            self.report.add_note(f"{self.path or '<model>'}: a new kind of call could not be traced "
                                 f"({failure}); it runs unfused")
            self.failed_kinds += 1
            if self.failed_kinds >= _MAX_FAILED_KINDS and not any(self.graphs.values()):
                self.report.add_note(f"{self.path or '<model>'}: {self.failed_kinds} kinds of call could not be "
                                     "traced; its forward is the module's own again")
                for name in ("forward", "_fuseblock_blocks", "_fuseblock_constants"):
                    self.module.__dict__.pop(name, None)
        self.graphs[key] = graph
        return graph

    def _first_call(self, key, graph, tensors, args, kwargs):
        """A graph's first call: where it raises (fx wrote code that cannot run), the graph is
        dropped with a note, and the original forward gives this call's result (or its error)."""
        try:
            y = graph.fn(self.module, *tensors)
        except Exception as e:  # noqa: BLE001 - the original forward raises it again if it is the input's fault
            self.graphs[key] = None
            self.report.add_note(f"{self.path or '<model>'}: a traced forward failed at its first call "
                                 f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                                 "this kind of call runs unfused")
            return self._original(args, kwargs)
        graph.checked = True
        return y


_UNSEEN = object()


class _Graph:
    """One kind of call's compiled forward and its guard; `checked` once a call ran it."""

    def __init__(self, fn, guard: PlanGuard):
        self.fn, self.guard, self.checked = fn, guard, False


class _BlockTable:
    """The FusedBlocks a traced forward indexes (not an nn.Module: the model's tree is unchanged)."""

    def __init__(self, blocks: dict):
        self.blocks = blocks
        self._by_index: list = []

    def clear(self) -> None:
        self.blocks.clear()
        self._by_index = []

    def __getitem__(self, i):
        # Every call of a traced forward indexes here: the list is rebuilt only when a trace
        # added blocks (the dict only grows), not on every call.
        if len(self._by_index) != len(self.blocks):
            self._by_index = list(self.blocks.values())
        return self._by_index[i]


def fuse_traced(module, path: str, report: FuseReport) -> None:
    """Traces `module` for the call fuse() expects; installs a TracedPlan where it found blocks.
    Where that trace fails and convolutions below are still unfused, the plan is installed all
    the same: the kind of call fuse() expected runs the original forward, and each other kind
    (other arguments, often the defaults the failed trace took) is traced at its first call,
    until _MAX_FAILED_KINDS kinds failed with none traced (then the plan removes itself)."""
    plan = TracedPlan(module, path, report)
    key = signature_key(module)
    graph, count, failure = plan.build(key)
    if failure:
        where = f"{path or '<model>'} ({type(module).__name__})"
        report.notes.append(f"fx could not trace {where} for a call with its defaults: {failure}; its "
                            f"Sequentials were scanned instead, and the first {_MAX_FAILED_KINDS} other kinds of "
                            "call are traced when made")
        plan.graphs[key] = None
        plan.failed_kinds = 1
        module.forward = plan
        return
    if count == 0:
        for name in ("_fuseblock_blocks", "_fuseblock_constants"):
            module.__dict__.pop(name, None)
        return
    plan.graphs[key] = graph
    module.forward = plan
