"""``vmap``: a function of one example, run on a batch of them, with JAX's and torch.func's semantics.

How it works: trace, then batch.

1. ``f`` is called once on the first example of each batched input (a fresh leaf that requires grad), with
   recording on, so every primitive it applies is a node of a graph, and values it computes off the graph
   (comparisons, results under ``no_grad``, ``detach()``) are reported to the tracer
   (``grad_mode.MODE.batch``).  Inside, transforms see tensors that require grad and record their own work:
   ``grad``'s backward pass is a graph too (``create_graph``), and so are forward-mode sweeps.
2. That graph is replayed on the whole batch: each node that depends on a batched input runs its
   primitive's *batching rule* (``chainrule.primitives.batching``, one per primitive in the registry) on the
   physical batched values, which carry the batch axis at a known position.  Nodes that depend on no
   batched input are reused as they are.  The replay runs through ``tensor.apply`` on tensors, so it is
   recorded in turn: ``grad(vmap(f))`` differentiates it, and an outer ``vmap`` traces it.

Nested vmaps need no levels: the outer vmap traces the inner one, whose replay is the outer trace's graph.
Python control flow on a batched value (``if t:``, ``t.item()``, ``.data``, an index computed from data)
cannot be batched and is refused, as are random draws and in-place writes, while ``f`` is traced.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

import numpy as np

from .grad_mode import MODE, TRANSFORM_DEPTH, enable_grad
from .ops import TENSOR
from .ops import concatenate as _concatenate
from .primitive import Primitive
from .primitives.batching import BatchingError, align, moveaxis, rule_of
from .rng import REFUSE
from .saved import keep_values
from .tensor import Tensor, node_parts
from .versions import FREED, _next_seq

InDims = Union[int, None, Sequence[Any], dict]


class VmapError(RuntimeError):
    """``f`` did something ``vmap`` cannot batch (a read of a batched value, a primitive without a rule ...)."""


# --- pytrees: tuples, lists and dicts of leaves ------------------------------------------------------


def _flatten(tree: Any) -> tuple[list[Any], Any]:
    """Leaves in order and a spec to rebuild the tree (tuples, lists and dicts are containers)."""
    if isinstance(tree, (tuple, list)):
        leaves: list[Any] = []
        specs = []
        for item in tree:
            sub, spec = _flatten(item)
            leaves += sub
            specs.append((len(sub), spec))
        return leaves, (type(tree), specs)
    if isinstance(tree, dict):
        keys = list(tree)
        leaves, spec = _flatten([tree[k] for k in keys])
        return leaves, (dict, keys, spec)
    return [tree], None


def _unflatten(spec: Any, leaves: Sequence[Any]) -> Any:
    if spec is None:
        return leaves[0]
    if spec[0] is dict:
        _, keys, inner = spec
        return dict(zip(keys, _unflatten(inner, leaves)))
    kind, specs = spec
    items, k = [], 0
    for n, sub in specs:
        items.append(_unflatten(sub, leaves[k : k + n]))
        k += n
    return kind(items) if kind in (tuple, list) else kind(*items)


def _dims_for(dims: Any, tree: Any, what: str) -> list[Optional[int]]:
    """One dim per leaf of ``tree``: ``dims`` is an int or None (for every leaf) or a tree matching ``tree``."""
    if dims is None or isinstance(dims, (int, np.integer)) and not isinstance(dims, bool):
        return [None if dims is None else int(dims)] * len(_flatten(tree)[0])
    if isinstance(dims, (tuple, list)) and isinstance(tree, (tuple, list)):
        if len(dims) != len(tree):
            raise ValueError(
                f"vmap: {what} has {len(dims)} entries but the value it describes has {len(tree)}; give one "
                "entry (an int, None or a nested tree) per element"
            )
        out: list[Optional[int]] = []
        for d, t in zip(dims, tree):
            out += _dims_for(d, t, what)
        return out
    if isinstance(dims, dict) and isinstance(tree, dict):
        if set(dims) != set(tree):
            raise ValueError(f"vmap: {what} has keys {sorted(dims)} but the value has keys {sorted(tree)}")
        out = []
        for k in tree:
            out += _dims_for(dims[k], tree[k], what)
        return out
    raise ValueError(
        f"vmap: {what} must be an int, None, or a tuple/list/dict matching the structure of the value, got "
        f"{dims!r} for a value of type {type(tree).__name__}"
    )


# --- the tracer ------------------------------------------------------------------------------------------


class _Tracer:
    """Watches one call of ``f`` on the first example: which tensors depend on the batched inputs, and the
    values computed from them off the graph.  Installed as ``MODE.batch`` (and as ``MODE.observer``, which
    value reads report to)."""

    def __init__(self, outer: Optional[_Tracer], observer: Any) -> None:
        self.outer = outer
        self.observer = observer  # the observer this one stands in front of (an outer vmap's, or cr.compile's)
        self.start_seq = _next_seq()
        self.inputs: dict[int, Tensor] = {}
        self.derived_from: dict[int, tuple[Tensor, Any, tuple]] = {}
        self.dep: dict[int, bool] = {}
        self.alive: list[Any] = []  # tensors whose ids are memo keys stay alive while the tracer lives

    def depends(self, t: Tensor) -> bool:
        """Whether ``t`` was computed from a batched input of this vmap."""
        memo = self.dep
        hit = memo.get(id(t))
        if hit is not None:
            return hit
        stack = [t]
        while stack:
            x = stack[-1]
            if id(x) in memo:
                stack.pop()
                continue
            node = x._node
            if node is None or node is FREED or x._seq < self.start_seq:
                memo[id(x)] = id(x) in self.inputs or id(x) in self.derived_from
                self.alive.append(x)
                stack.pop()
                continue
            pending = [i for i in node_parts(x)[0] if i is not None and id(i) not in memo]
            if pending:
                stack.extend(pending)
                continue
            memo[id(x)] = any(i is not None and memo[id(i)] for i in node_parts(x)[0])
            self.alive.append(x)
            stack.pop()
        return memo[id(t)]

    def derived(self, t: Tensor, how: Any, operands: tuple) -> None:
        """A value computed off the graph (``tensor._off_graph``): remembered if it depends on a batched input."""
        if any(type(o) is Tensor and self.depends(o) for o in operands):
            self.derived_from[id(t)] = (t, how, operands)
            self.dep[id(t)] = True
            self.alive.append(t)
        if self.outer is not None:
            self.outer.derived(t, how, operands)

    # --- the value-read observer protocol (grad_mode.MODE.observer) ------------------------------------
    def read(self, t: Tensor, what: str, value: Any) -> Any:
        if self.depends(t):
            raise VmapError(
                f"vmap: the function reads the value of a batched tensor (Tensor.{what}, shape {t.shape} per "
                "example): Python control flow on data, .item(), .numpy(), .data, or an index computed from "
                "the batched input cannot be batched. Use chainrule operations instead (cr.where for "
                "branches, a one-hot product instead of indexing with a batched index)"
            )
        if self.observer is not None:
            return self.observer.read(t, what, value)
        return None if what == "data" else value

    def enter(self, module: Any) -> None:
        if self.observer is not None:
            self.observer.enter(module)

    def call(self, fn: Callable, owner: Any, *args: Any) -> Any:
        if self.observer is not None:
            return self.observer.call(fn, owner, *args)
        return fn(owner, *args)


def _trace(f: Callable, kwargs: dict, leaves: list, dims: list, spec: Any) -> tuple[_Tracer, Any]:
    """Call ``f`` on the first example of every batched leaf; returns the tracer and f's output."""
    tracer = _Tracer(MODE.batch, MODE.observer)
    sample = list(leaves)
    for k, (leaf, d) in enumerate(zip(leaves, dims)):
        if d is None:
            continue
        raw = leaf._data if type(leaf) is Tensor else np.asarray(leaf)
        first = np.array(np.take(raw, 0, axis=d))
        floating = first.dtype.kind == "f"
        t = Tensor(first, floating)
        tracer.inputs[id(t)] = t
        tracer.alive.append(t)
        sample[k] = t
    saved = (MODE.batch, MODE.observer, REFUSE.reason)
    MODE.batch = tracer
    MODE.observer = tracer
    REFUSE.reason = "vmap"
    try:
        with enable_grad(), keep_values():
            out = f(*_unflatten(spec, sample), **kwargs)
    finally:
        MODE.batch, MODE.observer, REFUSE.reason = saved
    return tracer, out


