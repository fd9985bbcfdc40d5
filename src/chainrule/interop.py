"""How NumPy functions meet chainrule tensors.

NumPy's arithmetic operators call ``Tensor.__array_ufunc__`` when a tensor is
one operand (``np_array * t``, ``np.float64(2) + t``).  Those are sent to the
tensor's own operators, so the result stays in the graph.  Any other ufunc
applied to a tensor that requires grad (``np.exp(t)``) would silently leave the
graph, so it raises an error that names the chainrule function to use instead;
on tensors without grad it gives NumPy's values as a tensor, as torch does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import methods as _methods  # noqa: F401  (Tensor.__matmul__ and the other operators this maps to)
from . import ops
from .tensor import Tensor


def _binary(name: str) -> Any:
    forward = getattr(Tensor, f"__{name}__")
    reflected = getattr(Tensor, f"__r{name}__", None)

    def call(a: Any, b: Any) -> Any:
        if type(a) is Tensor:
            return forward(a, b)
        return reflected(b, a)

    return call


def _compare(method: str) -> Any:
    def call(a: Any, b: Any) -> Any:
        if type(a) is Tensor:
            return getattr(a, method)(b)
        return getattr(Tensor(np.asarray(a)), method)(b)

    return call


_OPERATORS = {
    np.add: _binary("add"),
    np.subtract: _binary("sub"),
    np.multiply: _binary("mul"),
    np.true_divide: _binary("truediv"),
    np.power: _binary("pow"),
    np.matmul: _binary("matmul"),
    np.less: _compare("__lt__"),
    np.less_equal: _compare("__le__"),
    np.greater: _compare("__gt__"),
    np.greater_equal: _compare("__ge__"),
    np.equal: _compare("__eq__"),
    np.not_equal: _compare("__ne__"),
    np.logical_and: _compare("__and__"),
    np.logical_or: _compare("__or__"),
    np.bitwise_and: _compare("__and__"),
    np.bitwise_or: _compare("__or__"),
}

# NumPy ufunc names whose chainrule function has another name.
_RENAMED = {"absolute": "abs", "true_divide": "divide", "arctan2": "atan2", "negative": "neg"}


def tensor_ufunc(ufunc: Any, method: str, inputs: tuple, kwargs: dict) -> Any:
    """Dispatch a NumPy ufunc call that involves a Tensor (see the module docstring)."""
    out = kwargs.get("out")
    if out is not None:
        # ``array -= tensor`` and friends: NumPy writes into its own array; read the tensor's value.
        plain = tuple(x._data if type(x) is Tensor else x for x in inputs)
        if any(type(o) is Tensor for o in out):
            raise TypeError(
                f"np.{ufunc.__name__}(..., out=tensor): NumPy cannot write into a chainrule tensor; "
                "use the tensor's in-place methods (t += x, t.add_(x), t.copy_(x))"
            )
        return getattr(ufunc, method)(*plain, **kwargs)
    op = _OPERATORS.get(ufunc)
    if method == "__call__" and op is not None and len(inputs) == 2 and not kwargs:
        return op(*inputs)
    if not any(type(x) is Tensor and x.requires_grad for x in inputs):
        # No gradient to lose: NumPy's values in a tensor without grad, as torch's ``__array_wrap__`` gives
        # them (booleans as uint8, as torch does), e.g. matplotlib's np.isfinite on a plot's axis limits.
        result = getattr(ufunc, method)(*(x._data if type(x) is Tensor else x for x in inputs), **kwargs)
        if isinstance(result, (np.ndarray, np.generic)):
            result = np.asarray(result)
            return Tensor(result.astype(np.uint8) if result.dtype == np.bool_ else result)
        return result
    name = _RENAMED.get(ufunc.__name__, ufunc.__name__)
    hint = f"cr.{name}(t)" if hasattr(ops, name) else "a chainrule function (see docs/torch.md)"
    raise TypeError(
        f"np.{ufunc.__name__} was applied to a chainrule Tensor: NumPy functions do not record the graph, "
        f"so the gradient would be lost. Use {hint} instead, or np.{ufunc.__name__}(t.data) for a plain "
        "NumPy array without gradients"
    )


def _array_ufunc(self: Tensor, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
    """``np_array * t`` and ``np.float64(2) + t`` stay in the graph; ``np.exp(t)`` names ``cr.exp``."""
    return tensor_ufunc(ufunc, method, inputs, kwargs)


Tensor.__array_ufunc__ = _array_ufunc  # type: ignore[attr-defined]
