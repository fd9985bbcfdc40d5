"""``torch.autograd.functional``: ``jacobian``, ``hessian``, ``vjp``, ``jvp``, ``hvp``, ``vhp`` over
chainrule's transforms, with torch's argument conventions (a tensor or a tuple of tensors)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ... import forward as _fwd
from ... import transforms as _tr
from ...torch_names import module_getattr
from .._wrap import as_tensors


def _tuple(inputs: Any) -> tuple[tuple, bool]:
    return (tuple(inputs), True) if isinstance(inputs, (tuple, list)) else ((inputs,), False)


def _detached(xs: tuple) -> tuple:
    return tuple(x.detach() for x in xs)


def jacobian(
    func: Callable,
    inputs: Any,
    create_graph: bool = False,
    strict: bool = False,
    vectorize: bool = False,
    strategy: str = "reverse-mode",
) -> Any:
    xs, many = _tuple(inputs)
    xs = xs if create_graph else _detached(xs)
    probe = func(*xs)
    if isinstance(probe, tuple):
        return tuple(jacobian(lambda *a, i=i: func(*a)[i], inputs, create_graph) for i in range(len(probe)))
    jac = _tr.jacobian(func, argnums=tuple(range(len(xs))))(*xs)
    jac = as_tensors(jac)
    return tuple(jac) if many else jac[0]


def hessian(
    func: Callable,
    inputs: Any,
    create_graph: bool = False,
    strict: bool = False,
    vectorize: bool = False,
    outer_jacobian_strategy: str = "reverse-mode",
) -> Any:
    xs, many = _tuple(inputs)
    xs = xs if create_graph else _detached(xs)
    h = as_tensors(_fwd.hessian(func, argnums=tuple(range(len(xs))))(*xs))
    return tuple(tuple(row) for row in h) if many else h[0][0]


def vjp(func: Callable, inputs: Any, v: Any = None, create_graph: bool = False, strict: bool = False) -> tuple:
    xs, many = _tuple(inputs)
    xs = xs if create_graph else _detached(xs)
    out, fn = _tr.vjp(func, *xs)
    out = as_tensors(out)
    if v is None:
        if out.numel() != 1:
            raise RuntimeError("vjp: v may be omitted only when func returns a single-element tensor")
        v = out.detach() * 0 + 1
    grads = as_tensors(fn(v))
    return out, (tuple(grads) if many else grads[0])


def jvp(func: Callable, inputs: Any, v: Any = None, create_graph: bool = False, strict: bool = False) -> tuple:
    xs, many = _tuple(inputs)
    xs = xs if create_graph else _detached(xs)
    if v is None:
        if any(x.numel() != 1 for x in xs):
            raise RuntimeError("jvp: v may be omitted only when the inputs are single-element tensors")
        v = tuple(x.detach() * 0 + 1 for x in xs)
    vs, _ = _tuple(v)
    out, tangent = _fwd.jvp(func, xs, vs)
    return as_tensors(out), as_tensors(tangent)


def hvp(func: Callable, inputs: Any, v: Any = None, create_graph: bool = False, strict: bool = False) -> tuple:
    xs, many = _tuple(inputs)
    xs = xs if create_graph else _detached(xs)
    vs, _ = _tuple(v)
    out = as_tensors(func(*xs)).detach()
    if many:
        res = _fwd.hvp(func, xs, vs)
    else:
        res = _fwd.hvp(func, xs[0], vs[0])
    return out, as_tensors(res)


def vhp(func: Callable, inputs: Any, v: Any = None, create_graph: bool = False, strict: bool = False) -> tuple:
    """``vᵀ H``: the Hessian is symmetric, so the same as :func:`hvp`."""
    return hvp(func, inputs, v, create_graph, strict)


__getattr__ = module_getattr("torch.autograd.functional")
