"""Making tensors: the default float dtype, torch's creation functions and dtype names.

The default float dtype is float64 (NumPy's), not torch's float32: chainrule is
for seeing and checking gradients, and float64 keeps finite-difference checks,
the scalar fast path (Python floats) and printed traces exact.  Switch with
``cr.set_default_dtype(cr.float32)`` to get torch's numbers.  It decides the
dtype of tensors made from Python floats and lists, of the creation functions
below, and of integer tensors mixed with Python floats (``int_tensor + 0.5``).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .backend import is_foreign, namespace_of, native_dtype
from .numeric import DEFAULTS
from .rng import get_rng
from .tensor import Tensor
from .values import _F64, _NUMERIC_KINDS, _float_dtype

# dtype names as torch spells them (each is a NumPy dtype)
float16 = half = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = double = np.dtype(np.float64)
int8 = np.dtype(np.int8)
int16 = short = np.dtype(np.int16)
int32 = np.dtype(np.int32)
int64 = long = np.dtype(np.int64)
uint8 = np.dtype(np.uint8)
bool_ = np.dtype(np.bool_)

_FLOATS = (float32, float64)


def set_default_dtype(dtype: Any) -> None:
    """Choose the float dtype of new tensors: ``cr.float64`` (chainrule's default) or ``cr.float32`` (torch's)."""
    d = np.dtype(dtype)
    if d not in _FLOATS:
        raise TypeError(f"set_default_dtype: only float32 or float64 can be the default, got {d}")
    DEFAULTS.float = d


def get_default_dtype() -> np.dtype:
    """The float dtype new tensors get (float64 unless changed by :func:`set_default_dtype`)."""
    return DEFAULTS.float


def _dtype(dtype: Any) -> np.dtype:
    return get_default_dtype() if dtype is None else np.dtype(dtype)


def _size(op: str, size: tuple) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    try:
        out = tuple(int(s) for s in size)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: sizes are ints, or one tuple of ints; got {size!r}") from None
    if any(s < 0 for s in out):
        raise ValueError(f"{op}: sizes must be non-negative, got {out}")
    return out


def _made(arr: np.ndarray, requires_grad: bool, device: Any = None) -> Tensor:
    """A new tensor of ``arr``; ``device`` moves it (made on the host, then moved: simple, not the fastest)."""
    if device is not None and device != "cpu":
        return tensor(arr, requires_grad=requires_grad, device=device)
    return tensor(arr, requires_grad=requires_grad) if requires_grad else Tensor(arr)


def zeros(*size: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``."""
    return _made(np.zeros(_size("zeros", size), _dtype(dtype)), requires_grad, device)