# --- the replay ---------------------------------------------------------------------------------------------


def _raw(v: Any) -> Any:
    return v._data if type(v) is Tensor else v


def _batch_derived(how: Any, vals: list, dims: list, t: Tensor) -> tuple[Any, int]:
    """A value computed off the graph, batched: a primitive by its rule, a NumPy function elementwise."""
    if isinstance(how, Primitive):
        nin = len(vals) - 1 if how.variadic else how.nin
        return rule_of(how)(TENSOR, vals[:nin], dims[:nin], *[_raw(v) for v in vals[nin:]])
    if how == "detach":
        return Tensor(_raw(vals[0])), dims[0]
    if how is None or isinstance(how, str):
        name = f"{how} " if how else ""
        raise VmapError(
            f"vmap: a value of shape {t.shape} per example is computed from a batched input by an operation "
            f"{name}that vmap cannot batch yet (it works on the raw array); use chainrule's differentiable "
            "operations, or compute it outside vmap"
        )
    arrays = [(_raw(v), d) for v, d in zip(vals, dims)]
    rank = max(np.ndim(a) - (d is not None) for a, d in arrays)
    args = [a if d is None else align(_NP, np.asarray(a), d, rank) for a, d in arrays]
    return Tensor(np.asarray(how(*args))), 0


