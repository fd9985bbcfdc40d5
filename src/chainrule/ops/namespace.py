"""The tensor namespace: VJP rules run on it when ``create_graph=True``, so the backward pass is recorded."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from .. import walk as _walk
from ..numeric import unbroadcast_axes
from ..tensor import Tensor, apply
from .composed import einsum
from .elementwise import cos, exp, log, power, sign, sin, sqrt, where
from .reductions import matmul, sum
from .shapes import astype, broadcast_to, getitem, permute_dims, reshape, scatter_add, swapaxes


def unbroadcast(g: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Sum a gradient over the axes that broadcasting added or stretched."""
    if g.shape == shape:
        return g
    axes, _ = unbroadcast_axes(g.shape, shape)
    return reshape(sum(g, axes), shape)


def _shape(x: Any) -> tuple[int, ...]:
    return x.shape if type(x) is Tensor else np.shape(x)


def _indicator(cond: Any, like: Any) -> Any:
    """A comparison as 0/1 numbers: NumPy does arithmetic on bools; the Array API standard does not."""
    d = cond._data if type(cond) is Tensor else cond
    if type(d) is np.ndarray or type(d) is bool or type(d) is float:
        return cond
    return cond.astype(like.dtype if type(like) is Tensor else np.result_type(like))


# The namespace the VJP rules see when the backward pass is recorded (create_graph=True).
TENSOR = SimpleNamespace(
    name="tensor",
    exp=exp,
    log=log,
    sin=sin,
    cos=cos,
    sign=sign,
    sqrt=sqrt,
    power=power,
    where=where,
    shape=_shape,
    sum=sum,
    reshape=reshape,
    broadcast_to=broadcast_to,
    transpose=permute_dims,
    swapaxes=swapaxes,
    getitem=getitem,
    scatter_add=scatter_add,
    astype=astype,
    matmul=matmul,
    unbroadcast=unbroadcast,
    indicator=lambda cond, like: _indicator(cond, like),
    dtype_of=lambda x: x.dtype if type(x) is Tensor else np.result_type(x),
    einsum=lambda equation, *operands: einsum(equation, *operands),
    apply=apply,
    guarded=lambda mask, safe, x: where(mask, safe, x),
)


_walk.ABOVE.tensor_namespace = TENSOR  # the walk runs the rules on it for create_graph=True
