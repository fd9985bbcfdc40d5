"""Raw values: dtype promotion as torch does it, the result invariant (arrays, or Python floats), forwards on
other array libraries, and clear errors for failed forwards."""

from __future__ import annotations

from typing import Any

import numpy as np

from .backend import common_namespace, is_foreign, namespace_of, native_dtype
from .numeric import DEFAULTS
from .primitive import Primitive

ndarray = np.ndarray


_NUMERIC_KINDS = frozenset("biuf")


_F64 = np.dtype(np.float64)


_INT_KINDS = "biu"


def promote_int(out: ndarray, *values: Any) -> ndarray:
    """torch's promotion where NumPy's differs, for a float64 result of integer (or bool) inputs: with a Python
    float, the default float dtype; with float32 arrays, float32 (NumPy gives float64 for both).  Also for
    several inputs (cat, stack, where)."""
    floats = [v.dtype for v in values if type(v) is ndarray and v.dtype.kind == "f"]
    target = (floats[0] if len(floats) == 1 else np.result_type(*floats)) if floats else DEFAULTS.promoted()
    return out if target == out.dtype else out.astype(target)


def promote_int_scalar(out: float, *values: Any) -> Any:
    """:func:`promote_int` for a float64 scalar result (a Python float): a 0-d array of the promoted dtype, or
    the float itself where float64 is right."""
    arr = np.array(out)
    promoted = promote_int(arr, *values)
    return out if promoted is arr else promoted


_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


def _zero_dim_operands(av: ndarray, bv: ndarray) -> tuple[ndarray, ndarray]:
    """torch's rule for a 0-d tensor meeting a dimensioned one: within the same category (or a lower one) the
    dimensioned operand's dtype wins (int32 + a 0-d int64 is int32, float16 + a 0-d float32 is float16), where
    NumPy promotes.  Only the forward sees the cast; the node keeps the operands as they were."""
    if av.ndim == 0:
        if _CATEGORY.get(av.dtype.kind, 9) <= _CATEGORY.get(bv.dtype.kind, -1):
            return av.astype(bv.dtype), bv
    elif _CATEGORY.get(bv.dtype.kind, 9) <= _CATEGORY.get(av.dtype.kind, -1):
        return av, bv.astype(av.dtype)
    return av, bv


def _norm(out: Any) -> Any:
    """Keep the invariant: results are ndarrays, or Python floats for float64 scalars."""
    t = type(out)
    if t is ndarray:
        return out
    if t is float or t is np.float64:
        return float(out)
    if is_foreign(out):
        return out
    return np.asarray(out)


def _shape_text(v: Any) -> str:
    return str(tuple(v.shape)) if is_foreign(v) else str(tuple(np.shape(v)))


def op_error(prim: Primitive, values: tuple, nin: int, exc: Exception) -> Exception:
    """A clear error for a failed forward: names the operation and its input shapes."""
    shapes = ", ".join(_shape_text(v) for v in values[:nin])
    reason = str(exc)
    if "broadcast" in reason:
        reason = (
            "shapes cannot be broadcast together (NumPy rules: aligned from the right, "
            "each dimension pair must be equal or contain a 1)"
        )
    if isinstance(exc, MemoryError):  # (NumPy's "Unable to allocate ..." names the result's size)
        return MemoryError(f"{prim.name}: inputs with shapes {shapes}: {reason}")
    cls = type(exc) if isinstance(exc, (ValueError, TypeError, IndexError)) else ValueError
    return cls(f"{prim.name}: inputs with shapes {shapes}: {reason}")


_FLOAT_ONLY = frozenset(
    (
        "div",
        "pow",
        "exp",
        "log",
        "log1p",
        "log2",
        "log10",
        "sqrt",
        "sin",
        "cos",
        "tanh",
        "sigmoid",
        "erf",
        "softmax",
        "log_softmax",
    )
    + ("logsumexp", "mean", "inv", "det")
)


_KEEPS_DTYPE = frozenset(("getitem", "scatter_add", "reshape", "transpose", "broadcast_to", "astype", "concatenate"))


def _adopt(const: ndarray, other: Any) -> Any:
    """A NumPy constant (not a tensor) meeting another library's array: a 0-d one as a Python number,
    a larger one converted to that library and device, as torch converts a NumPy operand."""
    if const.ndim == 0:
        return const.item()
    if not is_foreign(other):
        return const
    ns = namespace_of(other)
    return ns.xp.asarray(const, device=ns.device_of(other))


def foreign_forward(prim: Primitive, values: tuple, nin: int) -> Any:
    """Run ``prim`` on another array library's arrays (one library and one device per operation).

    Integer and bool inputs meeting floats become floats first (the first float
    input's dtype, else chainrule's default float dtype, as on NumPy arrays; the
    Array API standard itself refuses mixed kinds).
    """
    ns = common_namespace(prim.name, values[:nin])
    if ns is None:  # no foreign array after all (a NumPy 0-d array, say): the NumPy forward
        try:
            return _norm(prim.fwd(*values))
        except Exception as exc:
            raise op_error(prim, values, nin, exc) from None
    xp = ns.xp
    vals = list(values)
    for i in range(nin):  # NumPy scalars and 0-d arrays join as Python numbers
        v = vals[i]
        if isinstance(v, (np.ndarray, np.generic)):
            vals[i] = v.item()
    if prim.name not in _KEEPS_DTYPE:
        first = 1 if prim.name == "where" else 0
        ins = vals[first:nin]
        arrays = [v for v in ins if is_foreign(v)]
        floats = [v.dtype for v in arrays if xp.isdtype(v.dtype, "real floating")]
        if any(f != floats[0] for f in floats):
            raise TypeError(
                f"{prim.name}: {ns.library} arrays of dtypes {', '.join(sorted(set(map(str, floats))))} in one "
                "operation; on other libraries' arrays chainrule does not promote between float dtypes (torch's "
                "matmul refuses too): convert one side first, e.g. x.to(np.float32) or x.double()"
            )
        if len(floats) < len(arrays) and (floats or prim.name in _FLOAT_ONLY or any(type(v) is float for v in ins)):
            target = floats[0] if floats else native_dtype(ns, DEFAULTS.promoted())
            for i in range(first, nin):
                v = vals[i]
                if is_foreign(v) and not xp.isdtype(v.dtype, "real floating"):
                    vals[i] = xp.astype(v, target)
    try:
        return prim.xfwd(ns, *vals)
    except NotImplementedError:
        raise
    except Exception as exc:
        raise op_error(prim, tuple(vals), nin, exc) from None


def _scalar_fallback(prim: Primitive, values: tuple) -> Any:
    """Python math raised (log(0), 1/0, exp(1000)): redo it with NumPy's IEEE semantics."""
    with np.errstate(all="ignore"):
        return prim.fwd(*(np.float64(v) if type(v) in (float, int) else v for v in values))


def _float_dtype(v: Any) -> bool:
    if type(v) is float:
        return True
    kind = getattr(v.dtype, "kind", None)
    if kind is not None:
        return kind == "f"
    return namespace_of(v).xp.isdtype(v.dtype, "real floating")