class _NumPyShapes:
    """The few namespace functions ``align`` needs, on NumPy arrays (off-graph values need no recording)."""

    shape = staticmethod(np.shape)
    transpose = staticmethod(np.transpose)
    reshape = staticmethod(np.reshape)


_NP = _NumPyShapes()


def _replay(tracer: _Tracer, roots: list, physical: dict[int, tuple[Any, int]]) -> dict[int, tuple[Any, Any]]:
    """Batch every tensor ``roots`` depend on: id -> (value, batch dim or None for a shared value).

    The nodes are put in order first (parents before children), then batched in that order, and a batched
    intermediate is dropped from the memo as soon as the last node that reads it has run: the batch's
    intermediates are not all alive at once (a per-sample gradient's backward would otherwise hold every
    forward value, and arrays past what the allocator has free come from fresh pages, a page fault per 4 KiB)."""
    memo: dict[int, tuple[Any, Any]] = dict(physical)
    derived = tracer.derived_from

    def parents(x: Tensor) -> Sequence[Any]:
        entry = derived.get(id(x))
        if entry is not None:
            return entry[2]
        if x._node is None or x._node is FREED or x._seq < tracer.start_seq:
            return ()
        return node_parts(x)[0]

    order: list[tuple[Tensor, Sequence[Any]]] = []
    uses: dict[int, int] = {}
    placed: set[int] = set()
    # the largest outputs first (per-sample gradients of the biggest weights): their arrays are made while the
    # allocator still has the most room, not at the peak of the replay, where big arrays come from fresh pages
    for root in sorted((r for r in roots if type(r) is Tensor), key=lambda r: -int(np.size(r._data))):
        stack = [root]
        while stack:
            x = stack[-1]
            if id(x) in memo or id(x) in placed:
                stack.pop()
                continue
            if not tracer.depends(x):
                memo[id(x)] = (x, None)
                stack.pop()
                continue
            ps = parents(x)
            pending = [p for p in ps if type(p) is Tensor and id(p) not in memo and id(p) not in placed]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            placed.add(id(x))
            order.append((x, ps))
            for p in ps:
                if type(p) is Tensor:
                    uses[id(p)] = uses.get(id(p), 0) + 1
    keep = set(physical) | {id(r) for r in roots if type(r) is Tensor}
    for x, ps in order:
        memo[id(x)] = _batch_one(x, derived.get(id(x)), memo)
        for p in ps:
            if type(p) is Tensor:
                left = uses[id(p)] = uses[id(p)] - 1
                if not left and id(p) not in keep and memo[id(p)][1] is not None:
                    del memo[id(p)]  # its last reader has run
    return memo


def _batch_one(x: Tensor, entry: Optional[tuple], memo: dict) -> tuple[Any, Any]:
    if entry is not None:
        _, how, operands = entry
        vals, dims = _gather(operands, None, memo)
        return _batch_derived(how, vals, dims, x)
    prim = x._node
    if prim is FREED:
        raise VmapError(
            "vmap: the function ran backward() (without retain_graph) on a value computed from a batched input; "
            "use cr.grad inside vmap"
        )
    inputs, args = node_parts(x)
    vals, dims = _gather(inputs, args, memo)
    nin = len(inputs)
    try:
        out, d = rule_of(prim)(TENSOR, vals, dims, *args[nin:])
    except BatchingError:
        raise
    except Exception as exc:
        raise VmapError(
            f"vmap: the batching rule of {prim.name!r} failed on inputs of shapes "
            f"{[tuple(np.shape(_raw(v))) for v in vals]} with batch dims {dims}: {type(exc).__name__}: {exc}"
        ) from exc
    return out, d


