"""Backpropagation: an iterative topological walk that applies each node's VJP rules.

First-order passes run the rules on raw values (NumPy arrays, or Python floats
with the math module); ``create_graph=True`` runs the same rules on tensors so
the backward pass is recorded and can be differentiated again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from .numeric import NUMPY, SCALAR
from .tensor import FREED, MODE, Tensor, _norm, as_value, enable_grad

ndarray = np.ndarray


class GraphFreedError(RuntimeError):
    """Raised when backward reaches a node whose saved values were already released."""


def _node_version(inputs: tuple) -> int:
    v = 0
    for inp in inputs:
        if inp is not None:
            v += inp._version
    return v


def toposort(roots: Sequence[Tensor]) -> list[Tensor]:
    """Non-leaf tensors reachable from ``roots``, each before the tensors it was made from.

    Iterative (no recursion), so a chain of a million nodes is fine.  Raises if
    the walk meets a freed node or an input modified in place since it was saved.
    """
    order: list[Tensor] = []
    seen: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(r, False) for r in roots if r._node is not None]
    append = order.append
    push = stack.append
    pop = stack.pop
    while stack:
        t, expanded = pop()
        if expanded:
            append(t)
            continue
        key = id(t)
        if key in seen:
            continue
        seen.add(key)
        node = t._node
        if node is FREED:
            raise GraphFreedError(
                "backward: this graph was already backpropagated and its saved values were freed. "
                "Pass retain_graph=True to the first backward() (or recompute the forward) to go through it again."
            )
        inputs = node[1]
        if node[3] != _node_version(inputs):
            _raise_stale(node)
        if t._version:  # the result itself was overwritten: its rule (and what flows through it) is stale
            _raise_stale(node, output=True)
        push((t, True))
        for inp in inputs:
            if inp is not None and inp._node is not None and id(inp) not in seen:
                push((inp, False))
    order.reverse()
    return order


def _raise_stale(node: tuple, output: bool = False) -> None:
    shapes = ", ".join(str(inp.shape) for inp in node[1] if inp is not None)
    what = "the result of" if output else "an input of"
    when = "it was computed" if output else "it was used"
    raise RuntimeError(
        f"backward: {what} '{node[0].name}' (input shapes {shapes}) was modified in place after {when}, "
        "so the value saved for its gradient is stale. Modify a copy instead, or modify it only after backward()."
    )


def _seed(root: Tensor, grad: Any, create_graph: bool) -> Any:
    if not isinstance(root, Tensor):
        raise TypeError(f"backward: expected a Tensor, got {type(root).__name__}")
    if not root.requires_grad:
        raise RuntimeError(
            "backward: this tensor does not require grad: no input of its computation has "
            "requires_grad=True (or it was computed under no_grad())"
        )
    if grad is None:
        if root.shape != ():
            raise RuntimeError(
                f"backward: a gradient can be created implicitly only for a scalar output, but this "
                f"tensor has shape {root.shape}; pass grad= of that shape, or reduce it first (e.g. .sum())"
            )
        value: Any = 1.0 if type(root._data) is float else np.ones((), root.dtype)
    else:
        if create_graph and isinstance(grad, Tensor):
            if grad.shape != root.shape:
                raise ValueError(f"backward: grad has shape {grad.shape} but the output has shape {root.shape}")
            return grad
        value = as_value(grad, "backward")
        if np.shape(value) != root.shape:
            raise ValueError(f"backward: grad has shape {np.shape(value)} but the output has shape {root.shape}")
        if not np.all(np.isfinite(value)):
            raise ValueError("backward: the gradient seed contains NaN or Inf")
        value = _norm(np.array(value, dtype=root.dtype))
    return Tensor(value) if create_graph else value


def _fit(gi: Any, value: Any) -> Any:
    """Reduce a raw gradient to its input's shape (broadcasting's adjoint) and dtype."""
    if type(value) is float:
        if type(gi) is float:
            return gi
        return float(np.sum(gi))
    if type(gi) is not ndarray:
        gi = np.asarray(gi)
    if gi.shape != value.shape:
        gi = NUMPY.unbroadcast(gi, value.shape)
    if gi.dtype != value.dtype:
        gi = gi.astype(value.dtype)
    return gi


def _fit_tensor(gi: Any, inp: Tensor) -> Tensor:
    from .ops import unbroadcast

    if type(gi) is not Tensor:
        gi = Tensor(np.broadcast_to(np.asarray(gi, dtype=inp.dtype), inp.shape).copy())
    if gi.shape != inp.shape:
        gi = unbroadcast(gi, inp.shape)
    if gi.dtype != inp.dtype:
        gi = gi.astype(inp.dtype)
    return gi


def _needed(order: list[Tensor], wanted: set[int]) -> set[int]:
    """Ids of tensors from which some wanted tensor can be reached (walks leaves first)."""
    needed = set(wanted)
    for t in reversed(order):
        for inp in t._node[1]:
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
) -> Optional[list]:
    """Backpropagate ``seeds`` from ``roots``.

    Without ``inputs`` the gradients accumulate into the leaves' ``.grad``.  With
    ``inputs`` nothing is written: the gradients with respect to those tensors
    (leaves or not) are returned, ``None`` where an input is unreachable.
    """
    if retain_graph is None:
        retain_graph = create_graph
    seed_values = [_seed(r, s, create_graph) for r, s in zip(roots, seeds)]
    order = toposort(roots)
    wanted = None if inputs is None else {id(t) for t in inputs}
    needed = None if wanted is None else _needed(order, wanted)

    grads: dict[int, Any] = {}
    leaves: dict[int, Tensor] = {}
    for r, s in zip(roots, seed_values):
        key = id(r)
        grads[key] = s if key not in grads else grads[key] + s
        if r._node is None:
            leaves[key] = r
    captured: dict[int, Any] = {}

    if create_graph:
        with enable_grad():
            _walk(order, grads, leaves, captured, wanted, needed, retain_graph, True)
    else:
        _walk(order, grads, leaves, captured, wanted, needed, retain_graph, False)

    if wanted is not None:
        for key in leaves:
            if key in wanted and key in grads:
                captured[key] = grads[key]
        return [captured.get(id(t)) for t in inputs]  # type: ignore[union-attr]
    _deliver(grads, leaves, create_graph)
    return None


def _walk(order, grads, leaves, captured, wanted, needed, retain_graph, create_graph) -> None:
    from .ops import TENSOR

    anomaly = MODE.anomaly
    for pos, t in enumerate(order):
        key = id(t)
        g = grads.pop(key, None)
        if wanted is not None and key in wanted:
            captured[key] = g
        if g is None:
            continue
        prim, inputs, args, _ = t._node
        vjps = prim.vjps
        variadic = prim.variadic
        if create_graph:
            xp = TENSOR
            out: Any = t
            nin = len(inputs)
            rargs = tuple(inputs[i] if inputs[i] is not None else args[i] for i in range(nin)) + args[nin:]
        else:
            out = t._data
            rargs = args
            xp = SCALAR if (type(out) is float and prim.scalar_fwd is not None) else NUMPY
        for i, inp in enumerate(inputs):
            if inp is None or not inp.requires_grad:
                continue
            ikey = id(inp)
            if needed is not None and ikey not in needed:
                continue
            rule = vjps[0] if variadic else vjps[i]
            if rule is None:
                continue
            if variadic:
                gi = rule(xp, g, out, i, *rargs)
            elif xp is SCALAR:
                try:
                    gi = rule(xp, g, out, *rargs)
                except (ArithmeticError, ValueError):
                    with np.errstate(all="ignore"):
                        gi = rule(NUMPY, np.float64(g), np.float64(out), *rargs)
            else:
                gi = rule(xp, g, out, *rargs)
            if create_graph:
                gi = _fit_tensor(gi, inp)
            else:
                gi = _fit(gi, args[i])
            if anomaly:
                from .anomaly import check_backward

                check_backward(t, i, gi)
            prev = grads.get(ikey)
            grads[ikey] = gi if prev is None else prev + gi
            if inp._node is None:
                leaves[ikey] = inp
        if not retain_graph:
            t._node = FREED
        order[pos] = None  # type: ignore[call-overload]  # let processed tensors go


def _deliver(grads: dict[int, Any], leaves: dict[int, Tensor], create_graph: bool) -> None:
    """Accumulate the finished gradients into the leaves' ``.grad``."""
    delivered: set[int] = set()
    for key, leaf in leaves.items():
        g = grads.get(key)
        if g is None:
            continue
        old = leaf.grad
        if create_graph:
            if not g.requires_grad:
                g = Tensor(np.array(g._data) if type(g._data) is ndarray else g._data)
            leaf.grad = g if old is None else old + g
            continue
        if type(g) is ndarray and (id(g) in delivered or g.base is not None or not g.flags.writeable):
            g = g.copy()
        delivered.add(id(g))
        if old is None:
            leaf.grad = Tensor(g)
        elif old.requires_grad:
            leaf.grad = Tensor(_norm(old._data + g))
        else:
            od = old._data
            if type(od) is ndarray and od.flags.writeable and od.shape == np.shape(g) and od.dtype == leaf.dtype:
                np.add(od, g, out=od)
                old._version += 1  # a graph that used this .grad as an operand must see the change
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
    for i, t in enumerate(ins):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise RuntimeError(f"grad: input {i} is not a tensor that requires grad")
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
