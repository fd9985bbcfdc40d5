"""``torch.func``: ``grad``, ``grad_and_value``, ``vjp``, ``jvp``, ``jacrev``, ``jacfwd``, ``hessian``,
``functional_call`` over chainrule's transforms; results are tensors, as in torch."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, Union

from .. import forward as _fwd
from .. import transforms as _tr
from ..nn.module import Module
from ..tensor import Tensor
from ..torch_names import module_getattr
from ..vectorize import vmap as _vmap
from ._wrap import as_tensors

ArgNums = Union[int, tuple]


def _aux_split(f: Callable, has_aux: bool, box: list) -> Callable:
    if not has_aux:
        return f

    @functools.wraps(f)
    def main(*args: Any, **kwargs: Any) -> Any:
        out = f(*args, **kwargs)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise RuntimeError("has_aux=True: the function must return a pair (output, aux)")
        box.append(out[1])
        return out[0]

    return main


def grad_and_value(func: Callable, argnums: ArgNums = 0, has_aux: bool = False) -> Callable:
    """``(gradient, value)`` (``((gradient, (value, aux))`` with ``has_aux``), as torch.func."""

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        box: list = []
        value, g = _tr.value_and_grad(_aux_split(func, has_aux, box), argnums)(*args, **kwargs)
        g, value = as_tensors(g), as_tensors(value)
        if has_aux:
            return g, (value, box[-1])
        return g, value

    return run


def grad(func: Callable, argnums: ArgNums = 0, has_aux: bool = False) -> Callable:
    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        g, rest = grad_and_value(func, argnums, has_aux)(*args, **kwargs)
        return (g, rest[1]) if has_aux else g

    return run


def vjp(func: Callable, *primals: Any, has_aux: bool = False) -> tuple:
    box: list = []
    out, fn = _tr.vjp(_aux_split(func, has_aux, box), *primals)

    def vjp_fn(cotangent: Any) -> tuple:
        return as_tensors(tuple(fn(cotangent)))

    return (as_tensors(out), vjp_fn, box[-1]) if has_aux else (as_tensors(out), vjp_fn)


def jvp(func: Callable, primals: Any, tangents: Any, *, strict: bool = False, has_aux: bool = False) -> tuple:
    return as_tensors(_fwd.jvp(func, tuple(primals), tuple(tangents), has_aux=has_aux))


def jacrev(func: Callable, argnums: ArgNums = 0, *, has_aux: bool = False, chunk_size: Any = None) -> Callable:
    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        box: list = []
        j = as_tensors(_tr.jacobian(_aux_split(func, has_aux, box), argnums)(*args, **kwargs))
        return (j, box[-1]) if has_aux else j

    return run


def jacfwd(func: Callable, argnums: ArgNums = 0, has_aux: bool = False, *, randomness: str = "error") -> Callable:
    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        return as_tensors(_fwd.jacfwd(func, argnums, has_aux=has_aux)(*args, **kwargs))

    return run


def hessian(func: Callable, argnums: ArgNums = 0) -> Callable:
    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        return as_tensors(_fwd.hessian(func, argnums)(*args, **kwargs))

    return run


@contextlib.contextmanager
def _swapped(module: Module, values: dict[str, Any]) -> Iterator[None]:
    saved = []
    try:
        for name, value in values.items():
            owner_path, _, attr = name.rpartition(".")
            owner = module.get_submodule(owner_path)
            d = owner.__dict__
            table = d["_parameters"] if attr in d["_parameters"] else d.get("_buffers", {})
            if attr not in table:
                raise AttributeError(f"functional_call: the module has no parameter or buffer {name!r}")
            saved.append((table, attr, table[attr]))
            dict.__setitem__(table, attr, value) if table is d["_parameters"] else table.__setitem__(attr, value)
        yield
    finally:
        for table, attr, old in reversed(saved):
            dict.__setitem__(table, attr, old)


def functional_call(
    module: Module,
    parameter_and_buffer_dicts: Any,
    args: Any = None,
    kwargs: Any = None,
    *,
    tie_weights: bool = True,
    strict: bool = False,
) -> Any:
    """Call ``module`` with some parameters/buffers replaced by the given tensors (for this call only)."""
    dicts = parameter_and_buffer_dicts
    values: dict[str, Any] = {}
    for d in dicts if isinstance(dicts, (tuple, list)) else (dicts,):
        values.update(d)
    args = () if args is None else (args if isinstance(args, tuple) else (args,))
    with _swapped(module, values):
        return module(*args, **(kwargs or {}))


def _is_tensor(x: Any) -> bool:
    return isinstance(x, Tensor)


__getattr__ = module_getattr("torch.func")


def vmap(
    func: Callable,
    in_dims: Any = 0,
    out_dims: Any = 0,
    randomness: str = "error",
    *,
    chunk_size: Any = None,
) -> Callable:
    """``torch.func.vmap`` (chainrule's :func:`chainrule.vmap`, torch's argument order); results are tensors."""
    batched = _vmap(func, in_dims, out_dims, chunk_size=chunk_size, randomness=randomness)

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        return as_tensors(batched(*args, **kwargs))

    return run