def _gather(inputs: Sequence[Any], args: Optional[Sequence[Any]], memo: dict) -> tuple[list, list]:
    vals, dims = [], []
    for i, inp in enumerate(inputs):
        if type(inp) is Tensor:
            v, d = memo[id(inp)]
        else:
            v, d = (inp if args is None else args[i]), None
        vals.append(v)
        dims.append(d)
    return vals, dims


# --- vmap itself ----------------------------------------------------------------------------------------------


def _place(value: Any, d: Any, out_dim: Optional[int], size: int, index: int) -> Any:
    """One output leaf with its batch axis at ``out_dim`` (a shared value is broadcast along a new one)."""
    if out_dim is None:
        if d is not None:
            raise ValueError(
                f"vmap: out_dims is None for output {index}, but that output depends on a batched input; "
                "give it an int out_dim"
            )
        return value
    if type(value) is not Tensor:
        if not isinstance(value, (float, int, np.ndarray, np.generic)) or isinstance(value, bool):
            raise TypeError(
                f"vmap: f must return arrays or tensors (or tuples, lists and dicts of them); output {index} "
                f"is a {type(value).__name__}"
            )
        value = Tensor(np.asarray(value) if not isinstance(value, float) else value)
    if d is None:
        shape = value.shape
        value = TENSOR.broadcast_to(TENSOR.reshape(value, (1,) + shape), (size,) + shape)
        d = 0
    nd = value.ndim
    if not -nd <= out_dim < nd:
        raise ValueError(f"vmap: out_dims {out_dim} is out of range for output {index} with {nd} dims (batch included)")
    return moveaxis(TENSOR, value, d, out_dim)


class _Call:
    """One call of a vmapped function: the batched inputs checked, traced once, replayed per chunk."""

    def __init__(self, f: Callable, in_dims: InDims, out_dims: Any, args: tuple, kwargs: dict) -> None:
        if not args:
            raise ValueError("vmap: f must be called with at least one positional argument to batch over")
        if isinstance(in_dims, (tuple, list)) and not isinstance(in_dims, dict):
            if len(in_dims) != len(args):
                raise ValueError(
                    f"vmap: in_dims has {len(in_dims)} entries but f was called with {len(args)} positional "
                    "arguments; give one entry per argument (an int, None, or a tree matching it)"
                )
            dims = _dims_for(list(in_dims), list(args), "in_dims")
        else:
            dims = _dims_for(in_dims, list(args), "in_dims")
        self.leaves, self.spec = _flatten(args)
        self.dims: list[Optional[int]] = []
        sizes = {}
        for k, (leaf, d) in enumerate(zip(self.leaves, dims)):
            if d is None:
                self.dims.append(None)
                continue
            if not (type(leaf) is Tensor or isinstance(leaf, (np.ndarray, np.generic, float, int))):
                raise ValueError(
                    f"vmap: input {k} is a {type(leaf).__name__}, which has no axis to batch over; give it in_dims None"
                )
            nd = np.ndim(_raw(leaf))
            if not -nd <= d < nd:
                raise ValueError(
                    f"vmap: in_dims {d} is out of range for input {k} of shape {np.shape(_raw(leaf))} "
                    f"(valid: {-nd} to {nd - 1})"
                    + ("; a 0-d input cannot be batched, give it in_dims None" if nd == 0 else "")
                )
            d %= nd
            self.dims.append(d)
            sizes[k] = np.shape(_raw(leaf))[d]
        if not sizes:
            raise ValueError("vmap: at least one input must be batched (in_dims is None for every input)")
        if len(set(sizes.values())) > 1:
            raise ValueError(
                "vmap: the batched inputs have different sizes along their in_dims: "
                + ", ".join(f"input {k}: {n}" for k, n in sizes.items())
            )
        self.size = next(iter(sizes.values()))
        if self.size == 0:
            raise ValueError("vmap: the batch is empty (size 0 along in_dims); there is nothing to trace")
        self.f, self.kwargs, self.out_dims = f, kwargs, out_dims
        self.as_tensors = any(type(leaf) is Tensor for leaf, d in zip(self.leaves, self.dims) if d is not None)

    def run(self, chunk_size: Optional[int]) -> Any:
        tracer, out = _trace(self.f, self.kwargs, self.leaves, self.dims, self.spec)
        out_leaves, out_spec = _flatten(out)
        out_dims = _dims_for(self.out_dims, out, "out_dims")
        if isinstance(self.out_dims, (tuple, list)) and not isinstance(out, (tuple, list)):
            raise ValueError(f"vmap: out_dims is a {type(self.out_dims).__name__} but f returned a single value")
        samples = {k: t for k, t in enumerate(tracer.inputs.values())}
        batched_idx = [k for k, d in enumerate(self.dims) if d is not None]
        step = self.size if chunk_size is None else int(chunk_size)
        if step <= 0:
            raise ValueError(f"vmap: chunk_size must be a positive int or None, got {chunk_size!r}")
        pieces = []
        for start in range(0, self.size, step):
            physical = {}
            for j, k in enumerate(batched_idx):
                leaf, d = self.leaves[k], self.dims[k]
                if step < self.size:
                    leaf = TENSOR.getitem(
                        leaf if type(leaf) is Tensor else Tensor(np.asarray(leaf)),
                        (slice(None),) * d + (slice(start, start + step),),
                    )
                elif type(leaf) is not Tensor:
                    leaf = Tensor(np.asarray(leaf))
                physical[id(samples[j])] = (leaf, d)
            n = min(step, self.size - start)
            memo = _replay(tracer, out_leaves, physical)
            placed = []
            for i, (o, od) in enumerate(zip(out_leaves, out_dims)):
                v, d = memo[id(o)] if type(o) is Tensor else (o, None)
                placed.append(_place(v, d, od, n, i))
            pieces.append(placed)
        if len(pieces) == 1:
            final = pieces[0]
        else:  # the chunks' results joined along each output's batch axis
            final = [
                pieces[0][i] if od is None else _concatenate([p[i] for p in pieces], axis=od)
                for i, od in enumerate(out_dims)
            ]
        if not self.as_tensors and MODE.batch is None and TRANSFORM_DEPTH.value == 0:
            final = [_to_value(v) for v in final]  # NumPy in, NumPy out (as the other transforms at top level)
        return _unflatten(out_spec, final)


