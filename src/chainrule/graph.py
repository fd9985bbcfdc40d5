"""Read-only views of a recorded graph, for the tools that show it (trace, draw, derive).

Tools should read graphs through these helpers rather than the node tuples in
``tensor.py``, so the engine's internal layout can change for speed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, Optional

import numpy as np

from .autodiff import toposort
from .primitive import Primitive
from .saved import Released, ValueReleasedError, released_message
from .tensor import Tensor, node_parts
from .versions import FREED


class NodeView(NamedTuple):
    """The operation that produced a tensor.

    ``inputs[i]`` is the i-th input tensor, or ``None`` where a raw constant was
    passed (its value is ``args[i]``); ``args`` continues with the static
    parameters (``axis``, ``shape`` ...).
    """

    prim: Primitive
    inputs: tuple[Optional[Tensor], ...]
    args: tuple[Any, ...]

    @property
    def params(self) -> tuple[Any, ...]:
        return self.args[len(self.inputs) :]


def node_of(t: Tensor) -> Optional[NodeView]:
    """The node that produced ``t``; None for a leaf. Raises if backward already freed it."""
    prim = t._node
    if prim is None:
        return None
    if prim is FREED:
        raise RuntimeError(
            "this graph was freed by backward(); run the tool before backward, or call backward(retain_graph=True)"
        )
    inputs, args = node_parts(t)
    if any(type(v) is Released for v in args):
        args = tuple(_recover(prim, i, v) if type(v) is Released else v for i, v in enumerate(args))
    return NodeView(prim, inputs, args)


_STAND_INS: list[bool] = []  # inside stand_ins(): a released input reads as zeros of its shape


@contextmanager
def stand_ins() -> Iterator[None]:
    """Within the block, :func:`node_of` gives a released input as read-only zeros of its shape and dtype.

    For tools that read a graph's structure, not its values (``cr.derive(output)`` recomputes every value
    from the leaves); the engine releases the inputs no backward rule reads.
    """
    _STAND_INS.append(True)
    try:
        yield
    finally:
        _STAND_INS.pop()


def _recover(prim: Primitive, i: int, v: Released) -> Any:
    """A saved input the node did not keep: the array itself while the program still holds it elsewhere."""
    array = v.value()
    if array is None and _STAND_INS:
        return np.broadcast_to(np.zeros((), v.dtype), v.shape)
    if array is None:
        raise ValueReleasedError(released_message(f"input {i} of '{prim.name}' (shape {v.shape}, {v.dtype})"))
    return array


def value_of(t: Tensor) -> Any:
    """The value of graph tensor ``t``; raises :class:`ValueReleasedError` if the engine released it."""
    d = t._data
    if type(d) is Released:
        array = d.value()
        if array is None:
            raise ValueReleasedError(released_message(f"the value of '{t.op}' (shape {d.shape}, {d.dtype})"))
        return array
    return d


def is_freed(t: Tensor) -> bool:
    return t._node is FREED


def topological(root: Tensor) -> list[Tensor]:
    """Non-leaf tensors reachable from ``root``, root first (the order backprop visits them)."""
    return toposort([root])
