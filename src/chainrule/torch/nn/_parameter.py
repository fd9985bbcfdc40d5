"""``nn.Parameter`` as a class: ``isinstance(p, nn.Parameter)`` holds for tensors made by ``Parameter(...)``
and for every tensor a module registered as a parameter.  A parameter is an ordinary ``Tensor`` (one class
for the engine); the class only answers ``isinstance`` and builds them."""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from ...nn import module as _module
from ...tensor import Tensor
from .. import _print

_MADE: dict[int, weakref.ref] = {}


def _mark(t: Tensor) -> Tensor:
    key = id(t)

    def forget(ref: weakref.ref, key: int = key) -> None:
        if _MADE.get(key) is ref:
            del _MADE[key]

    _MADE[key] = weakref.ref(t, forget)
    return t


def is_parameter(obj: Any) -> bool:
    if type(obj) is not Tensor:
        return False
    ref = _MADE.get(id(obj))
    if ref is not None and ref() is obj:
        return True
    entry = _module._OWNERS.get(id(obj))
    return entry is not None and entry[0]() is obj


class _ParameterMeta(type):
    def __instancecheck__(cls, obj: Any) -> bool:
        return is_parameter(obj)


class Parameter(Tensor, metaclass=_ParameterMeta):
    """``nn.Parameter(tensor, requires_grad=True)``: a leaf sharing ``tensor``'s memory, as in torch."""

    __slots__ = ()

    def __new__(cls, data: Any = None, requires_grad: bool = True) -> Tensor:  # type: ignore[misc]
        if data is None:
            arr: Any = np.zeros(0, np.float32)
        elif isinstance(data, Tensor):
            arr = data.detach()._data
        else:
            raise TypeError(f"Parameter: data must be a Tensor, got {type(data).__name__} (wrap it: torch.tensor(...))")
        if requires_grad and np.result_type(arr).kind != "f":
            raise RuntimeError(
                f"Parameter: only Tensors of floating point dtype can require gradients, got {np.result_type(arr)}"
            )
        return _mark(Tensor(arr, requires_grad))


class Buffer:
    """``nn.Buffer(tensor)``: marks a tensor to be registered as a buffer when assigned to a module."""

    def __init__(self, data: Any, *, persistent: bool = True) -> None:
        raise NotImplementedError(
            "nn.Buffer is not supported in chainrule.torch; use self.register_buffer(name, tensor, persistent=...)"
        )


_print.PARAMETERS.test = is_parameter  # (torch prints a parameter under 'Parameter containing:')
