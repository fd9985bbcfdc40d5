"""Functional transforms in the style of JAX: ``grad``, ``value_and_grad``, ``vjp``, ``jacobian``.

They take and return NumPy arrays or Python floats.  Called on tensors that
require grad (that is, inside another transform) they return tensors connected
to those inputs, which is what lets them nest: ``grad(grad(f))``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Union

import numpy as np

from . import autodiff
from .backend import is_foreign, namespace_of
from .grad_mode import MODE, TRANSFORM_DEPTH, enable_grad
from .primitives import shape as S
from .tensor import Tensor, apply, as_value
from .vectorize import vmap

ArgNums = Union[int, Sequence[int]]


_DEPTH = TRANSFORM_DEPTH  # how many transforms are evaluating their function in this thread right now


def _argnums(argnums: ArgNums, nargs: int, op: str) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if not nums:
        raise ValueError(f"{op}: argnums is empty")
    for n in nums:
        if not -nargs <= n < nargs:
            raise ValueError(f"{op}: argnums {n} is out of range for a call with {nargs} positional arguments")
    return tuple(n % nargs for n in nums)


def _variables(args: Sequence[Any], nums: tuple[int, ...], op: str) -> tuple[list, list[Tensor], bool]:
    """Replace ``args[n]`` for ``n`` in ``nums`` by fresh differentiable tensors.

    A tensor that already requires grad (we are inside an outer transform) gets
    an identity node on top of it, so this transform differentiates with respect
    to the alias while the outer one still sees the path through it.
    """
    new = list(args)
    variables = []
    # Inside another transform's function, results must stay connected to its
    # variables (even ones only closed over), so work on tensors throughout.
    # Under cr.vmap's trace (MODE.batch) too: the batch is replayed through the recorded work.
    nested = _DEPTH.value > 0 or MODE.batch is not None
    for n in nums:
        a = args[n]
        if isinstance(a, Tensor) and a.requires_grad:
            nested = True
            var = apply(S.reshape, a, a.shape)
        else:
            value = as_value(a, op)
            if is_foreign(value):  # another library's array: a fresh copy in that library
                if not namespace_of(value).xp.isdtype(value.dtype, "real floating"):
                    raise TypeError(
                        f"{op}: argument {n} must be floating point to be differentiated, got {value.dtype}"
                    )
                var = Tensor(namespace_of(value).xp.asarray(value, copy=True), True)
                new[n] = var
                variables.append(var)
                continue
            kind = "f" if type(value) is float else np.result_type(value).kind
            if kind != "f":
                raise TypeError(
                    f"{op}: argument {n} must be floating point to be differentiated, got "
                    f"{np.result_type(value)}; pass floats (e.g. 3.0 instead of 3)"
                )
            var = Tensor(value if type(value) is float else np.array(value), True)
        new[n] = var
        variables.append(var)
    return new, variables, nested


def refuse_other_libraries(variables: Sequence[Tensor], op: str) -> None:
    """jacobian/jacrev/jacfwd/hessian build their result on NumPy: refuse other libraries' arrays, loudly."""
    for v in variables:
        if type(v._data) is not np.ndarray and type(v._data) is not float:
            raise NotImplementedError(
                f"{op}: arrays of {type(v._data).__module__.split('.')[0]} are not supported by jacobian, jacrev, "
                "jacfwd and hessian yet; pass NumPy arrays (x.numpy()), or use cr.grad, vjp, jvp or hvp, which "
                "keep the array's library"
            )


def _raw(x: Any) -> Any:
    """A tensor's value as a float (scalars) or ndarray."""
    return x._data if isinstance(x, Tensor) else x


def _zeros_like(t: Tensor, nested: bool) -> Any:
    d = t._data
    if is_foreign(d):
        z: Any = namespace_of(d).zeros_as(tuple(d.shape), d)
    else:
        z = 0.0 if type(d) is float else np.zeros(t.shape, t.dtype)
    return Tensor(z) if nested else z


def _run(f: Callable, args: Sequence[Any], kwargs: dict) -> Any:
    """Call a transform's function with recording on, counted as one nesting level."""
    _DEPTH.value += 1
    try:
        with enable_grad():
            return f(*args, **kwargs)
    finally:
        _DEPTH.value -= 1


def _call(f: Callable, args: Sequence[Any], kwargs: dict, op: str) -> Tensor:
    out = _run(f, args, kwargs)
    if not isinstance(out, Tensor):
        out = Tensor(as_value(out, op))
    return out


def _finish(grads: Sequence[Any], variables: list[Tensor], nested: bool) -> list:
    result = []
    for g, v in zip(grads, variables):
        if g is None:
            result.append(_zeros_like(v, nested))
        else:
            result.append(g if nested else _raw(g))
    return result


