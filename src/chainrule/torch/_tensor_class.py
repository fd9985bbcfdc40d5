"""``torch.Tensor`` and the legacy typed constructors (``FloatTensor``, ``LongTensor`` ...) with torch's
meaning: ``Tensor([1, 2])`` is float32 data, ``Tensor(2, 3)`` an uninitialised float32 block, and
``isinstance(t, torch.Tensor)`` holds for every chainrule tensor (one class for the engine)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tensor import Tensor as _Tensor


def _build(dtype: np.dtype, args: tuple, op: str) -> _Tensor:
    if not args:
        return _Tensor(np.zeros(0, dtype))
    if all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in args):
        return _Tensor(np.zeros(tuple(int(a) for a in args), dtype))  # torch leaves it uninitialised
    if len(args) == 1 and isinstance(args[0], (tuple, list, np.ndarray, _Tensor)) or len(args) == 1:
        data = args[0]
        raw = data._data if isinstance(data, _Tensor) else data
        arr = np.array(raw, dtype=dtype)
        return _Tensor(arr)
    raise TypeError(f"{op}: expected sizes (ints) or one sequence of data, got {args!r}")


class _TensorMeta(type):
    def __instancecheck__(cls, obj: Any) -> bool:
        want = cls.__dict__.get("_dtype")
        return isinstance(obj, _Tensor) and (want is None or obj.dtype == want)

    def __subclasscheck__(cls, sub: Any) -> bool:
        return isinstance(sub, type) and issubclass(sub, _Tensor)


class Tensor(_Tensor, metaclass=_TensorMeta):
    """torch.Tensor: the class of every tensor here; called, it builds float32 data as torch's legacy constructor."""

    __slots__ = ()
    _dtype = None

    def __new__(cls, *args: Any, **kwargs: Any) -> _Tensor:  # type: ignore[misc]
        if kwargs:
            raise TypeError(f"torch.Tensor(): unexpected keyword arguments {sorted(kwargs)}; use torch.tensor(...)")
        return _build(np.dtype(cls.__dict__.get("_dtype") or np.float32), args, cls.__name__)


def _typed(name: str, dtype: Any) -> type:
    return _TensorMeta(name, (Tensor,), {"__slots__": (), "_dtype": np.dtype(dtype)})


FloatTensor = _typed("FloatTensor", np.float32)
DoubleTensor = _typed("DoubleTensor", np.float64)
HalfTensor = _typed("HalfTensor", np.float16)
LongTensor = _typed("LongTensor", np.int64)
IntTensor = _typed("IntTensor", np.int32)
ShortTensor = _typed("ShortTensor", np.int16)
CharTensor = _typed("CharTensor", np.int8)
ByteTensor = _typed("ByteTensor", np.uint8)
BoolTensor = _typed("BoolTensor", np.bool_)