def _to_value(v: Any) -> Any:
    """An output as NumPy (the inputs were NumPy arrays, outside any transform)."""
    if type(v) is Tensor:
        d = v._data
        return np.array(d) if type(d) is np.ndarray and not d.flags.writeable else d
    return v


def vmap(
    f: Callable,
    in_dims: InDims = 0,
    out_dims: Any = 0,
    chunk_size: Optional[int] = None,
    randomness: str = "error",
) -> Callable:
    """Vectorize ``f`` over a batch axis: ``vmap(f)(xs)`` equals stacking ``f(x)`` for each ``x`` in ``xs``.

    ``in_dims`` says where each positional argument's batch axis is: an int for every argument, or a tuple with
    one entry per argument (an int, ``None`` for an argument shared by the whole batch, or a tuple/list/dict
    matching that argument's structure).  ``out_dims`` places the batch axis in each output the same way
    (``None``: an output that does not depend on the batch).  ``chunk_size`` runs the batch in chunks of that
    many examples (less memory; the function is still traced once).  Keyword arguments are not batched.

    Inputs and outputs may be tuples, lists and dicts of arrays.  NumPy inputs give NumPy outputs; tensor
    inputs give tensors, connected to the inputs' graph, so ``grad(vmap(f))`` works.  It composes with
    ``grad``, ``vjp``, ``jvp``, ``jacrev``, ``jacfwd`` and ``hessian`` in any order, and nests.
    Refused while ``f`` is traced, with an error: reading a batched value (``if t:``, ``.item()``,
    ``.numpy()``, ``.data``, an index computed from data), random operations and in-place writes.
    """
    if randomness != "error":
        raise NotImplementedError(
            f"vmap: randomness={randomness!r} is not supported; only 'error' (random operations under vmap are "
            "refused). Draw random values outside and pass them in with in_dims"
        )
    if not callable(f):
        raise TypeError(f"vmap: f must be callable, got {type(f).__name__}")

    @functools.wraps(f)
    def vmapped(*args: Any, **kwargs: Any) -> Any:
        return _Call(f, in_dims, out_dims, args, kwargs).run(chunk_size)

    return vmapped


__all__ = ["VmapError", "vmap"]