def value_and_grad(f: Callable, argnums: ArgNums = 0) -> Callable:
    """A function returning ``(f(*args), gradient of f)``; ``f`` must return a scalar."""

    @functools.wraps(f)
    def value_and_grad_f(*args: Any, **kwargs: Any) -> tuple:
        nums = _argnums(argnums, len(args), "grad")
        new, variables, nested = _variables(args, nums, "grad")
        out = _call(f, new, kwargs, "grad")
        if out.shape != ():
            raise TypeError(
                f"grad: f must return a scalar, but it returned shape {out.shape}; "
                "use jacobian or vjp for non-scalar outputs"
            )
        if out.requires_grad:
            gs = autodiff.grad(out, variables, create_graph=nested, allow_unused=True)
        else:
            gs = (None,) * len(variables)
        result = _finish(gs, variables, nested)
        value = out if nested else _raw(out)
        return value, (result[0] if isinstance(argnums, int) else tuple(result))

    return value_and_grad_f


def grad(f: Callable, argnums: ArgNums = 0) -> Callable:
    """The gradient of a scalar function ``f`` with respect to argument(s) ``argnums``."""
    vg = value_and_grad(f, argnums)

    @functools.wraps(f)
    def grad_f(*args: Any, **kwargs: Any) -> Any:
        return vg(*args, **kwargs)[1]

    return grad_f


def vjp(f: Callable, *primals: Any) -> tuple[Any, Callable]:
    """Evaluate ``f(*primals)`` and return ``(out, vjp_fn)``; ``vjp_fn(ct)`` is a tuple of gradients.

    ``vjp_fn`` may be called any number of times (the graph is retained).
    """
    nums = tuple(range(len(primals)))
    new, variables, nested = _variables(primals, nums, "vjp")
    out = _call(f, new, {}, "vjp")

    def vjp_fn(cotangent: Any) -> tuple:
        # a cotangent being differentiated (or batched by vmap) keeps the backward pass recorded
        deep = nested or (isinstance(cotangent, Tensor) and cotangent.requires_grad)
        ct = cotangent if deep and isinstance(cotangent, Tensor) else as_value(cotangent, "vjp")
        if np.shape(_raw(ct)) != out.shape:
            raise ValueError(f"vjp: cotangent has shape {np.shape(_raw(ct))} but f's output has shape {out.shape}")
        if not out.requires_grad:
            return tuple(_zeros_like(v, deep) for v in variables)
        gs = autodiff.grad(out, variables, grad_outputs=ct, retain_graph=True, create_graph=deep, allow_unused=True)
        return tuple(_finish(gs, variables, deep))

    return (out if nested else _raw(out)), vjp_fn


def jacobian(f: Callable, argnums: ArgNums = 0) -> Callable:
    """The Jacobian of ``f`` by reverse mode: one backward pass, batched over the output's basis vectors.

    The backward pass is traced once and run by :func:`chainrule.vmap` on all basis cotangents at once
    (rows of the identity), so the cost is a few batched array operations, not one pass per output
    element.  The result for one argument has shape ``out.shape + arg.shape``.  Cheaper than
    :func:`chainrule.jacfwd` when ``f`` has fewer outputs than inputs.
    """

    @functools.wraps(f)
    def jacobian_f(*args: Any, **kwargs: Any) -> Any:
        from . import ops

        nums = _argnums(argnums, len(args), "jacobian")
        new, variables, nested = _variables(args, nums, "jacobian")
        refuse_other_libraries(variables, "jacobian")
        out = _call(f, new, kwargs, "jacobian")
        m = out.size
        if m and out.requires_grad:

            def row(seed: Tensor) -> tuple:
                gs = autodiff.grad(
                    out, variables, grad_outputs=seed, retain_graph=True, create_graph=True, allow_unused=True
                )
                return tuple(_zeros_like(v, True) if g is None else g for g, v in zip(gs, variables))

            basis = np.eye(m, dtype=out.dtype).reshape((m,) + out.shape)
            rows = vmap(row)(Tensor(basis))
        else:
            rows = tuple(Tensor(np.zeros((m,) + v.shape, v.dtype)) for v in variables)
        result = []
        for r, v in zip(rows, variables):
            if nested:
                result.append(ops.reshape(r, out.shape + v.shape))
            else:
                arr = np.array(r._data).reshape(out.shape + v.shape)
                # a scalar function of a Python float gives a float, as grad does
                result.append(float(arr) if arr.ndim == 0 and type(v._data) is float else arr)
        return result[0] if isinstance(argnums, int) else tuple(result)

    return jacobian_f


jacrev = jacobian
