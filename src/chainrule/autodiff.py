"""Backpropagation: an iterative topological walk that applies each node's VJP rules.

First-order passes run the rules on raw values (NumPy arrays, or Python floats
with the math module); ``create_graph=True`` runs the same rules on tensors so
the backward pass is recorded and can be differentiated again.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Optional

import numpy as np

from .backend import device_of, is_foreign, namespace_of
from .grad_mode import MODE, enable_grad, graph_done
from .tensor import Tensor, as_value, node_parts
from .values import _norm
from .versions import EPOCHS, FREED, mark_modified
from .walk import _FREED_MESSAGE, _STEP, Backprop, GraphFreedError, _check_fresh, ndarray, walk

_DELIVERY_LOCK = threading.Lock()


class _Tracing(threading.local):
    """``cr.compile``'s tracer for this thread while it traces a call (else None): it sees each backward()."""

    tracer: Any = None


TRACING = _Tracing()


def toposort(roots: Sequence[Tensor], strict: bool = True) -> list[Tensor]:
    """Non-leaf tensors reachable from ``roots``, each before the tensors it was made from.

    Iterative (no recursion), so a chain of a million nodes is fine; nodes carry
    a creation sequence number, so the order is a sort.  Raises if the walk
    meets a freed node or an input modified in place since it was recorded;
    with ``strict=False`` a freed node is listed and not gone through (the
    backward walk raises if it needs one), as torch only minds freed nodes it runs.
    """
    found: list[Tensor] = []
    seen: set[int] = set()
    stack = [r for r in roots if r._node is not None]
    now = EPOCHS.value
    while stack:
        t = stack.pop()
        key = id(t)
        if key in seen:
            continue
        seen.add(key)
        if t._node is FREED:
            if strict:
                raise GraphFreedError(_FREED_MESSAGE)
            found.append(t)
            continue
        if t._epoch != now:
            _check_fresh(t)
        found.append(t)
        for inp in node_parts(t)[0]:
            if inp is not None and inp._node is not None and id(inp) not in seen:
                stack.append(inp)
    found.sort(key=lambda t: -t._seq)
    return found


def _seed(root: Tensor, grad: Any, create_graph: bool) -> Any:
    if not isinstance(root, Tensor):
        raise TypeError(f"backward: expected a Tensor, got {type(root).__name__}")
    if not root.requires_grad:
        raise RuntimeError(
            "backward: this tensor does not require grad: no input of its computation has "
            "requires_grad=True (or it was computed under no_grad())"
        )
    if grad is None:
        if root.size != 1:  # torch's rule: one element, of any shape ((), (1,), (1, 1))
            raise RuntimeError(
                f"backward: a gradient can be created implicitly only for a scalar output, but this "
                f"tensor has shape {root.shape}; pass grad= of that shape, or reduce it first (e.g. .sum())"
            )
        rd = root._data
        if type(rd) is float:
            value: Any = 1.0
        elif type(rd) is ndarray:
            value = np.ones(root.shape, root.dtype)
        else:
            value = namespace_of(rd).xp.ones(root.shape, dtype=rd.dtype, device=device_of(rd))
    elif type(root._data) is not ndarray and is_foreign(root._data):
        return _seed_foreign(root, grad, create_graph)
    else:
        if create_graph and isinstance(grad, Tensor):
            if grad.shape != root.shape:
                raise ValueError(f"backward: grad has shape {grad.shape} but the output has shape {root.shape}")
            return grad
        value = as_value(grad, "backward")
        if is_foreign(value):  # a seed from another library for a NumPy root: NumPy's copy of it
            from .backend import to_numpy

            value = to_numpy(value)
        if np.shape(value) != root.shape:
            raise ValueError(f"backward: grad has shape {np.shape(value)} but the output has shape {root.shape}")
        if not np.all(np.isfinite(value)):
            raise ValueError("backward: the gradient seed contains NaN or Inf")
        value = _norm(np.array(value, dtype=root.dtype))
    return Tensor(value) if create_graph else value


