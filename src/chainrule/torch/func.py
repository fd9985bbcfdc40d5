"""``torch.func``: chainrule's own function transforms (:mod:`chainrule.func`, the one implementation), with
torch's extra keywords and results as tensors, as torch gives them."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .. import func as _func
from ..nn.module import Module
from ..torch_names import module_getattr
from ._wrap import as_tensors

ArgNums = _func.ArgNums


def _tensor_results(transform: Callable) -> Callable:
    """``transform(f, ...)`` whose transformed function returns tensors."""

    @functools.wraps(transform)
    def make(func: Callable, *args: Any, **kwargs: Any) -> Callable:
        transformed = transform(func, *args, **kwargs)

        @functools.wraps(func)
        def run(*a: Any, **kw: Any) -> Any:
            return as_tensors(transformed(*a, **kw))

        return run

    return make


grad = _tensor_results(_func.grad)
grad_and_value = _tensor_results(_func.grad_and_value)
hessian = _tensor_results(_func.hessian)


def jacrev(func: Callable, argnums: ArgNums = 0, *, has_aux: bool = False, chunk_size: Any = None) -> Callable:
    """``torch.func.jacrev``; ``chunk_size`` (a memory limit in torch) changes nothing here."""
    return _tensor_results(_func.jacrev)(func, argnums, has_aux=has_aux)


def jacfwd(func: Callable, argnums: ArgNums = 0, has_aux: bool = False, *, randomness: str = "error") -> Callable:
    return _tensor_results(_func.jacfwd)(func, argnums, has_aux=has_aux)


def vmap(
    func: Callable, in_dims: Any = 0, out_dims: Any = 0, randomness: str = "error", *, chunk_size: Any = None
) -> Callable:
    return _tensor_results(_func.vmap)(func, in_dims, out_dims, randomness=randomness, chunk_size=chunk_size)


def vjp(func: Callable, *primals: Any, has_aux: bool = False) -> tuple:
    """``(output, vjp_fn)`` (and the aux with ``has_aux``); ``vjp_fn`` returns a tuple of tensors."""
    out, fn, *aux = _func.vjp(func, *primals, has_aux=has_aux)

    def vjp_fn(cotangent: Any) -> tuple:
        return as_tensors(tuple(fn(cotangent)))

    return (as_tensors(out), vjp_fn, *aux)


def jvp(func: Callable, primals: Any, tangents: Any, *, strict: bool = False, has_aux: bool = False) -> tuple:
    return as_tensors(_func.jvp(func, tuple(primals), tuple(tangents), has_aux=has_aux))


def functional_call(
    module: Module,
    parameter_and_buffer_dicts: Any,
    args: Any = None,
    kwargs: Any = None,
    *,
    tie_weights: bool = True,
    strict: bool = False,
) -> Any:
    """``torch.func.functional_call``.  A name that matches no parameter or buffer is refused (torch skips it,
    which hides a typo); ``strict=True`` also requires every parameter and buffer to be given, as torch's."""
    if not tie_weights:
        raise NotImplementedError(
            "functional_call(tie_weights=False) is not supported: chainrule replaces each name given, and a tied "
            "weight is one tensor reachable by two names; give both names"
        )
    dicts = (
        parameter_and_buffer_dicts
        if isinstance(parameter_and_buffer_dicts, (tuple, list))
        else (parameter_and_buffer_dicts,)
    )
    if strict:
        given = {k for d in dicts for k in d}
        names = [n for n, _ in module.named_parameters()] + [n for n, _ in module.named_buffers()]
        missing = [n for n in names if n not in given]
        if missing:
            raise RuntimeError(f"functional_call(strict=True): missing key(s) {', '.join(map(repr, missing))}")
    return _func.functional_call(module, parameter_and_buffer_dicts, () if args is None else args, kwargs)


__getattr__ = module_getattr("torch.func")

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
