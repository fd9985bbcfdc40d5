"""Array libraries beyond NumPy: any array of the Array API standard.

A tensor keeps the array it was made from.  NumPy arrays and Python floats take
the engine's fast paths; any other array (a torch tensor, a CuPy array on a GPU,
a JAX array, ``array_api_strict``) is a *foreign* array, and the primitives run
on it through an :class:`ArrayNamespace`: chainrule's small numeric vocabulary
(the names the forwards and the VJP rules call, such as ``xp.exp``, ``xp.sum``,
``xp.swapaxes``, ``xp.scatter_add``) implemented on the library's standard
namespace, found with ``array_api_compat.array_namespace``.

Devices: ``"cpu"`` means NumPy for new data (an array already in another
library moves to that library's host memory); ``"cuda"`` / ``"cuda:1"`` means
CuPy when it is installed, else torch; ``"numpy"`` means a NumPy array on the
host, whatever library the data is in.  A library's own device object
(``torch.device("cpu")``, ``array_api_strict.Device(...)``) picks that library.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

import numpy as np

from .numeric import DEFAULTS, is_basic_index, unbroadcast_axes

ndarray = np.ndarray
_COMPAT: Any = None


def compat() -> Any:
    """The ``array_api_compat`` module (imported on first use: NumPy-only programs never load it)."""
    global _COMPAT
    if _COMPAT is None:
        import array_api_compat

        _COMPAT = array_api_compat
    return _COMPAT


def is_foreign(x: Any) -> bool:
    """Whether ``x`` is an array of a library other than NumPy that the Array API can serve."""
    t = type(x)
    if t is ndarray or t is float or t is int or t is bool or isinstance(x, (np.ndarray, np.generic)):
        return False
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        return False
    if hasattr(x, "__array_namespace__"):
        return True
    module = t.__module__.split(".")[0]
    return module in ("torch", "cupy", "jax", "jaxlib", "dask", "sparse", "ndonnx") and compat().is_array_api_obj(x)


def library_name(x: Any) -> str:
    """A readable name for the array library of ``x`` (``"numpy"``, ``"torch"``, ``"array_api_strict"``, ...)."""
    if type(x) is float or type(x) is int:
        return "Python number"
    if isinstance(x, (np.ndarray, np.generic)):
        return "numpy"
    return type(x).__module__.split(".")[0]


_NAMESPACES: dict[Any, ArrayNamespace] = {}


def namespace_of(x: Any) -> ArrayNamespace:
    """The :class:`ArrayNamespace` serving the foreign array ``x`` (one per library, cached)."""
    key = type(x)
    ns = _NAMESPACES.get(key)
    if ns is None:
        try:
            xp = compat().array_namespace(x)
        except TypeError as exc:
            raise TypeError(
                f"chainrule: {type(x).__name__} is not an array the Array API standard serves: {exc}"
            ) from None
        ns = ArrayNamespace(xp, library_name(x))
        _NAMESPACES[key] = ns
    return ns


def device_of(x: Any) -> Any:
    """The device of an array: ``"cpu"`` for NumPy arrays and Python numbers, else the library's device object."""
    if not is_foreign(x):
        return "cpu"
    return compat().device(x)


def common_namespace(op: str, values: Any) -> Optional[ArrayNamespace]:
    """The one foreign namespace among ``values`` (None if all are NumPy or numbers); mixing is refused."""
    found = None
    first = None
    for v in values:
        if is_foreign(v):
            ns = namespace_of(v)
            if found is None:
                found, first = ns, v
            elif ns is not found:
                raise TypeError(f"{op}: cannot mix a {found.library} array with a {ns.library} array in one operation")
            elif compat().device(v) != compat().device(first):
                raise ValueError(
                    f"{op}: expected all arrays on one device, got {compat().device(first)} and {compat().device(v)} "
                    "(move one with cr.tensor(x, device=...) or Tensor.to(device))"
                )
    if found is None:
        return None
    for v in values:
        if isinstance(v, np.ndarray) and v.ndim > 0:
            raise TypeError(
                f"{op}: cannot mix a {found.library} array with a NumPy array of shape {v.shape} in one operation; "
                f"convert one side (cr.tensor(x, device=...) or .numpy())"
            )
    return found


