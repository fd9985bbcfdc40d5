"""Tensor methods with torch's names and NumPy's, attached to :class:`~chainrule.tensor.Tensor`.

Each method is the function of the same name in :mod:`chainrule.ops` (or
:mod:`chainrule.linalg`) with the tensor as first argument, so there is one
implementation per operation.  In-place methods (``add_``, ``clamp_`` ...)
compute the out-of-place result and write it into the tensor's memory through
:func:`chainrule.tensor.inplace`, which also keeps in-place detection informed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, Optional

import numpy as np

from . import linalg, ops
from .autodiff import run_backward
from .backend import is_foreign, namespace_of, to_numpy
from .creation import tensor
from .grad_mode import MODE, no_grad
from .inplace import inplace
from .tensor import Tensor, as_value
from .versions import FREED, _raw_index, mark_modified, torch_order
from .walk import Hooked, hooked

ndarray = np.ndarray


def _same(fn: Callable) -> Callable:
    def method(self: Tensor, *args: Any, **kwargs: Any) -> Any:
        return fn(self, *args, **kwargs)

    method.__name__ = getattr(fn, "__name__", "method")
    method.__doc__ = fn.__doc__
    return method


# --- methods that are the ops functions -------------------------------------------------
_PLAIN = [
    "exp",
    "log",
    "log1p",
    "sqrt",
    "sin",
    "cos",
    "tanh",
    "sigmoid",
    "relu",
    "abs",
    "sign",
    "maximum",
    "minimum",
    "clip",
    "sum",
    "mean",
    "max",
    "min",
    "amax",
    "amin",
    "argmax",
    "argmin",
    "logsumexp",
    "softmax",
    "log_softmax",
    "reshape",
    "permute",
    "permute_dims",
    "transpose",
    "swapaxes",
    "swapdims",
    "t",
    "broadcast_to",
    "expand",
    "expand_as",
    "repeat",
    "tile",
    "unsqueeze",
    "squeeze",
    "flatten",
    "ravel",
    "split",
    "chunk",
    "unbind",
    "matmul",
    "dot",
    "var",
    "std",
    "pow",
    "square",
    "masked_fill",
    "clone",
    "allclose",
    "isclose",
    "all",
    "any",
    "where",
    "exp2",
    "log2",
    "log10",
    "rsqrt",
    "reciprocal",
    "neg",
    "tan",
    "sinh",
    "cosh",
    "floor",
    "ceil",
    "round",
    "trunc",
    "frac",
    "prod",
    "cumsum",
    "outer",
    "mm",
    "bmm",
    "mv",
    "lerp",
    "addcmul",
    "addcdiv",
    "isnan",
    "isinf",
    "isfinite",
    "nan_to_num",
    "diag",
    "tril",
    "triu",
    "trace",
    "take_along_dim",
    "gather",
    "roll",
    "flip",
    "sort",
    "argsort",
    "topk",
    "logical_not",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "count_nonzero",
    "sub",
    "add",
    "mul",
    "div",
    "true_divide",
    "multiply",
    "subtract",
    "divide",
    "clamp_min",
    "clamp_max",
]
for _name in _PLAIN:
    setattr(Tensor, _name, _same(getattr(ops, _name)))

Tensor.clamp = Tensor.clip  # type: ignore[attr-defined]
Tensor.absolute = Tensor.abs  # type: ignore[attr-defined]
Tensor.view = Tensor.reshape  # type: ignore[attr-defined]
Tensor.view_as = lambda self, other: ops.reshape(self, other.shape)  # type: ignore[attr-defined]
Tensor.reshape_as = Tensor.view_as  # type: ignore[attr-defined]


def _mT(self: Tensor) -> Tensor:
    """The last two dims swapped (a batch of matrices transposed)."""
    return ops.swapaxes(self, -1, -2)


def _T(self: Tensor) -> Tensor:
    """All dims reversed (the matrix transpose for 2-D), as NumPy's and torch's ``.T``."""
    return ops.permute_dims(self)


Tensor.T = property(_T)  # type: ignore[attr-defined]
Tensor.mT = property(_mT)  # type: ignore[attr-defined]
Tensor.H = Tensor.T  # type: ignore[attr-defined]


# --- metadata ---------------------------------------------------------------------------
def _dim(self: Tensor) -> int:
    """The number of dims (``ndim``)."""
    return self.ndim


def _numel(self: Tensor) -> int:
    """The number of elements."""
    return int(self.size)


Tensor.dim = _dim  # type: ignore[attr-defined]
Tensor.ndimension = _dim  # type: ignore[attr-defined]
Tensor.numel = _numel  # type: ignore[attr-defined]
Tensor.nelement = _numel  # type: ignore[attr-defined]
Tensor.is_floating_point = lambda self: self.dtype.kind == "f"  # type: ignore[attr-defined]
Tensor.element_size = lambda self: self.dtype.itemsize  # type: ignore[attr-defined]
Tensor.is_cuda = property(lambda self: "cuda" in str(self.device))  # type: ignore[attr-defined]
Tensor.itemsize = property(lambda self: self.dtype.itemsize)  # type: ignore[attr-defined]
Tensor.nbytes = property(lambda self: int(self.size) * self.dtype.itemsize)  # type: ignore[attr-defined]


# --- dtype and device conversions -------------------------------------------------------
def _cast(dtype: Any) -> Callable:
    d = np.dtype(dtype)

    def method(self: Tensor) -> Tensor:
        return self.astype(d)

    method.__doc__ = f"This tensor as {d.name}."
    return method


Tensor.float = _cast(np.float32)  # type: ignore[attr-defined]
Tensor.double = _cast(np.float64)  # type: ignore[attr-defined]
Tensor.half = _cast(np.float16)  # type: ignore[attr-defined]
Tensor.long = _cast(np.int64)  # type: ignore[attr-defined]
Tensor.int = _cast(np.int32)  # type: ignore[attr-defined]
Tensor.short = _cast(np.int16)  # type: ignore[attr-defined]
Tensor.bool = _cast(np.bool_)  # type: ignore[attr-defined]
Tensor.byte = _cast(np.uint8)  # type: ignore[attr-defined]

_DEVICE_MESSAGE = (
    "{op}: there is no '{dev}' device in chainrule; devices are 'cpu' (NumPy), 'cuda' or 'cuda:N' "
    "(CuPy if installed, else torch), 'numpy' (NumPy, from any library), or an array library's own "
    "device object such as torch.device('cpu')"
)


def _device_name(device: Any) -> str:
    return str(getattr(device, "type", device))


def _to(self: Tensor, *args: Any, dtype: Any = None, device: Any = None, copy: bool = False, **kw: Any) -> Tensor:
    """``to(dtype)``, ``to(device)``, ``to(other_tensor)``, ``to(device, dtype)``, as torch.

    A device is ``"cpu"`` (NumPy data stays NumPy; another library's array moves
    to its host), ``"cuda"``/``"cuda:N"`` (CuPy if installed, else torch),
    ``"numpy"`` (a NumPy array, from any library), or a library's own device
    object such as ``torch.device("cpu")``.  The move is
    differentiable: the gradient comes back in this tensor's library.
    """
    kw.pop("non_blocking", None)
    if kw:
        raise TypeError(f"to: unexpected arguments {sorted(kw)}")
    for a in args:
        if type(a) is Tensor:
            dtype, device = a.dtype, a.device
        elif isinstance(a, str) and a.split(":")[0] in ("cpu", "cuda", "numpy", "mps", "meta", "xpu"):
            device = a
        elif type(getattr(a, "type", None)) is str or type(a).__name__ == "Device":  # a device object
            device = a
        else:
            dtype = a
    out = self
    if device is not None:
        if isinstance(device, str) and device.split(":")[0] not in ("cpu", "cuda", "numpy"):
            raise RuntimeError(_DEVICE_MESSAGE.format(op="to", dev=_device_name(device)))
        out = _move(self, device)
    if dtype is not None:
        out = out.astype(dtype)
    return ops.clone(out) if copy and out is self else out


def _move(t: Tensor, device: Any) -> Tensor:
    from .backend import move
    from .primitives.shape import to_device
    from .tensor import apply

    if move(t._data, device) is t._data:
        return t
    return apply(to_device, t, device, source_placement(t._data))


def _cpu(self: Tensor) -> Tensor:
    """This tensor in host memory (itself for NumPy data; another library's array moves to its host)."""
    return _move(self, "cpu")


def _cuda(self: Tensor, device: Any = None, **kwargs: Any) -> Tensor:
    """This tensor on a CUDA device (CuPy if installed, else torch); ``device`` is an index or ``"cuda:N"``."""
    kwargs.pop("non_blocking", None)
    name = "cuda" if device is None else (f"cuda:{device}" if isinstance(device, int) else str(device))
    return _move(self, name)


# torch's legacy type names (CPU), which ``t.type()`` returns and accepts, as torch's does
_TYPE_NAMES = {
    "float32": "torch.FloatTensor",
    "float64": "torch.DoubleTensor",
    "float16": "torch.HalfTensor",
    "int64": "torch.LongTensor",
    "int32": "torch.IntTensor",
    "int16": "torch.ShortTensor",
    "int8": "torch.CharTensor",
    "uint8": "torch.ByteTensor",
    "bool": "torch.BoolTensor",
}
_TYPE_DTYPES = {name: dtype for dtype, name in _TYPE_NAMES.items()}


def _type(self: Tensor, dtype: Any = None) -> Any:
    """As torch's ``type``: without an argument, torch's type name (``'torch.FloatTensor'``); with a dtype or
    such a name, the tensor converted."""
    if dtype is None:
        name = self.dtype.name
        if name not in _TYPE_NAMES:
            raise TypeError(f"type: torch has no tensor type name for dtype {name}; read t.dtype instead")
        return _TYPE_NAMES[name]
    if isinstance(dtype, str) and dtype in _TYPE_DTYPES:
        dtype = _TYPE_DTYPES[dtype]
    if isinstance(dtype, type) and not issubclass(dtype, np.generic):  # t.type(torch.FloatTensor)
        typed = getattr(dtype, "_dtype", None)  # the legacy typed classes carry their dtype
        if typed is None:
            raise TypeError(
                f"type: {dtype.__name__} names no dtype; pass a dtype (torch.float32) or a typed class "
                "(torch.FloatTensor, torch.LongTensor)"
            )
        dtype = typed
    return self.astype(np.dtype(dtype))


Tensor.to = _to  # type: ignore[attr-defined]
Tensor.cpu = _cpu  # type: ignore[attr-defined]
Tensor.cuda = _cuda  # type: ignore[attr-defined]
Tensor.type = _type  # type: ignore[attr-defined]
Tensor.type_as = lambda self, other: self.astype(other.dtype)  # type: ignore[attr-defined]


def _contiguous(self: Tensor, memory_format: Any = None) -> Tensor:
    """Itself if its array is C-contiguous (as torch returns self), else a contiguous copy (a transpose, say)."""
    if memory_format is not None and "contiguous_format" not in str(memory_format):
        raise ValueError(
            f"contiguous: memory_format={memory_format} is not supported; chainrule's arrays are row-major "
            "(C order) only, which is torch.contiguous_format"
        )
    d = self._data
    if type(d) is float or (type(d) is np.ndarray and d.flags.c_contiguous):
        return self
    if type(d) is not np.ndarray and getattr(d, "is_contiguous", None) is not None and d.is_contiguous():
        return self
    return ops.clone(self)


Tensor.contiguous = _contiguous  # type: ignore[attr-defined]


def _new(fill: Callable) -> Callable:
    def method(self: Tensor, *size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
        from .creation import _size

        arr = fill(_size("new", size), self.dtype if dtype is None else np.dtype(dtype))
        return Tensor(arr, False).requires_grad_(requires_grad) if requires_grad else Tensor(arr)

    return method


Tensor.new_zeros = _new(np.zeros)  # type: ignore[attr-defined]
Tensor.new_ones = _new(np.ones)  # type: ignore[attr-defined]
Tensor.new_empty = _new(np.zeros)  # type: ignore[attr-defined]
Tensor.new_full = lambda self, size, value, dtype=None: Tensor(  # type: ignore[attr-defined]
    np.full(tuple(size), value, self.dtype if dtype is None else np.dtype(dtype))
)
Tensor.new_tensor = lambda self, data, dtype=None: Tensor(  # type: ignore[attr-defined]
    np.array(data, dtype=self.dtype if dtype is None else dtype)
)


# --- in-place methods ---------------------------------------------------------------------
def _inplace_binary(name: str, fn: Callable) -> Callable:
    def method(self: Tensor, other: Any, *args: Any, **kwargs: Any) -> Tensor:
        return inplace(self, name, lambda: fn(self, other, *args, **kwargs))

    method.__name__ = name
    method.__doc__ = f"In place: ``self = {fn.__name__}(self, other)``, keeping this tensor's memory and dtype."
    return method


def _inplace_unary(name: str, fn: Callable) -> Callable:
    def method(self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        return inplace(self, name, lambda: fn(self, *args, **kwargs))

    method.__name__ = name
    method.__doc__ = f"In place: ``self = {getattr(fn, '__name__', name)}(self)``."
    return method


def _add(self: Tensor, other: Any, alpha: Any = 1) -> Tensor:
    return self + (other if alpha == 1 else alpha * ops._t(other))


def _sub(self: Tensor, other: Any, alpha: Any = 1) -> Tensor:
    return self - (other if alpha == 1 else alpha * ops._t(other))


Tensor.add_ = _inplace_binary("add_", _add)  # type: ignore[attr-defined]
Tensor.sub_ = _inplace_binary("sub_", _sub)  # type: ignore[attr-defined]
Tensor.mul_ = _inplace_binary("mul_", lambda a, b: a * b)  # type: ignore[attr-defined]
Tensor.div_ = _inplace_binary("div_", lambda a, b: a / b)  # type: ignore[attr-defined]
Tensor.pow_ = _inplace_binary("pow_", lambda a, b: a**b)  # type: ignore[attr-defined]
Tensor.masked_fill_ = _inplace_binary("masked_fill_", ops.masked_fill)  # type: ignore[attr-defined]
Tensor.copy_ = _inplace_binary(  # type: ignore[attr-defined]
    "copy_", lambda a, src: ops.clone(ops.broadcast_to(ops.astype(ops._t(src), a.dtype), a.shape))
)
Tensor.lerp_ = _inplace_binary("lerp_", ops.lerp)  # type: ignore[attr-defined]
Tensor.addcmul_ = _inplace_binary("addcmul_", ops.addcmul)  # type: ignore[attr-defined]
Tensor.addcdiv_ = _inplace_binary("addcdiv_", ops.addcdiv)  # type: ignore[attr-defined]
Tensor.clamp_min_ = _inplace_binary("clamp_min_", ops.clamp_min)  # type: ignore[attr-defined]
Tensor.clamp_max_ = _inplace_binary("clamp_max_", ops.clamp_max)  # type: ignore[attr-defined]
for _name in (
    "exp",
    "log",
    "sqrt",
    "abs",
    "neg",
    "relu",
    "sigmoid",
    "tanh",
    "sin",
    "cos",
    "sign",
    "square",
    "reciprocal",
    "floor",
    "ceil",
    "round",
    "trunc",
    "clip",
    "log1p",
    "nan_to_num",
):
    setattr(Tensor, _name + "_", _inplace_unary(_name + "_", getattr(ops, _name)))
Tensor.clamp_ = Tensor.clip_  # type: ignore[attr-defined]
Tensor.negative_ = Tensor.neg_  # type: ignore[attr-defined]


def _random_fill(name: str, draw: Callable) -> Callable:
    def method(self: Tensor, *args: Any, generator: Any = None, **kwargs: Any) -> Tensor:
        from .rng import draw_into, get_rng

        # torch's stream after chainrule.torch.manual_seed or with a chainrule.torch.Generator
        values = draw_into(np.asarray(self._data), name, args, kwargs, generator)
        if values is None:
            if kwargs:
                raise TypeError(f"Tensor.{name}: unexpected keyword arguments {sorted(kwargs)}; pass them by position")
            rng = generator if generator is not None else get_rng()
            values = np.asarray(draw(rng, self.shape, *args), dtype=self.dtype)
        return inplace(self, name, lambda: Tensor(values))

    method.__name__ = name
    return method


Tensor.uniform_ = _random_fill("uniform_", lambda rng, shape, a=0.0, b=1.0: rng.uniform(a, b, shape))  # type: ignore[attr-defined]
Tensor.normal_ = _random_fill("normal_", lambda rng, shape, m=0.0, s=1.0: rng.normal(m, s, shape))  # type: ignore[attr-defined]
Tensor.bernoulli_ = _random_fill("bernoulli_", lambda rng, shape, p=0.5: rng.random(shape) < p)  # type: ignore[attr-defined]
Tensor.exponential_ = _random_fill("exponential_", lambda rng, shape, lambd=1.0: rng.exponential(1 / lambd, shape))  # type: ignore[attr-defined]
Tensor.random_ = _random_fill(  # type: ignore[attr-defined]
    "random_", lambda rng, shape, a=None, b=None: rng.integers(*((0, a) if b is None else (a, b)), size=shape)
)


def _detach_(self: Tensor) -> Tensor:
    """Cut this tensor from its graph, in place (it becomes a leaf that does not require grad)."""
    if self._node is not None:
        self._node = None
        self._a = self._b = self._av = self._bv = self._args = None
    self.requires_grad = False
    return self


Tensor.detach_ = _detach_  # type: ignore[attr-defined]


# --- autograd helpers ---------------------------------------------------------------------
class GradFn:
    """What ``t.grad_fn`` returns for a tensor made by an operation: its name and its inputs' nodes."""

    __slots__ = ("_t",)

    def __init__(self, t: Tensor) -> None:
        self._t = t

    def name(self) -> str:
        """The operation, in torch's spelling (``MulBackward``)."""
        return f"{''.join(p.capitalize() for p in self._t._node.name.split('_'))}Backward"

    @property
    def next_functions(self) -> tuple:
        from .tensor import node_parts

        if self._t._node is FREED:
            return ()
        out = []
        for inp in node_parts(self._t)[0]:
            if not isinstance(inp, Tensor) or not inp.requires_grad:
                fn = None
            elif inp._node is None:
                fn = AccumulateGrad(inp)
            else:
                fn = GradFn(inp)
            out.append((fn, 0))
        return tuple(out)

    def __repr__(self) -> str:
        return f"<{self.name()}>"


class AccumulateGrad:
    """In ``next_functions``: the end of a path at a leaf that requires grad (its ``.variable``)."""

    __slots__ = ("variable",)

    def __init__(self, leaf: Tensor) -> None:
        self.variable = leaf

    def name(self) -> str:
        return "AccumulateGrad"

    next_functions: tuple = ()

    def __repr__(self) -> str:
        return "<AccumulateGrad>"


def _grad_fn(self: Tensor) -> Optional[GradFn]:
    """The operation that made this tensor (None for a leaf), as torch's ``grad_fn``."""
    if self._node is None:
        return None
    return GradFn(self)


Tensor.grad_fn = property(_grad_fn)  # type: ignore[attr-defined]


def _retain_grad(self: Tensor) -> None:
    """Keep this non-leaf tensor's gradient in ``.grad`` after backward (a leaf keeps it anyway)."""
    if not self.requires_grad:
        raise RuntimeError("retain_grad: this tensor does not require grad, so it will have no gradient")
    node = hooked(self) if self._node is not None else None
    if node is None or node.retain is not None:
        return

    def keep(g: Any) -> None:
        if not MODE.in_backward:  # tools replaying the rules (cr.trace) leave .grad alone
            return
        value = g if type(g) is Tensor else Tensor(np.array(g) if isinstance(g, np.ndarray) else g)
        self._grad = value if self._grad is None else self._grad + value

    node.retain = keep


def autograd_grad(*args: Any, **kwargs: Any) -> tuple:
    """``torch.autograd.grad``: gradients of outputs with respect to inputs (see :func:`chainrule.autodiff.grad`).

    As in torch, tensors that called ``retain_grad()`` get their ``.grad`` filled by this too.
    """
    from .autodiff import grad

    MODE.in_backward += 1
    try:
        return grad(*args, **kwargs)
    finally:
        MODE.in_backward -= 1


Tensor.retain_grad = _retain_grad  # type: ignore[attr-defined]
Tensor.retains_grad = property(lambda self: type(self._node) is Hooked and self._node.retain is not None)  # type: ignore[attr-defined]


class _HookHandle:
    def __init__(self, hooks: list, fn: Callable) -> None:
        self._hooks, self._fn = hooks, fn

    def remove(self) -> None:
        if self._fn in self._hooks:
            self._hooks.remove(self._fn)


def _register_hook(self: Tensor, hook: Callable[[Tensor], Optional[Tensor]]) -> _HookHandle:
    """Call ``hook(grad)`` when this tensor's gradient is computed; a returned tensor replaces the gradient.

    On a leaf the hook runs when backward() delivers its gradient into ``.grad``
    (not for ``cr.autograd.grad``, which does not touch ``.grad``).
    """
    if not self.requires_grad:
        raise RuntimeError("register_hook: cannot register a hook on a tensor that does not require grad")
    if self._node is None:
        from .autodiff import add_leaf_hook

        handle = _HookHandle([hook], hook)
        remover = add_leaf_hook(self, hook)
        handle.remove = remover  # type: ignore[method-assign]
        return handle
    hooks: list = []

    def run(g: Any) -> Any:
        current = g
        for fn in list(hooks):
            arg = current if type(current) is Tensor else Tensor(current)
            with no_grad() if type(g) is not Tensor else _nullcontext():
                replaced = fn(arg)
            if replaced is not None:
                current = (
                    replaced
                    if type(g) is Tensor
                    else np.asarray(replaced._data if type(replaced) is Tensor else replaced)
                )
        return current

    hooks.append(hook)
    node = hooked(self)
    if node is not None:
        node.hooks.append(run)
    return _HookHandle(hooks, hook)


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


Tensor.register_hook = _register_hook  # type: ignore[attr-defined]

Tensor.norm = lambda self, p="fro", dim=None, keepdim=False: linalg.norm_torch(self, p, dim, keepdim)  # type: ignore[attr-defined]


def _where_method(self: Tensor, condition: Any, other: Any) -> Tensor:
    """torch's ``x.where(condition, y)``: ``x`` where ``condition`` holds, else ``y``."""
    return ops.where(condition, self, other)


Tensor.where = _where_method  # type: ignore[attr-defined]


# --- backward, matrix products and writes through indexing (the engine's Tensor holds none of them) ----------
def _backward(
    self,
    grad: Any = None,
    retain_graph: Optional[bool] = None,
    create_graph: bool = False,
    *,
    gradient: Any = None,
) -> None:
    """Backpropagate from this tensor, accumulating into the leaves' ``.grad``.

    ``gradient=`` is torch's name for the seed ``grad``.
    ``grad`` is the seed (required unless the tensor is a scalar).  The
    graph's saved values are freed afterwards unless ``retain_graph`` is
    true (it defaults to ``create_graph``).  With ``create_graph=True`` the
    backward pass is recorded too, so gradients can be differentiated again.
    """
    if gradient is not None:
        if grad is not None:
            raise TypeError("backward: give the seed as grad or gradient, not both")
        grad = gradient
    MODE.in_backward += 1
    try:
        run_backward([self], [grad], retain_graph=retain_graph, create_graph=create_graph)
    finally:
        MODE.in_backward -= 1


Tensor.backward = _backward  # type: ignore[attr-defined]
Tensor.__matmul__ = lambda self, other: ops.matmul(self, other)  # type: ignore[attr-defined]
Tensor.__rmatmul__ = lambda self, other: ops.matmul(other, self)  # type: ignore[attr-defined]


def _zero_(self) -> Tensor:
    """Set every element to 0 in place."""
    return self.fill_(0)


def _fill_(self, value: Any) -> Tensor:
    """Set every element to ``value`` in place."""
    if type(value) is Tensor and value.size != 1:
        raise ValueError(f"fill_: the value must be a number or a one-element tensor, got shape {value.shape}")
    return inplace(self, "fill_", lambda: _constant_like(self, value))


def _setitem(self, index: Any, value: Any) -> None:
    index = _raw_index(index)
    split = torch_order(index) if type(index) is tuple else None
    if split is not None:  # integers mixed with advanced indices: torch's order of the selected dimensions
        if type(self._data) is ndarray and not (
            MODE.enabled and (self.requires_grad or (type(value) is Tensor and value.requires_grad))
        ):
            try:
                self._data[split[0]][split[1]] = as_value(value._data if type(value) is Tensor else value)
            except ValueError as exc:
                raise ValueError(
                    f"setitem: cannot write a value of shape {np.shape(value)} into index {index!r} "
                    f"of a tensor of shape {self.shape}: {exc}"
                ) from None
            mark_modified(self)
            return
        positions = np.arange(math.prod(self.shape)).reshape(self.shape)[split[0]][split[1]]
        index = np.unravel_index(positions, self.shape)  # the same elements, as one index in torch's order
    if MODE.enabled and (self.requires_grad or (type(value) is Tensor and value.requires_grad)):
        inplace(self, "setitem", lambda: _put(self, index, value))
        return
    if type(value) is Tensor:
        value = value._data
    if type(self._data) is float:
        arr = np.array(self._data)
        arr[index] = as_value(value)
        self._data = float(arr)
    elif type(self._data) is not ndarray:  # another library's array: its index and values
        ns = namespace_of(self._data)
        raw = as_value(value)
        if not is_foreign(raw):
            raw = float(raw) if np.ndim(raw) == 0 else ns.xp.asarray(np.asarray(raw), device=ns.device_of(self._data))
        try:
            self._data[ns.index(index, len(self._data.shape), ns.device_of(self._data))] = raw
        except (IndexError, TypeError) as exc:
            raise IndexError(
                f"setitem: {ns.library} cannot assign at index {index!r} ({exc}); the Array API standard "
                "assigns only at ints and slices: use cr.where for a masked or indexed update"
            ) from None
    else:
        try:
            self._data[index] = as_value(value)
        except ValueError as exc:
            raise ValueError(
                f"setitem: cannot write a value of shape {np.shape(value)} into index {index!r} "
                f"of a tensor of shape {self.shape}: {exc}"
            ) from None
    mark_modified(self)


Tensor.zero_ = _zero_  # type: ignore[attr-defined]
Tensor.fill_ = _fill_  # type: ignore[attr-defined]
Tensor.__setitem__ = _setitem  # type: ignore[attr-defined]


def _constant_like(t: Tensor, value: Any) -> Tensor:
    """``value`` broadcast to ``t``'s shape; recorded as ``where`` (gradient 0 to ``t``) when ``t`` is in a graph."""
    v = value._data if type(value) is Tensor else value
    d = t._data
    if type(d) is not ndarray and type(d) is not float:  # another library's array: its own full()
        ns = namespace_of(d)
        filled = ns.xp.full(tuple(d.shape), float(v) if not is_foreign(v) else v, dtype=d.dtype, device=ns.device_of(d))
        if MODE.enabled and t.requires_grad:
            never = ns.xp.zeros(tuple(d.shape), dtype=ns.xp.bool, device=ns.device_of(d))
            return ops.where(never, t, filled)
        return Tensor(filled)
    if MODE.enabled and t.requires_grad:
        return ops.where(np.zeros(t.shape, dtype=bool), t, v)
    return Tensor(np.broadcast_to(np.asarray(v, dtype=t.dtype), t.shape))


def _put(t: Tensor, index: Any, value: Any) -> Tensor:
    """``t`` with ``t[index]`` replaced by ``value``, as a recorded (differentiable) expression."""
    d = t._data
    if type(d) is not ndarray and type(d) is not float:  # another library's array: masks and values there
        items = index if type(index) is tuple else (index,)
        host = tuple(to_numpy(i) if is_foreign(i) else i for i in items)
        host_index = host if type(index) is tuple else host[0]
        shape = tuple(d.shape)
        mask = np.zeros(shape, dtype=bool)
        mask[host_index] = True
        selected_shape = np.zeros(shape, dtype=bool)[host_index].shape
        ns = namespace_of(d)
        chosen: Any = ns.xp.asarray(mask, device=ns.device_of(d))
        if type(value) is not Tensor:
            value = tensor(as_value(value, "setitem"), dtype=t.dtype, device=t.device)
        v = ops.astype(value, t.dtype) if value.dtype != t.dtype else value
        if v.ndim > len(selected_shape) and all(n == 1 for n in v.shape[: v.ndim - len(selected_shape)]):
            v = ops.reshape(v, v.shape[v.ndim - len(selected_shape) :])
        v = ops.broadcast_to(v, selected_shape)
        return ops.where(chosen, ops.scatter_add(v, index, shape), t)
    base = np.asarray(d)
    chosen = np.zeros(base.shape, dtype=bool)
    chosen[index] = True
    selected_shape = base[index].shape
    v = value if type(value) is Tensor else Tensor(np.asarray(as_value(value, "setitem"), dtype=t.dtype))
    if v.dtype != t.dtype:
        v = ops.astype(v, t.dtype)
    if v.ndim > len(selected_shape) and all(n == 1 for n in v.shape[: v.ndim - len(selected_shape)]):
        v = ops.reshape(v, v.shape[v.ndim - len(selected_shape) :])  # leading 1s dropped, as torch and NumPy do
    try:
        v = ops.broadcast_to(v, selected_shape)
    except ValueError:
        raise ValueError(
            f"setitem: cannot write a value of shape {v.shape} into index {index!r} of a tensor of shape {t.shape} "
            f"(the selection has shape {selected_shape})"
        ) from None
    return ops.where(chosen, ops.scatter_add(_last_write_wins(v, index, base.shape), index, base.shape), t)


def _last_write_wins(v: Tensor, index: Any, shape: tuple) -> Tensor:
    """``v`` with the values that a later one overwrites (an index naming an element twice) made 0, so that
    scatter_add writes the last one, as torch's ``x[index] = v`` does; the gradient still reaches every value
    at its element, as torch's does (``x[[0, 0]] = w`` gives both ``w`` the gradient of ``x[0]``)."""
    positions = np.arange(math.prod(shape)).reshape(shape)[index].ravel()
    if len(np.unique(positions)) == len(positions):
        return v
    _, last = np.unique(positions[::-1], return_index=True)
    kept = np.zeros(len(positions), dtype=bool)
    kept[len(positions) - 1 - last] = True
    kept = kept.reshape(v.shape)
    lost = np.asarray(v._data)[~kept]
    if not np.all(np.isfinite(lost)):
        raise ValueError(
            "setitem: the index names an element more than once and an overwritten value is not finite "
            f"({lost[~np.isfinite(lost)][:3]}); chainrule cannot drop it while keeping its gradient as torch does. "
            "Remove the repeated indices, or write under cr.no_grad()"
        )
    return v - ops.where(kept, 0.0, v.detach())  # the same values for the kept ones, 0 for the overwritten ones


def source_placement(value: Any) -> Any:
    """Where ``value`` lives, as :func:`chainrule.backend.move` takes it back: ``"numpy"`` or a device object."""
    if type(value) is float or type(value) is ndarray:
        return "numpy"
    from .backend import device_of

    return device_of(value)


def clear_grads(params: Iterable[Tensor], set_to_none: bool = True) -> None:
    """Reset the ``.grad`` of each tensor: to ``None`` (the default, as in PyTorch 2) or to zeros in place."""
    for p in params:
        if set_to_none or p.grad is None:
            p.grad = None
        else:
            p.grad.zero_()


def _format(self: Tensor, spec: str) -> str:
    """``f"{loss:.4f}"`` and ``f"{loss}"``: a zero-dimensional tensor formats its number, as torch's
    ``Tensor.__format__`` does (so ``f"{loss}"`` prints ``2.4543561935424805``, not the repr); else the repr."""
    if self.ndim == 0:
        return format(self.item(), spec)
    return object.__format__(self, spec)


Tensor.__format__ = _format  # type: ignore[method-assign]
