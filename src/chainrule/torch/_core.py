"""torch's defaults for the facade: the default float dtype (float32), creation functions that pass it
explicitly (chainrule's own default stays float64), devices, ``finfo``/``iinfo`` and small helpers."""

from __future__ import annotations

import math
import sys
from typing import Any, Optional

import numpy as np

from .. import creation as C
from ..numeric import DEFAULTS as _ENGINE_DEFAULTS
from ..tensor import PRINT as _PRINT
from ..tensor import Tensor
from . import _random
from ._linspace import torch_arange, torch_linspace
from ._print import set_printoptions, torch_repr  # noqa: F401  (torch.set_printoptions)

float16 = half = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = double = np.dtype(np.float64)
int8 = np.dtype(np.int8)
int16 = short = np.dtype(np.int16)
int32 = np.dtype(np.int32)
int64 = long = np.dtype(np.int64)
uint8 = np.dtype(np.uint8)
bool_ = np.dtype(np.bool_)
uint16, uint32, uint64 = np.dtype(np.uint16), np.dtype(np.uint32), np.dtype(np.uint64)


class _Defaults:
    float: np.dtype = float32


DEFAULTS = _Defaults()


_random.DEFAULT_FLOAT.read = lambda: DEFAULTS.float


def _torch_face(on: bool = True) -> None:
    """torch's integer promotion (an integer tensor meeting a Python float, or divided, takes torch's default
    dtype) and torch's printed form (four decimals, ``grad_fn=<...>``, ``torch.Size``).  The engine is shared by
    both faces, so this holds for every tensor in the process once chainrule.torch is imported (docs/torch.md);
    chainrule's creation functions keep their own default.  ``on=False`` gives chainrule's own rules back
    (for tests)."""
    _ENGINE_DEFAULTS.promotion = (lambda: DEFAULTS.float) if on else None
    _PRINT.style = (lambda t: torch_repr(t, DEFAULTS.float)) if on else None
    _PRINT.shape = Size if on else None


def set_default_dtype(d: Any) -> None:
    """torch's default float dtype of this namespace (float32 or float64); chainrule's own stays as it is."""
    d = np.dtype(d)
    if d not in (float32, float64):
        raise TypeError(f"set_default_dtype: only float32 or float64 can be the default, got {d}")
    DEFAULTS.float = d


def get_default_dtype() -> np.dtype:
    return DEFAULTS.float


def _float(dtype: Any) -> np.dtype:
    return DEFAULTS.float if dtype is None else np.dtype(dtype)


class Size(tuple):
    """``torch.Size``: a tuple of dims, what ``t.shape`` and ``t.size()`` give here, as in torch."""

    def numel(self) -> int:
        return int(math.prod(self))

    def __getitem__(self, index: Any) -> Any:
        got = tuple.__getitem__(self, index)
        return Size(got) if isinstance(index, slice) else got

    def __add__(self, other: Any) -> Size:
        return Size(tuple(self) + tuple(other))

    def __radd__(self, other: Any) -> Size:
        return Size(tuple(other) + tuple(self))

    def __repr__(self) -> str:
        return f"torch.Size({list(self)})"


# --- devices ---------------------------------------------------------------------------------------------------


class device(str):  # noqa: N801  (torch.device)
    """``torch.device('cpu')``, ``device('cuda', 0)``: a place; chainrule computes on 'cpu'.

    A ``str`` subclass (``'cpu'``, ``'cuda:0'``), so chainrule's own functions take it where they take strings.
    """

    type: str
    index: Optional[int]

    def __new__(cls, type: Any, index: Optional[int] = None) -> device:  # noqa: A002
        if isinstance(type, device):
            type, index = type.type, type.index
        if isinstance(type, int):
            type, index = "cuda", type
        text = str(type)
        if ":" in text:
            text, _, idx = text.partition(":")
            if not idx.isdigit():
                raise RuntimeError(f"device: invalid device string {type!r} (expected e.g. 'cpu' or 'cuda:0')")
            index = int(idx)
        if text not in ("cpu", "cuda", "mps", "meta", "xpu"):
            raise RuntimeError(f"device: expected one of cpu, cuda, mps, meta, xpu device type, got {type!r}")
        self = super().__new__(cls, text if index is None else f"{text}:{index}")
        self.type, self.index = text, index
        return self

    def __repr__(self) -> str:
        return (
            f"device(type='{self.type}')" if self.index is None else f"device(type='{self.type}', index={self.index})"
        )

    def __str__(self) -> str:
        return str.__str__(self)

    def __eq__(self, other: Any) -> bool:
        return str.__eq__(self, str(other)) if isinstance(other, str) else NotImplemented

    def __hash__(self) -> int:
        return str.__hash__(self)


