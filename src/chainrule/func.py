"""``cr.func``: the function transforms under ``torch.func``'s names and argument orders.

``from chainrule import func`` then ``func.vmap(func.grad(loss), in_dims=(None, 0, 0))`` reads as torch.func
code does.  Each name is chainrule's own transform; where torch.func's spelling differs from chainrule's
top-level one, the difference is written here:

- ``grad_and_value(f)`` returns ``(gradient, value)`` (torch's order; ``cr.value_and_grad`` gives
  ``(value, gradient)``);
- ``grad``, ``grad_and_value`` and ``vjp`` take ``has_aux``;
- ``functional_call(module, params_and_buffers, args, kwargs=None)`` runs a module with some of its
  parameters and buffers replaced by the tensors given, by name.
"""

from __future__ import annotations

import contextlib
import functools
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, Optional

from .forward import _aux, _split_aux, hessian, jacfwd, jvp
from .tensor import Tensor
from .transforms import _DEPTH, ArgNums, value_and_grad
from .transforms import jacrev as _jacrev
from .transforms import vjp as _vjp
from .vectorize import _flatten, _unflatten, vmap


def _with_aux(f: Callable, box: list, op: str = "grad") -> Callable:
    @functools.wraps(f)
    def main(*args: Any, **kwargs: Any) -> Any:
        out, aux = _split_aux(f(*args, **kwargs), op)
        box.append(aux)
        return out

    return main


def _nested(args: tuple) -> bool:
    return _DEPTH.value > 0 or any(isinstance(a, Tensor) and a.requires_grad for a in args)


def _over_leaves(func: Callable, argnums: ArgNums, args: tuple, kwargs: dict) -> tuple[Callable, list, Any]:
    """``func`` as a function of the leaves of its differentiated arguments (tuples, lists and dicts of arrays,
    as torch.func accepts), those leaves, and a function that rebuilds the gradients' structure."""
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    nums = tuple(n % len(args) if -len(args) <= n < len(args) else n for n in nums)
    flat: list = []
    parts = []
    for n in nums:
        if not 0 <= n < len(args):
            raise ValueError(f"grad: argnums {n} is out of range for a call with {len(args)} positional arguments")
        leaves, spec = _flatten(args[n])
        parts.append((n, len(flat), len(leaves), spec))
        flat += leaves

    def inner(*leaves: Any) -> Any:
        new = list(args)
        for n, start, count, spec in parts:
            new[n] = _unflatten(spec, leaves[start : start + count])
        return func(*new, **kwargs)

    def rebuild(gs: tuple) -> Any:
        trees = [_unflatten(spec, gs[start : start + count]) for _, start, count, spec in parts]
        return trees[0] if isinstance(argnums, int) else tuple(trees)

    return inner, flat, rebuild


def grad_and_value(func: Callable, argnums: ArgNums = 0, has_aux: bool = False) -> Callable:
    """``(gradient, value)`` of a scalar ``func`` (torch.func's order); with ``has_aux``, ``((gradient, (value,
    aux))``, as torch.func gives it.  A differentiated argument may be a tuple, list or dict of arrays (a
    parameter dict); its gradient has the same structure."""

    @functools.wraps(func)
    def grad_and_value_f(*args: Any, **kwargs: Any) -> tuple:
        box: list = []
        inner, flat, rebuild = _over_leaves(_with_aux(func, box) if has_aux else func, argnums, args, kwargs)
        if not flat:
            raise ValueError("grad: the differentiated arguments hold no arrays")
        value, gs = value_and_grad(inner, tuple(range(len(flat))))(*flat)
        if not has_aux:
            return rebuild(gs), value
        return rebuild(gs), (value, _aux(box[0], _nested(args)))

    return grad_and_value_f


def grad(func: Callable, argnums: ArgNums = 0, has_aux: bool = False) -> Callable:
    """The gradient of a scalar ``func`` (of tuples, lists and dicts of arrays too); with ``has_aux``,
    ``(gradient, aux)``."""

    @functools.wraps(func)
    def grad_f(*args: Any, **kwargs: Any) -> Any:
        g, rest = grad_and_value(func, argnums, has_aux=has_aux)(*args, **kwargs)
        return (g, rest[1]) if has_aux else g

    return grad_f


def vjp(func: Callable, *primals: Any, has_aux: bool = False) -> tuple:
    """``(output, vjp_fn)``, and the aux as a third entry with ``has_aux``."""
    if not has_aux:
        return _vjp(func, *primals)
    box: list = []
    out, fn = _vjp(_with_aux(func, box, "vjp"), *primals)
    return out, fn, _aux(box[0], _nested(primals))


def jacrev(func: Callable, argnums: ArgNums = 0, has_aux: bool = False) -> Callable:
    """The Jacobian by reverse mode (batched over the output's basis); with ``has_aux``, ``(jacobian, aux)``."""
    if not has_aux:
        return _jacrev(func, argnums)

    @functools.wraps(func)
    def jacrev_f(*args: Any, **kwargs: Any) -> tuple:
        box: list = []
        J = _jacrev(_with_aux(func, box, "jacrev"), argnums)(*args, **kwargs)
        return J, _aux(box[0], _nested(args))

    return jacrev_f


@contextlib.contextmanager
def _swapped(module: Any, values: dict) -> Iterator[None]:
    """Parameters and buffers of ``module`` replaced by name (``"0.weight"``) for the duration."""
    undo = []
    try:
        for name, value in values.items():
            owner = module
            *path, leaf = name.split(".")
            for part in path:
                subs = owner.__dict__.get("_modules", {})
                if part not in subs:
                    raise KeyError(f"functional_call: {name!r} names no submodule {part!r} of {type(owner).__name__}")
                owner = subs[part]
            if not isinstance(value, Tensor):
                value = Tensor(value)
            for table_name in ("_parameters", "_buffers"):
                table = owner.__dict__.get(table_name)
                if table is not None and leaf in table:
                    undo.append((table, leaf, table[leaf]))
                    OrderedDict.__setitem__(table, leaf, value)
                    break
            else:
                raise KeyError(
                    f"functional_call: {name!r} is not a parameter or buffer of the module; its names are those of "
                    "named_parameters() and named_buffers()"
                )
        yield
    finally:
        for table, leaf, old in reversed(undo):
            OrderedDict.__setitem__(table, leaf, old)


def functional_call(module: Any, parameter_and_buffer_dicts: Any, args: Any = (), kwargs: Optional[dict] = None) -> Any:
    """Call ``module(*args, **kwargs)`` with the named parameters and buffers replaced by the values given
    (a dict, or a tuple of dicts), as ``torch.func.functional_call``; the module is left as it was."""
    dicts = parameter_and_buffer_dicts
    values: dict = {}
    for d in dicts if isinstance(dicts, (tuple, list)) else (dicts,):
        for k, v in d.items():
            if k in values:
                raise ValueError(f"functional_call: {k!r} is given in more than one dict")
            values[k] = v
    if not isinstance(args, tuple):
        args = (args,)
    with _swapped(module, values):
        return module(*args, **(kwargs or {}))


__all__ = [
    "functional_call",
    "grad",
    "grad_and_value",
    "hessian",
    "jacfwd",
    "jacrev",
    "jvp",
    "vjp",
    "vmap",
]