def _seed_foreign(root: Tensor, grad: Any, create_graph: bool) -> Any:
    """A given seed for a root held by another array library: the root's library, device and dtype."""
    from .backend import finite, move

    rd = root._data
    value = grad._data if isinstance(grad, Tensor) else grad
    ns = namespace_of(rd)
    if not is_foreign(value) or namespace_of(value) is not ns:
        value = move(np.asarray(value) if not is_foreign(value) else value, device_of(rd))
        if not is_foreign(value):
            value = ns.xp.asarray(value, device=device_of(rd))
    if tuple(value.shape) != tuple(root.shape):
        raise ValueError(f"backward: grad has shape {tuple(value.shape)} but the output has shape {tuple(root.shape)}")
    if not finite(value):
        raise ValueError("backward: the gradient seed contains NaN or Inf")
    value = ns.xp.astype(value, rd.dtype, copy=True)
    return Tensor(value) if create_graph else value


def _needed(order: list[Tensor], wanted: set[int]) -> set[int]:
    """Ids of tensors from which some wanted tensor can be reached (walks leaves first)."""
    needed = set(wanted)
    for t in reversed(order):
        for inp in node_parts(t)[0]:
            if inp is not None and id(inp) in needed:
                needed.add(id(t))
                break
    return needed


def run_backward(
    roots: Sequence[Tensor],
    seeds: Sequence[Any],
    retain_graph: Optional[bool] = None,
    create_graph: bool = False,
    inputs: Optional[Sequence[Tensor]] = None,
    visitor: Optional[Backprop] = None,
) -> Optional[list]:
    """Backpropagate ``seeds`` from ``roots``.

    Without ``inputs`` the gradients accumulate into the leaves' ``.grad``.  With
    ``inputs`` nothing is written: the gradients with respect to those tensors
    (leaves or not) are returned, ``None`` where an input is unreachable.
    ``visitor`` (first order into ``.grad`` only): a :class:`~chainrule.walk.Backprop`
    that watches the walk (``cr.compile``'s tracer records the edges it takes).
    """
    tracer = TRACING.tracer
    if tracer is not None:  # cr.compile is tracing this thread: it watches the walk, then runs this function
        return tracer.backward(roots, seeds, retain_graph, create_graph, inputs)
    try:
        return _run_backward(roots, seeds, retain_graph, create_graph, inputs, visitor)
    finally:
        graph_done()  # the collector's thresholds go back (see chainrule.collector)


def _run_backward(
    roots: Sequence[Tensor],
    seeds: Sequence[Any],
    retain_graph: Optional[bool],
    create_graph: bool,
    inputs: Optional[Sequence[Tensor]],
    watcher: Optional[Backprop] = None,
) -> Optional[list]:
    if retain_graph is None:
        retain_graph = create_graph
    seed_values = [_seed(r, s, create_graph) for r, s in zip(roots, seeds)]
    for r in roots:
        if r._node is FREED:
            raise GraphFreedError(_FREED_MESSAGE)
    if inputs is None and not create_graph and not MODE.anomaly and FAST_PATH and watcher is None:
        reached = walk(roots, seed_values, retain_graph)  # the common case: no visitor, the inlined rules
        with _DELIVERY_LOCK:  # threads may backpropagate into the same leaves
            _deliver(reached, False)
        return None
    wanted = None if inputs is None else {id(t) for t in inputs}
    if watcher is not None:
        visitor = watcher
    else:
        needed = None if wanted is None else _needed(toposort(roots, strict=False), wanted)
        visitor = Backprop(create_graph, wanted, needed)
    outer_step = _STEP.at  # (anomaly mode: a hook may run a backward inside another one's rule)
    try:
        if create_graph:
            with enable_grad():
                reached = walk(roots, seed_values, retain_graph, visitor)
        else:
            reached = walk(roots, seed_values, retain_graph, visitor)
    finally:
        _STEP.at = outer_step
    if inputs is not None:
        captured = visitor.captured
        for leaf, g in reached:
            if id(leaf) in wanted:  # type: ignore[operator]
                captured[id(leaf)] = g
        return [captured.get(id(t)) for t in inputs]
    with _DELIVERY_LOCK:
        _deliver(reached, create_graph)
    return None


FAST_PATH = True  # False: every first-order backward takes the walk's general path (A/B checks, tests)