def cuda_available() -> bool:
    """True when a GPU array library with a device is present (CuPy, or a torch the program already imported)."""
    try:
        import cupy  # noqa: PLC0415

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return True
    except Exception:  # noqa: BLE001  (not installed, or no driver)
        pass
    torch_mod = sys.modules.get("torch")
    try:
        return bool(torch_mod is not None and torch_mod.cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


def check_device(dev: Any, op: str) -> Any:
    """``None`` for the CPU; a GPU device string passes on only when :func:`cuda_available`."""
    if dev is None:
        return None
    d = dev if isinstance(dev, device) else device(dev) if isinstance(dev, (str, int)) else None
    if d is None:
        return dev  # another library's device object: chainrule.tensor decides
    if d.type == "cpu":
        return None
    if d.type == "cuda" and cuda_available():
        return str(d)
    raise RuntimeError(
        f"{op}: device {str(d)!r} is not available: chainrule.torch computes on the CPU "
        "(torch.cuda.is_available() is False here); use device='cpu', or install CuPy for 'cuda'"
    )


_DEFAULT_DEVICE = device("cpu")


def set_default_device(dev: Any) -> None:
    """Only the CPU: chainrule.torch makes every tensor there."""
    if dev is None or device(dev).type == "cpu":
        return
    raise RuntimeError(
        f"set_default_device({dev!r}): chainrule.torch makes tensors on the CPU only; use 'cpu' (or leave it "
        "out), and move single tensors with t.to('cuda') where a GPU array library is installed"
    )


def get_default_device() -> device:
    return _DEFAULT_DEVICE


# --- creation with torch's defaults ---------------------------------------------------------------------------


def _python_data(data: Any) -> bool:
    """Data whose float values come from Python (lists, floats): they take the default float dtype."""
    return not isinstance(data, (np.ndarray, np.generic, Tensor)) and not hasattr(data, "__array_namespace__")


def tensor(
    data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False, pin_memory: bool = False
) -> Tensor:
    """``torch.tensor``: always a copy; Python floats become the default float dtype (float32)."""
    dev = check_device(device, "tensor")
    if dtype is None and _python_data(data):
        probe = C.tensor(data, dtype=None)
        if probe.dtype.kind == "f":
            dtype = DEFAULTS.float
    out = C.tensor(data, requires_grad=requires_grad, dtype=dtype, device=dev)
    if type(out._data) is float:  # the scalar fast path only where the dtype is float64 by request
        out._data = np.array(out._data)
    return out


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    if isinstance(data, Tensor) and (dtype is None or data.dtype == np.dtype(dtype)):
        return data
    if isinstance(data, np.ndarray) and (dtype is None or data.dtype == np.dtype(dtype)):
        return Tensor(data)
    return tensor(data, dtype=dtype, device=device)


def _size_args(size: tuple) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list, Size)):
        return tuple(size[0])
    return size