def to_numpy(x: Any) -> np.ndarray:
    """A host NumPy copy (or view) of any array."""
    if isinstance(x, np.ndarray):
        return x
    if type(x) is float or type(x) is int:
        return np.asarray(x)
    lib = library_name(x)
    if lib == "torch":
        return x.detach().cpu().numpy()
    if lib == "cupy":
        return x.get()
    try:
        return np.from_dlpack(x)
    except Exception:  # noqa: BLE001 - libraries differ in what they raise; the slow path below always works
        return np.asarray(x)


def host_view(x: Any) -> Optional[np.ndarray]:
    """A writable NumPy array sharing ``x``'s memory, where the library allows one (torch and
    array-api-strict on the CPU); else None (a GPU array)."""
    lib = library_name(x)
    if lib == "torch":
        return x.detach().numpy() if x.device.type == "cpu" else None
    if lib == "array_api_strict":
        view = getattr(x, "_array", None)  # the NumPy array the strict wrapper holds
        return view if isinstance(view, np.ndarray) and view.flags.writeable else None
    try:
        view = np.from_dlpack(x)
    except Exception:  # noqa: BLE001 - a device array, or a library without host DLPack export
        return None
    return view if view.flags.writeable else None


def _cuda_library() -> str:
    if "cupy" in sys.modules or _importable("cupy"):
        return "cupy"
    if _importable("torch"):
        return "torch"
    raise RuntimeError(
        "device='cuda': no CUDA array library is installed; install CuPy (pip install cupy-cuda12x) "
        "or PyTorch with CUDA"
    )


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _check_device_string(device: str) -> None:
    head, _, index = device.partition(":")
    if head not in ("cpu", "cuda") or (index and not index.isdigit()) or (head == "cpu" and index):
        raise ValueError(
            f"device: expected 'cpu', 'cuda' or 'cuda:N' (or a library's own device object), got {device!r}"
        )


def move(value: Any, device: Any) -> Any:
    """``value`` (a float, NumPy array or foreign array) on ``device`` (see the module docstring)."""
    if device is None:
        return value
    if device == "numpy":  # back to a NumPy array on the host (the adjoint of a move away from NumPy)
        return to_numpy(value) if is_foreign(value) else value
    if isinstance(device, str):
        _check_device_string(device)
        if device == "cpu":
            if not is_foreign(value):
                return value
            lib = library_name(value)
            if lib == "cupy":
                return value.get()
            return compat().to_device(value, "cpu") if lib == "torch" else value
        lib = library_name(value) if is_foreign(value) else _cuda_library()
        host = to_numpy(value) if not is_foreign(value) else value
        if lib == "cupy":
            import cupy

            index = int(device.partition(":")[2] or 0)
            with cupy.cuda.Device(index):
                return cupy.asarray(host)
        if lib == "torch":
            import torch

            if not torch.cuda.is_available():
                raise RuntimeError(f"device={device!r}: torch finds no CUDA device on this machine")
            return (
                host.to(device) if isinstance(host, torch.Tensor) else torch.as_tensor(np.asarray(host), device=device)
            )
        raise ValueError(f"device={device!r}: {lib} arrays cannot be moved to CUDA by chainrule; move them with {lib}")
    # a library's own device object: that library, on that device
    lib = type(device).__module__.split(".")[0]
    host = to_numpy(value) if is_foreign(value) and library_name(value) != lib else value
    if lib == "torch":
        import torch

        return host.to(device) if isinstance(host, torch.Tensor) else torch.as_tensor(np.asarray(host), device=device)
    if lib == "array_api_strict":
        import array_api_strict as strict

        return strict.asarray(np.asarray(host) if not is_foreign(host) else host, device=device)
    if lib == "cupy":
        import cupy

        with device:
            return cupy.asarray(host)
    if lib in ("jax", "jaxlib"):
        import jax

        return jax.device_put(np.asarray(host) if not is_foreign(host) else host, device)
    raise TypeError(
        f"device: {device!r} is neither 'cpu'/'cuda[:N]' nor a device object of torch, CuPy, JAX or array-api-strict"
    )


_NUMPY_DTYPES: dict[Any, np.dtype] = {}


def numpy_dtype(dtype: Any) -> np.dtype:
    """The NumPy dtype named as another library's dtype object (``torch.float32`` -> ``float32``)."""
    found = _NUMPY_DTYPES.get(dtype)
    if found is None:
        if isinstance(dtype, np.dtype):
            return dtype
        found = np.dtype(str(dtype).rsplit(".", 1)[-1].strip("'>"))
        _NUMPY_DTYPES[dtype] = found
    return found