def ones(*size: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """A tensor of ones: ``ones(2, 3)`` or ``ones((2, 3))``."""
    return _made(np.ones(_size("ones", size), _dtype(dtype)), requires_grad, device)


def empty(*size: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """An uninitialized tensor (here: zeros, so it is never garbage)."""
    return _made(np.zeros(_size("empty", size), _dtype(dtype)), requires_grad, device)


def full(size: Any, fill_value: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """A tensor filled with ``fill_value``; an int or bool value gives an int or bool tensor, as torch."""
    size = _size("full", (size,) if isinstance(size, int) else tuple(size))
    if dtype is None and isinstance(fill_value, (bool, int, np.integer)):
        dtype = bool_ if isinstance(fill_value, bool) else int64
    return _made(np.full(size, fill_value, _dtype(dtype)), requires_grad, device)


def _like(x: Any, dtype: Any) -> tuple[tuple[int, ...], np.dtype]:
    x = x if type(x) is Tensor else Tensor(x)
    return tuple(x.shape), (x.dtype if dtype is None else np.dtype(dtype))


def _device(x: Any, device: Any) -> Any:
    """``device``, or by default the device (and array library) of ``x``, as torch's ``*_like`` functions do."""
    if device is not None:
        return device
    if type(x) is Tensor:
        return x.device
    from .backend import device_of, is_foreign

    return device_of(x) if is_foreign(x) else None


def zeros_like(x: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    shape, d = _like(x, dtype)
    return _made(np.zeros(shape, d), requires_grad, _device(x, device))


def ones_like(x: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    shape, d = _like(x, dtype)
    return _made(np.ones(shape, d), requires_grad, _device(x, device))


def empty_like(x: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    return zeros_like(x, dtype, requires_grad, device)


def full_like(x: Any, fill_value: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    shape, d = _like(x, dtype)
    return _made(np.full(shape, fill_value, d), requires_grad, _device(x, device))


def _rng() -> np.random.Generator:
    return get_rng()


def randn(
    *size: Any, dtype: Any = None, requires_grad: bool = False, generator: Any = None, device: Any = None
) -> Tensor:
    """Standard normal samples (seed with ``cr.manual_seed``); ``randn(2, 3)`` or ``randn((2, 3))``."""
    rng = generator if generator is not None else _rng()
    return _made(rng.standard_normal(_size("randn", size)).astype(_dtype(dtype)), requires_grad, device)


def rand(
    *size: Any, dtype: Any = None, requires_grad: bool = False, generator: Any = None, device: Any = None
) -> Tensor:
    """Uniform samples on [0, 1)."""
    rng = generator if generator is not None else _rng()
    return _made(rng.random(_size("rand", size)).astype(_dtype(dtype)), requires_grad, device)


def randint(low: int, high: Optional[int] = None, size: Any = (), dtype: Any = None) -> Tensor:
    """Integers in [low, high) (``randint(high, size)`` when one bound is given), int64 as torch."""
    if high is None:
        low, high = 0, low
    size = (size,) if isinstance(size, int) else tuple(size)
    return Tensor(_rng().integers(low, high, size=size).astype(int64 if dtype is None else np.dtype(dtype)))


def randn_like(x: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    shape, d = _like(x, dtype)
    return _made(_rng().standard_normal(shape).astype(d), requires_grad, _device(x, device))


def rand_like(x: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    shape, d = _like(x, dtype)
    return _made(_rng().random(shape).astype(d), requires_grad, _device(x, device))


def randperm(n: int, dtype: Any = None) -> Tensor:
    return Tensor(_rng().permutation(int(n)).astype(int64 if dtype is None else np.dtype(dtype)))


def eye(n: int, m: Optional[int] = None, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """The identity matrix (``n`` by ``m``, square by default)."""
    return _made(np.eye(int(n), None if m is None else int(m), dtype=_dtype(dtype)), requires_grad, device)


def arange(*args: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """``arange(end)``, ``arange(start, end, step)``: int64 for ints, the default float dtype otherwise."""
    arr = np.arange(*args)
    if dtype is not None:
        arr = arr.astype(dtype)
    elif arr.dtype.kind == "f":
        arr = arr.astype(get_default_dtype())
    elif arr.dtype.kind in "iu":
        arr = arr.astype(int64)
    return _made(arr, requires_grad, device)


def linspace(
    start: float, end: float, steps: int, dtype: Any = None, requires_grad: bool = False, device: Any = None
) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    return _made(np.linspace(start, end, int(steps)).astype(_dtype(dtype)), requires_grad, device)


def from_numpy(arr: np.ndarray) -> Tensor:
    """A tensor sharing memory with ``arr`` (as torch.from_numpy): writes to either show in both.

    Writes made directly to ``arr`` are not seen by in-place detection; change
    the tensor through its own methods (or ``.data``) while a graph holds it.
    """
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"from_numpy: expected a NumPy array, got {type(arr).__name__}; use cr.tensor(data)")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"from_numpy: arrays of dtype {arr.dtype} are not supported; use bool, int or float data")
    return Tensor(arr.view(np.ndarray))


def as_tensor(data: Any, dtype: Any = None) -> Tensor:
    """Like :func:`tensor`, but an ndarray or tensor of the right dtype is used without a copy."""
    if type(data) is Tensor and (dtype is None or data.dtype == np.dtype(dtype)):
        return data
    if isinstance(data, np.ndarray) and (dtype is None or data.dtype == np.dtype(dtype)):
        return from_numpy(data)
    return tensor(data, dtype=dtype)


# --- tensor(): a tensor from a number, list, array or tensor ---------------------------------------
def _foreign_tensor(data: Any, requires_grad: bool, dtype: Any, device: Any) -> Tensor:
    """``tensor()`` for another library's array, or for any data sent to a device that is not NumPy's."""
    from .backend import move

    if not is_foreign(data):
        data = tensor(data, dtype=dtype)._data  # NumPy's reading of lists and numbers, then the move
        dtype = None
    value = move(data, device)
    ns = namespace_of(value) if is_foreign(value) else None
    if ns is None:  # the move came back to NumPy (cuda -> "cpu" for CuPy)
        return tensor(value, requires_grad, dtype)
    xp = ns.xp
    if not (xp.isdtype(value.dtype, "numeric") or xp.isdtype(value.dtype, "bool")):
        raise TypeError(f"tensor: {ns.library} data of dtype {value.dtype} is not supported; use bool, int or float")
    if dtype is not None:
        value = xp.astype(value, native_dtype(ns, dtype), copy=True)
    elif value is data:
        value = xp.asarray(value, copy=True)
    if ns.library == "torch" and value.requires_grad:
        value = value.detach()
    if requires_grad and not xp.isdtype(value.dtype, "real floating"):
        raise TypeError(
            f"tensor: only floating-point tensors can require gradients, got dtype {value.dtype}; pass float data"
        )
    return Tensor(value, requires_grad)


def _has_dtype(data: Any) -> bool:
    """Whether ``data`` carries its own dtype (an array or NumPy scalar), which tensor() keeps."""
    return isinstance(data, (np.ndarray, np.generic, Tensor))


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None, device: Any = None) -> Tensor:
    """Make a tensor from a number, a nested list, an array or a tensor (always copies).

    Python floats and float64 scalars keep the scalar fast path; ``dtype`` picks
    a dtype (``"float32"``, ``np.float64``, ...).  Only floating-point
    tensors can require gradients.

    An array of another library (a torch tensor, a CuPy or JAX array,
    ``array_api_strict``) stays in that library and on its device.  ``device``
    moves the data: ``"cpu"``, ``"cuda"``/``"cuda:N"`` (CuPy if installed, else
    torch) or a library's own device object (see :mod:`chainrule.backend`).
    """
    if isinstance(data, Tensor):
        if dtype is None and device is None and type(data._data) is float:
            return Tensor(data._data, requires_grad)
        data = data._data
    if is_foreign(data) or (device is not None and device != "cpu"):
        return _foreign_tensor(data, requires_grad, dtype, device)
    if dtype is None and type(data) is float and DEFAULTS.float is _F64:
        value: Any = data
    else:
        try:
            arr = np.array(data, dtype=dtype)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"tensor: cannot convert {type(data).__name__} to a numeric array: {exc}") from None
        if arr.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(
                f"tensor: cannot make a tensor from {type(data).__name__} data (NumPy dtype {arr.dtype}); "
                "use bool, int or float values"
            )
        if dtype is None and arr.dtype == np.float64 and DEFAULTS.float != arr.dtype and not _has_dtype(data):
            arr = arr.astype(DEFAULTS.float)  # Python floats and lists take the default dtype, as in torch
        value = float(arr) if arr.ndim == 0 and arr.dtype == np.float64 else arr
    if requires_grad and not _float_dtype(value):
        raise TypeError(
            f"tensor: only floating-point tensors can require gradients, got dtype {np.result_type(value)}; "
            "pass float data or dtype=float64"
        )
    return Tensor(value, requires_grad)