def zeros(
    *size: Any, out: Any = None, dtype: Any = None, layout: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:  # noqa: ARG001
    return C.zeros(*size, dtype=_float(dtype), requires_grad=requires_grad, device=check_device(device, "zeros"))


def ones(
    *size: Any, out: Any = None, dtype: Any = None, layout: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:  # noqa: ARG001
    return C.ones(*size, dtype=_float(dtype), requires_grad=requires_grad, device=check_device(device, "ones"))


def empty(
    *size: Any,
    out: Any = None,
    dtype: Any = None,
    layout: Any = None,
    device: Any = None,
    requires_grad: bool = False,
    memory_format: Any = None,
) -> Tensor:  # noqa: ARG001
    return C.empty(*size, dtype=_float(dtype), requires_grad=requires_grad, device=check_device(device, "empty"))


def full(
    size: Any,
    fill_value: Any,
    *,
    out: Any = None,
    dtype: Any = None,
    layout: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:  # noqa: ARG001
    if dtype is None:
        v = fill_value._data if isinstance(fill_value, Tensor) else fill_value
        dtype = (
            np.bool_
            if isinstance(v, (bool, np.bool_))
            else np.int64
            if isinstance(v, (int, np.integer))
            else DEFAULTS.float
        )
    return C.full(size, fill_value, dtype=dtype, requires_grad=requires_grad, device=check_device(device, "full"))


def _like_dtype(x: Any, dtype: Any) -> Any:
    return dtype if dtype is not None else (x.dtype if isinstance(x, Tensor) else np.asarray(x).dtype)


def zeros_like(
    input: Any,
    *,
    dtype: Any = None,
    layout: Any = None,
    device: Any = None,
    requires_grad: bool = False,
    memory_format: Any = None,
) -> Tensor:  # noqa: A002, ARG001
    return C.zeros_like(
        input, dtype=_like_dtype(input, dtype), requires_grad=requires_grad, device=check_device(device, "zeros_like")
    )


def ones_like(
    input: Any,
    *,
    dtype: Any = None,
    layout: Any = None,
    device: Any = None,
    requires_grad: bool = False,
    memory_format: Any = None,
) -> Tensor:  # noqa: A002, ARG001
    return C.ones_like(
        input, dtype=_like_dtype(input, dtype), requires_grad=requires_grad, device=check_device(device, "ones_like")
    )


def empty_like(
    input: Any,
    *,
    dtype: Any = None,
    layout: Any = None,
    device: Any = None,
    requires_grad: bool = False,
    memory_format: Any = None,
) -> Tensor:  # noqa: A002, ARG001
    return C.empty_like(
        input, dtype=_like_dtype(input, dtype), requires_grad=requires_grad, device=check_device(device, "empty_like")
    )


def full_like(
    input: Any,
    fill_value: Any,
    *,
    dtype: Any = None,
    layout: Any = None,
    device: Any = None,
    requires_grad: bool = False,
    memory_format: Any = None,
) -> Tensor:  # noqa: A002, ARG001
    return C.full_like(
        input,
        fill_value,
        dtype=_like_dtype(input, dtype),
        requires_grad=requires_grad,
        device=check_device(device, "full_like"),
    )


def eye(
    n: int,
    m: Optional[int] = None,
    *,
    out: Any = None,
    dtype: Any = None,
    layout: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:  # noqa: ARG001
    return C.eye(n, m, dtype=_float(dtype), requires_grad=requires_grad, device=check_device(device, "eye"))


def arange(
    *args: Any,
    out: Any = None,
    dtype: Any = None,
    layout: Any = None,
    device: Any = None,
    requires_grad: bool = False,
    **kw: Any,
) -> Tensor:  # noqa: ARG001
    """int64 for int arguments, the default float dtype when any argument is a float (torch)."""
    vals = list(args) + [kw[k] for k in ("start", "end", "step") if k in kw]
    if dtype is None:
        raw = [v._data if isinstance(v, Tensor) else v for v in vals]
        floaty = any(
            isinstance(v, (float, np.floating)) or (isinstance(v, np.ndarray) and v.dtype.kind == "f") for v in raw
        )
        dtype = DEFAULTS.float if floaty else np.int64
    if kw:
        start, end, step = kw.get("start", 0), kw.get("end"), kw.get("step", 1)
        if end is None and args:
            start, end = (0, args[0]) if len(args) == 1 else (args[0], args[1])
        args = (start, end, step)
    dt = np.dtype(dtype)
    raw = [a._data if isinstance(a, Tensor) else a for a in args]
    if dt in (float32, float64) and 1 <= len(raw) <= 3 and all(np.ndim(a) == 0 for a in raw):
        check_device(device, "arange")
        start, end, step = (0.0, raw[0], 1.0) if len(raw) == 1 else (raw[0], raw[1], raw[2] if len(raw) == 3 else 1.0)
        values = torch_arange(float(start), float(end), float(step), dt)
        return C.tensor(values, requires_grad=requires_grad)
    return C.arange(*args, dtype=dtype, requires_grad=requires_grad, device=check_device(device, "arange"))


def linspace(
    start: Any,
    end: Any,
    steps: int,
    *,
    out: Any = None,
    dtype: Any = None,
    layout: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:  # noqa: ARG001
    dt = _float(dtype)
    check_device(device, "linspace")
    if dt in (float32, float64) and not isinstance(start, Tensor) and not isinstance(end, Tensor):
        if int(steps) < 0:
            raise RuntimeError(f"linspace: number of steps must be non-negative, got {steps}")
        return C.tensor(torch_linspace(float(start), float(end), int(steps), dt), requires_grad=requires_grad)
    return C.linspace(start, end, steps, dtype=dt, requires_grad=requires_grad)


def logspace(
    start: Any,
    end: Any,
    steps: int,
    base: float = 10.0,
    *,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:  # noqa: ARG001
    out = np.power(base, np.linspace(float(start), float(end), int(steps))).astype(_float(dtype))
    return C.tensor(out, requires_grad=requires_grad)


def from_numpy(arr: np.ndarray) -> Tensor:
    return C.from_numpy(arr)


# --- random creation: torch's streams where chainrule.torch_random provides them ------------------------------


def rand(
    *size: Any, generator: Any = None, dtype: Any = None, device: Any = None, requires_grad: bool = False, **_: Any
) -> Tensor:
    check_device(device, "rand")
    return _random.rand(_size_args(size), generator, _float(dtype), requires_grad)


def randn(
    *size: Any, generator: Any = None, dtype: Any = None, device: Any = None, requires_grad: bool = False, **_: Any
) -> Tensor:
    check_device(device, "randn")
    return _random.randn(_size_args(size), generator, _float(dtype), requires_grad)


def rand_like(
    input: Any, *, generator: Any = None, dtype: Any = None, device: Any = None, requires_grad: bool = False, **_: Any
) -> Tensor:  # noqa: A002
    return rand(
        tuple(input.shape), generator=generator, dtype=_like_dtype(input, dtype), device=device,
        requires_grad=requires_grad,
    )  # fmt: skip


def randn_like(
    input: Any, *, generator: Any = None, dtype: Any = None, device: Any = None, requires_grad: bool = False, **_: Any
) -> Tensor:  # noqa: A002
    return randn(
        tuple(input.shape), generator=generator, dtype=_like_dtype(input, dtype), device=device,
        requires_grad=requires_grad,
    )  # fmt: skip


def randint(
    *args: Any,
    size: Any = None,
    generator: Any = None,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
    **kw: Any,
) -> Tensor:  # noqa: ARG001
    """``randint(high, size)`` or ``randint(low, high, size)``; int64 unless ``dtype`` says otherwise."""
    check_device(device, "randint")
    low = kw.get("low", 0)
    high = kw.get("high")
    rest = list(args)
    if size is None and rest and isinstance(rest[-1], (tuple, list, Size)):
        size = tuple(rest.pop())
    if len(rest) == 2:
        low, high = rest
    elif len(rest) == 1:
        high = rest[0] if high is None else high
        if "high" in kw:
            low = rest[0]
    if high is None or size is None:
        raise TypeError("randint: give (high, size) or (low, high, size), e.g. torch.randint(0, 10, (3,))")
    out = _random.randint(int(low), int(high), tuple(size), generator, np.dtype(np.int64 if dtype is None else dtype))
    return _random._made(out._data, requires_grad)


def randperm(
    n: int, *, generator: Any = None, dtype: Any = None, device: Any = None, requires_grad: bool = False, **_: Any
) -> Tensor:  # noqa: ARG001
    check_device(device, "randperm")
    out = _random.randperm(int(n), generator, np.dtype(np.int64 if dtype is None else dtype))
    return _random._made(out._data, requires_grad)


# --- small helpers ------------------------------------------------------------------------------------------


def is_tensor(obj: Any) -> bool:
    return isinstance(obj, Tensor)


def is_floating_point(input: Any) -> bool:  # noqa: A002
    return input.dtype.kind == "f"


def is_nonzero(input: Any) -> bool:  # noqa: A002
    if input.numel() != 1:
        raise RuntimeError(f"is_nonzero: the tensor must have exactly one element, got shape {tuple(input.shape)}")
    return bool(np.asarray(input._data).reshape(()) != 0)


def numel(input: Any) -> int:  # noqa: A002
    return int(math.prod(input.shape))


class finfo:  # noqa: N801
    """torch.finfo: ``bits eps max min tiny smallest_normal resolution dtype`` of a float dtype."""

    def __init__(self, type: Any = None) -> None:  # noqa: A002
        d = DEFAULTS.float if type is None else np.dtype(type)
        if d.kind != "f":
            raise TypeError(f"finfo: expected a floating-point dtype, got {d}; use torch.iinfo for integers")
        f = np.finfo(d)
        self.bits, self.eps, self.max, self.min = f.bits, float(f.eps), float(f.max), float(f.min)
        self.tiny = self.smallest_normal = float(f.smallest_normal)
        self.resolution = float(f.resolution)
        self.dtype = str(d)

    def __repr__(self) -> str:
        return (
            f"finfo(resolution={self.resolution}, min={self.min}, max={self.max}, eps={self.eps}, dtype={self.dtype})"
        )


class iinfo:  # noqa: N801
    """torch.iinfo: ``bits max min dtype`` of an integer dtype."""

    def __init__(self, type: Any) -> None:  # noqa: A002
        d = np.dtype(type)
        if d.kind not in "iub":
            raise TypeError(f"iinfo: expected an integer dtype, got {d}; use torch.finfo for floats")
        f = np.iinfo(np.uint8 if d.kind == "b" else d)
        self.bits, self.max, self.min, self.dtype = f.bits, int(f.max), int(f.min), str(d)

    def __repr__(self) -> str:
        return f"iinfo(min={self.min}, max={self.max}, dtype={self.dtype})"


_torch_face()  # (at the end: it uses Size)