def native_dtype(ns: ArrayNamespace, dtype: Any) -> Any:
    """A dtype given the NumPy way (``"float32"``, ``np.float64``) or natively, as ``ns``'s dtype object."""
    if isinstance(dtype, (str, type, np.dtype)):
        name = np.dtype(dtype).name
        found = getattr(ns.xp, name, None)
        if found is None:
            raise TypeError(f"dtype {name} is not available in {ns.library}")
        return found
    return dtype


def _numbers_too(fn: Any, on_numbers: Any) -> Any:
    """``fn`` that also takes a Python number (a constant operand in a rule), answering with NumPy's IEEE rules."""

    def call(x: Any) -> Any:
        if type(x) is float or type(x) is int:
            with np.errstate(all="ignore"):
                return float(on_numbers(np.float64(x)))
        return fn(x)

    call.__name__ = getattr(fn, "__name__", "call")
    return call


class ArrayNamespace:
    """chainrule's numeric vocabulary (what forwards and VJP rules call) on one Array API namespace.

    ``xp`` is the standard namespace (from array-api-compat); ``library`` the
    array library's name.  Functions the standard lacks (``einsum``,
    ``scatter_add``, ``erf``) use the library's own where it has one; where it has
    none, scatter-add goes through the host (correct, not fast) and the others
    raise an error naming the operation and the library.
    """

    def __init__(self, xp: Any, library: str) -> None:
        self.xp = xp
        self.library = library
        self.name = library
        for fname in (
            "add",
            "subtract",
            "multiply",
            "divide",
            "negative",
            "pow",
            "matmul",
            "isfinite",
            "reshape",
            "broadcast_to",
            "permute_dims",
            "stack",
            "concat",
            "squeeze",
            "zeros",
            "ones",
            "asarray",
        ):
            setattr(self, fname, getattr(xp, fname))
        for fname in ("abs", "exp", "log", "log1p", "log2", "log10", "sqrt", "sin", "cos", "tanh", "sign"):
            setattr(self, fname, _numbers_too(getattr(xp, fname), getattr(np, fname)))
        for fname, npname in (  # the forwards of primitives/trig.py (the standard's names)
            ("asin", "arcsin"),
            ("acos", "arccos"),
            ("atan", "arctan"),
            ("asinh", "arcsinh"),
            ("acosh", "arccosh"),
            ("atanh", "arctanh"),
            ("expm1", "expm1"),
        ):
            setattr(self, fname, _numbers_too(getattr(xp, fname), getattr(np, npname)))
        self.atan2 = xp.atan2
        self.power = xp.pow
        self.transpose = self._transpose
        self._native = sys.modules.get(library)

    def __repr__(self) -> str:
        return f"<chainrule namespace over {self.library}>"

    @staticmethod
    def device_of(x: Any) -> Any:
        return compat().device(x)

    # --- the vocabulary the rules share with NUMPY, SCALAR, TENSOR and the symbolic namespace -----
    @staticmethod
    def shape(x: Any) -> tuple[int, ...]:
        return () if type(x) is float or type(x) is int else tuple(x.shape)

    def dtype_of(self, x: Any) -> Any:
        return x.dtype

    def indicator(self, cond: Any, like: Any) -> Any:
        """``cond`` as 0/1 numbers in the dtype of ``like`` (the standard does no arithmetic on bools)."""
        if type(cond) is bool:
            return 1.0 if cond else 0.0
        dtype = like.dtype if hasattr(like, "dtype") else self._default_float()
        return self.xp.astype(cond, dtype)

    def _default_float(self) -> Any:
        return native_dtype(self, DEFAULTS.float)

    def apply(self, prim: Any, *args: Any) -> Any:
        """Run a primitive's forward on this library's arrays."""
        return prim.xfwd(self, *args)

    def guarded(self, mask: Any, safe: Any, x: Any) -> Any:
        """``x`` with ``safe`` where ``mask`` holds (a rule's guard against 0 * inf)."""
        return self.where(mask, safe, x)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        if isinstance(cond, (np.ndarray, np.bool_)):  # a constant condition made by NumPy
            cond = bool(cond) if np.ndim(cond) == 0 else self.xp.asarray(cond, device=_device_of_any(a, b))
        if type(cond) is bool:  # a Python comparison of numbers: one side, broadcast as the other would be
            pick, other = (a, b) if cond else (b, a)
            if hasattr(pick, "shape") or not hasattr(other, "shape"):
                return pick
            return self.xp.full(other.shape, pick, dtype=other.dtype, device=compat().device(other))
        if not hasattr(a, "shape") and not hasattr(b, "shape"):
            dtype = self._default_float()
            a = self.xp.asarray(a, dtype=dtype, device=compat().device(cond))
        return self.xp.where(cond, a, b)

    def sum(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        if type(x) is float:
            return x
        if isinstance(axis, list):
            axis = tuple(axis)
        if self.xp.isdtype(x.dtype, "bool"):
            x = self.xp.astype(x, self.xp.int64)
        return self.xp.sum(x, axis=axis, keepdims=keepdims)

    def mean(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return self.xp.mean(x, axis=axis, keepdims=keepdims)

    def max(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return self.xp.max(x, axis=axis, keepdims=keepdims)

    def min(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return self.xp.min(x, axis=axis, keepdims=keepdims)

    def maximum(self, x: Any, y: Any) -> Any:
        return self.xp.maximum(x, y)

    def minimum(self, x: Any, y: Any) -> Any:
        return self.xp.minimum(x, y)

    def clip(self, x: Any, lo: Any, hi: Any) -> Any:
        return self.xp.clip(x, lo, hi)

    def _transpose(self, x: Any, axes: Any = None) -> Any:
        if axes is None:
            axes = tuple(reversed(range(len(x.shape))))
        return self.xp.permute_dims(x, tuple(axes))

    def swapaxes(self, x: Any, a: int, b: int) -> Any:
        n = len(x.shape)
        perm = list(range(n))
        perm[a % n], perm[b % n] = perm[b % n], perm[a % n]
        return self.xp.permute_dims(x, tuple(perm))

    def astype(self, x: Any, dtype: Any) -> Any:
        dtype = native_dtype(self, dtype)
        if x.dtype == dtype:
            return x
        return self.xp.astype(x, dtype)

    def index(self, index: Any, ndim: int, device: Any) -> Any:
        """An index for an array of ``ndim`` dims: NumPy/list integer arrays made this library's (on ``device``),
        and NumPy's implicit trailing slices spelled out (``...``), as the standard asks."""
        items = index if type(index) is tuple else (index,)
        masks = any(
            (isinstance(i, (np.ndarray, list)) and np.asarray(i).dtype.kind == "b")
            or (is_foreign(i) and self.xp.isdtype(i.dtype, "bool"))
            for i in items
        )
        if not any(i is Ellipsis for i in items) and not masks and sum(i is not None for i in items) < ndim:
            items = items + (Ellipsis,)
        fixed = []
        for i in items:
            if isinstance(i, (np.ndarray, list, np.integer, np.bool_)):
                arr = np.asarray(i)
                if arr.ndim == 0:
                    i = bool(arr) if arr.dtype.kind == "b" else int(arr)
                else:
                    i = self.xp.asarray(arr if arr.dtype.kind == "b" else arr.astype(np.int64), device=device)
            fixed.append(i)
        return tuple(fixed) if len(fixed) != 1 or type(index) is tuple else fixed[0]

    def getitem(self, x: Any, index: Any) -> Any:
        index = self.index(index, len(x.shape), compat().device(x))
        items = index if type(index) is tuple else (index,)
        first = items[0]
        if (
            is_foreign(first)
            and self.xp.isdtype(first.dtype, "integral")
            and all(i is Ellipsis or (type(i) is slice and i == slice(None)) for i in items[1:])
        ):  # one integer array on the first axis: the standard's take (it allows no slices beside an index array)
            flat = self.xp.reshape(first, (-1,))
            taken = self.xp.take(x, flat, axis=0)
            return self.xp.reshape(taken, tuple(first.shape) + tuple(x.shape[1:]))
        return x[index]

    def scatter_add(self, g: Any, index: Any, shape: tuple[int, ...]) -> Any:
        """The adjoint of ``x[index]``: zeros of ``shape`` with ``g`` added at ``index`` (repeats add up)."""

        device = compat().device(g)
        out = self.xp.zeros(tuple(shape), dtype=g.dtype, device=device)
        index = self.index(index, len(shape), device)
        if self.library in ("jax", "jaxlib"):  # immutable arrays: the functional update
            return out.at[index].add(g)
        if is_basic_index(index):
            out[index] = g
            return out
        if self.library == "torch":
            items = index if type(index) is tuple else (index,)
            if all(is_foreign(i) for i in items):
                return out.index_put_(items, self.xp.broadcast_to(g, out[items].shape), accumulate=True)
        if self.library == "cupy":
            import cupyx

            cupyx.scatter_add(out, index, g)
            return out
        # No scatter in the standard: add on the host, then bring the result back (exact, not fast).
        host_index = _host_index(index)
        acc = np.zeros(tuple(shape), dtype=to_numpy(g).dtype)
        np.add.at(acc, host_index, to_numpy(g))
        return self.xp.asarray(acc, device=device)

    def unbroadcast(self, g: Any, shape: tuple[int, ...]) -> Any:

        gshape = tuple(g.shape)
        shape = tuple(shape)
        if gshape == shape:
            return g
        axes, _ = unbroadcast_axes(gshape, shape)
        summed = self.xp.sum(g, axis=axes)
        return summed if tuple(summed.shape) == shape else self.xp.reshape(summed, shape)

    # --- functions outside the standard --------------------------------------------------------
    def _missing(self, op: str, hint: str) -> Exception:
        return NotImplementedError(
            f"{op}: the Array API standard has no {op}, and {self.library} has none chainrule knows; {hint}"
        )

    def einsum(self, equation: str, *operands: Any) -> Any:
        native = getattr(self.xp, "einsum", None) or getattr(self._native, "einsum", None)
        if native is None:
            raise self._missing("einsum", "write it with matmul, reshape and sum, or use NumPy or torch arrays")
        return native(equation, *operands)

    def erf(self, x: Any) -> Any:
        if self.library == "torch":
            return self._native.special.erf(x)
        if self.library == "cupy":
            import cupyx.scipy.special

            return cupyx.scipy.special.erf(x)
        if self.library in ("jax", "jaxlib"):
            import jax.scipy.special

            return jax.scipy.special.erf(x)
        raise self._missing("erf", "use GELU(approximate='tanh') or NumPy or torch arrays")

    def inv(self, x: Any) -> Any:
        return self.xp.linalg.inv(x)

    def det(self, x: Any) -> Any:
        return self.xp.linalg.det(x)

    def pad(self, x: Any, ph: int, pw: int) -> Any:
        """Zero-pad the last two axes of a 4-D array by ``ph`` rows and ``pw`` columns on each side."""
        n, c, h, w = x.shape
        device = compat().device(x)
        if pw:
            side = self.xp.zeros((n, c, h, pw), dtype=x.dtype, device=device)
            x = self.xp.concat([side, x, side], axis=3)
        if ph:
            side = self.xp.zeros((n, c, ph, w + 2 * pw), dtype=x.dtype, device=device)
            x = self.xp.concat([side, x, side], axis=2)
        return x

    def zeros_as(self, shape: tuple[int, ...], like: Any) -> Any:
        return self.xp.zeros(tuple(shape), dtype=like.dtype, device=compat().device(like))

    def widesum(self, x: Any, axis: Any) -> Any:
        """A sum keeping dims; float16 accumulates in float32, as torch does."""
        half = getattr(self.xp, "float16", None)
        wide = self.xp.float32 if half is not None and x.dtype == half else None
        return self.xp.sum(x, axis=axis, keepdims=True, dtype=wide)

    def add_at(self, out: Any, index: Any, values: Any) -> Any:
        """``out[index] += values`` (a basic index), returning the result (a new array on JAX)."""
        if self.library in ("jax", "jaxlib"):
            return out.at[index].add(values)
        out[index] = out[index] + values
        return out

    @staticmethod
    def add_fresh(y: Any, b: Any) -> Any:
        return y + b

    @staticmethod
    def contiguous(x: Any) -> Any:
        return x


def _device_of_any(*values: Any) -> Any:
    for v in values:
        if is_foreign(v):
            return compat().device(v)
    return None


def _host_index(index: Any) -> Any:
    items = index if type(index) is tuple else (index,)
    out = tuple(to_numpy(i) if is_foreign(i) else i for i in items)
    return out if type(index) is tuple else out[0]


def finite(x: Any) -> bool:
    """Whether every element of a foreign array is finite."""
    ns = namespace_of(x)
    return bool(ns.xp.all(ns.xp.isfinite(x)))


__all__ = [
    "ArrayNamespace",
    "common_namespace",
    "device_of",
    "finite",
    "host_view",
    "is_foreign",
    "library_name",
    "move",
    "namespace_of",
    "native_dtype",
    "numpy_dtype",
    "to_numpy",
]