def _deliver(reached: list[tuple[Tensor, Any]], create_graph: bool) -> None:
    """Accumulate the finished gradients into the leaves' ``.grad``."""
    delivered: set[int] = set()
    for leaf, g in reached:
        if g is None:
            continue
        if LEAF_HOOKS and id(leaf) in LEAF_HOOKS:  # register_hook on a leaf (issue 12)
            g = run_leaf_hooks(leaf, g)
        old = leaf.grad
        if create_graph:
            if not g.requires_grad:
                g = Tensor(np.array(g._data) if type(g._data) is ndarray else g._data)
            leaf.grad = g if old is None else old + g
            continue
        if type(g) is ndarray:
            if id(g) in delivered or g.base is not None or not g.flags.writeable:
                g = g.copy()
        elif type(g) is not float and is_foreign(g):
            # a rule may hand on a view (a broadcast): copy it, as a NumPy view is copied above; a fresh
            # torch tensor (no ``_base``) delivered once is stored as it is, as a fresh NumPy array is
            if id(g) in delivered or getattr(g, "_base", True) is not None:
                g = namespace_of(g).xp.asarray(g, copy=True)
        delivered.add(id(g))
        if old is None:
            leaf.grad = Tensor(g)
        elif old.requires_grad:
            leaf.grad = Tensor(_norm(old._data + g))
        else:
            od = old._data
            if type(od) is ndarray and od.flags.writeable and od.shape == np.shape(g) and od.dtype == leaf.dtype:
                np.add(od, g, out=od)
                mark_modified(old)  # a graph that used this .grad as an operand must see the change
            else:
                old._data = _norm(od + g)


def grad(
    outputs: Any,
    inputs: Any,
    grad_outputs: Any = None,
    retain_graph: Optional[bool] = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple:
    """Gradients of ``outputs`` with respect to ``inputs``, returned instead of stored in ``.grad``.

    Like ``torch.autograd.grad``: ``inputs`` may be non-leaf tensors; an input
    that the outputs do not depend on raises unless ``allow_unused=True``, in
    which case its gradient is ``None``.
    """
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None:
        seeds: list = [None] * len(outs)
    else:
        seeds = [grad_outputs] if not isinstance(grad_outputs, (list, tuple)) else list(grad_outputs)
    if len(seeds) != len(outs):
        raise ValueError(f"grad: {len(outs)} outputs but {len(seeds)} grad_outputs; give one per output")
    for i, t in enumerate(ins):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise RuntimeError(f"grad: input {i} is not a tensor that requires grad")
    if MODE.batch is not None and not create_graph:  # cr.vmap traces: the backward pass must be recorded to be
        create_graph = True  # batched (a raw-array walk would freeze the first example's values)
        retain_graph = True if retain_graph is None else retain_graph
    result = run_backward(outs, seeds, retain_graph=retain_graph, create_graph=create_graph, inputs=ins)
    assert result is not None
    for i, g in enumerate(result):
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad: input {i} (shape {ins[i].shape}) was not used to compute the outputs; "
                "pass allow_unused=True to get None for it"
            )
        if g is not None and not create_graph and type(g) is not Tensor:
            result[i] = Tensor(g)
    return tuple(result)


# --- hooks on leaves (register_hook on a tensor made by the user): run as backward() delivers -------
LEAF_HOOKS: dict[int, tuple[Any, list]] = {}


def add_leaf_hook(leaf: Tensor, hook: Callable) -> Callable[[], None]:
    """Register ``hook(grad)`` to run when backward() delivers ``leaf``'s gradient; returns a remover."""
    key = id(leaf)
    entry = LEAF_HOOKS.get(key)
    if entry is None or entry[0]() is not leaf:
        entry = LEAF_HOOKS[key] = (weakref.ref(leaf, lambda _ref, k=key: LEAF_HOOKS.pop(k, None)), [])
    entry[1].append(hook)

    def remove() -> None:
        if hook in entry[1]:
            entry[1].remove(hook)

    return remove


def run_leaf_hooks(leaf: Tensor, g: Any) -> Any:
    """The gradient after ``leaf``'s hooks (each may return a replacement; raw arrays stay raw)."""
    raw = type(g) is not Tensor
    for hook in list(LEAF_HOOKS[id(leaf)][1]):
        replaced = hook(Tensor(g) if raw else g)
        if replaced is not None:
            if type(replaced) is not Tensor or replaced.shape != leaf.shape:
                raise RuntimeError(
                    f"register_hook: a hook must return None or a tensor of shape {leaf.shape}, got "
                    f"{type(replaced).__name__} {getattr(replaced, 'shape', '')}"
                )
            g = replaced._data if raw else replaced
    if raw and type(g) is ndarray and g.dtype != leaf.dtype:
        g = g.astype(leaf.dtype)
    return g
