"""Shape primitives: reshape, transpose, broadcast, indexing, joining, casting."""

from __future__ import annotations

from ..primitive import defbatch, defprim, defvjp
from .batching import (
    broadcast_to_rule,
    elementwise,
    getitem_rule,
    joining,
    reshape_rule,
    scatter_add_rule,
    transpose_rule,
)

reshape = defprim("reshape", "reshape", kind="linear")
defvjp(reshape, lambda xp, g, out, x, shape: xp.reshape(g, xp.shape(x)))
defbatch(reshape, reshape_rule(reshape))


def inverse_permutation(axes):
    inv = [0] * len(axes)
    for i, a in enumerate(axes):
        inv[a] = i
    return tuple(inv)


transpose = defprim("transpose", "transpose", kind="linear", symbol="ᵀ")
defvjp(transpose, lambda xp, g, out, x, axes: xp.transpose(g, inverse_permutation(axes)))
defbatch(transpose, transpose_rule(transpose))

# The engine sums a gradient over broadcast axes, so broadcast_to's rule is the identity.
broadcast_to = defprim("broadcast_to", "broadcast_to", kind="linear")
defvjp(broadcast_to, lambda xp, g, out, x, shape: g)
defbatch(broadcast_to, broadcast_to_rule(broadcast_to))


getitem = defprim("getitem", "getitem", kind="linear", symbol="[]")
defvjp(getitem, lambda xp, g, out, x, index: xp.scatter_add(g, index, xp.shape(x)))
defbatch(getitem, getitem_rule(getitem))

scatter_add = defprim("scatter_add", "scatter_add", kind="linear")
defvjp(scatter_add, lambda xp, g, out, x, index, shape: xp.getitem(g, index))
defbatch(scatter_add, scatter_add_rule(scatter_add))


def _concatenate(xp, *args):
    return xp.concat(args[:-1], axis=args[-1])


def _concatenate_dx(xp, g, out, i, *args):
    axis = args[-1]
    start = sum(xp.shape(a)[axis] for a in args[:i])
    stop = start + xp.shape(args[i])[axis]
    index = (slice(None),) * axis + (slice(start, stop),)
    return xp.getitem(g, index)


concatenate = defprim("concatenate", _concatenate, nin=-1, kind="linear")
defvjp(concatenate, _concatenate_dx)
defbatch(concatenate, joining(concatenate))


def _stack(xp, *args):
    return xp.stack(args[:-1], axis=args[-1])


def _stack_dx(xp, g, out, i, *args):
    axis = args[-1]
    return xp.getitem(g, (slice(None),) * axis + (i,))


stack = defprim("stack", _stack, nin=-1, kind="linear")
defvjp(stack, _stack_dx)
defbatch(stack, joining(stack))

astype = defprim("astype", lambda xp, x, dtype: xp.astype(x, dtype), kind="linear")
defvjp(astype, lambda xp, g, out, x, dtype: xp.astype(g, xp.dtype_of(x)))
defbatch(astype, elementwise(astype))


def _to_device(xp, x, device, source):
    from ..backend import move

    return move(x, device)


def _to_device_dx(xp, g, out, x, device, source):
    """The gradient goes back where ``x`` lives (``source``: ``"numpy"`` or a device object): a move from ``device``."""
    return xp.apply(to_device, g, source, device)


# Moving between devices or array libraries (Tensor.to): linear, and its adjoint is the move back.
to_device = defprim("to_device", _to_device, kind="linear", symbol="to")
defvjp(to_device, _to_device_dx)
defbatch(to_device, elementwise(to_device))  # a move keeps every axis where it is

__all__ = [
    "reshape",
    "transpose",
    "broadcast_to",
    "getitem",
    "scatter_add",
    "concatenate",
    "stack",
    "astype",
    "to_device",
]
