"""Test inputs for every registered primitive, each with its PyTorch equivalent.

``CASES[name]`` lists cases for the primitive ``name``.  A case is a chainrule
function, the matching torch function, and one input spec per argument: a shape
and a domain ("any", "pos" for log/sqrt, "int" for indices).  test_primitives
checks that every primitive in the registry has cases here, so a new primitive
is tested from the day it is added.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import chainrule as cr


@dataclass
class Case:
    fn: Callable[..., Any]
    torch_fn: Callable[..., Any]
    shapes: tuple
    domain: tuple = ()
    label: str = ""
    fd_eps: float = 1e-6

    def inputs(self, rng: np.random.Generator, dtype=np.float64) -> list[np.ndarray]:
        out = []
        for i, shape in enumerate(self.shapes):
            dom = self.domain[i] if i < len(self.domain) else "any"
            if dom == "pos":
                x = rng.uniform(0.5, 2.0, size=shape)
            elif dom == "unit":
                x = rng.uniform(-0.9, 0.9, size=shape)
            else:
                x = rng.standard_normal(size=shape)
            out.append(np.asarray(x, dtype=dtype))
        return out


def _torch():
    import torch

    return torch


def _tm():
    from chainrule import torch_more

    return torch_more


def _pool_pick(v, x, k):
    from chainrule.primitives import pool
    from chainrule.tensor import apply

    return apply(pool.max_pool2d_pick, v, x, k)


def _pool_unpool(g, x, k):
    from chainrule.primitives import pool
    from chainrule.tensor import apply

    return apply(pool.max_pool2d_unpool, g, x, k)


def _torch_pick(v, x, k):
    """torch: ``v`` at the places ``max_pool2d(x, k)`` takes its maxima (the indices it returns)."""
    _, idx = _torch().nn.functional.max_pool2d(x, k, return_indices=True)
    return v.flatten(2).gather(2, idx.flatten(2)).view_as(idx)


IDX = np.array([0, 2, 2, 1])
POOL_X = np.random.default_rng(27).standard_normal((1, 2, 5, 7))  # where max pooling's places come from
MASK = np.array([[True, False, True], [False, True, True]])

CASES: dict[str, list[Case]] = {
    "add": [
        Case(lambda a, b: a + b, lambda a, b: a + b, ((3, 4), (4,)), label="row broadcast"),
        Case(lambda a, b: a + b, lambda a, b: a + b, ((2, 1, 3), (4, 1)), label="both broadcast"),
        Case(lambda a, b: a + b, lambda a, b: a + b, ((), ()), label="scalars"),
    ],
    "sub": [
        Case(lambda a, b: a - b, lambda a, b: a - b, ((3, 1), (1, 4))),
        Case(lambda a: 2.0 - a, lambda a: 2.0 - a, ((3,),), label="reflected constant"),
    ],
    "mul": [
        Case(lambda a, b: a * b, lambda a, b: a * b, ((3, 4), (3, 1))),
        Case(lambda a, b: a * b, lambda a, b: a * b, ((), (2, 3)), label="0-d times matrix"),
    ],
    "div": [
        Case(lambda a, b: a / b, lambda a, b: a / b, ((3, 4), (4,)), ("any", "pos")),
        Case(lambda a: 1 / a, lambda a: 1 / a, ((5,),), ("pos",), label="reciprocal"),
    ],
    "neg": [Case(lambda a: -a, lambda a: -a, ((2, 3),))],
    "pow": [
        Case(lambda a: a**3, lambda a: a**3, ((4,),), label="integer exponent"),
        Case(lambda a: a**2.5, lambda a: a**2.5, ((4,),), ("pos",), label="float exponent"),
        Case(lambda a, b: a**b, lambda a, b: a**b, ((3, 2), (2,)), ("pos", "any"), label="tensor exponent"),
        Case(lambda a: 2.0**a, lambda a: 2.0**a, ((3,),), label="constant base"),
    ],
    "abs": [Case(lambda a: abs(a), lambda a: a.abs(), ((6,),))],
    "exp": [Case(cr.exp, lambda a: _torch().exp(a), ((2, 3),))],
    "log": [Case(cr.log, lambda a: _torch().log(a), ((2, 3),), ("pos",))],
    "log1p": [Case(cr.log1p, lambda a: _torch().log1p(a), ((5,),), ("pos",))],
    "log2": [Case(cr.log2, lambda a: _torch().log2(a), ((3, 4),), ("pos",))],
    "log10": [Case(cr.log10, lambda a: _torch().log10(a), ((5,),), ("pos",))],
    "sqrt": [Case(cr.sqrt, lambda a: _torch().sqrt(a), ((2, 3),), ("pos",))],
    "sin": [Case(cr.sin, lambda a: _torch().sin(a), ((4,),))],
    "cos": [Case(cr.cos, lambda a: _torch().cos(a), ((4,),))],
    "tanh": [Case(cr.tanh, lambda a: _torch().tanh(a), ((2, 3),))],
    "sigmoid": [Case(cr.sigmoid, lambda a: _torch().sigmoid(a), ((2, 3),))],
    "relu": [Case(cr.relu, lambda a: _torch().relu(a), ((7,),))],
    "maximum": [Case(cr.maximum, lambda a, b: _torch().maximum(a, b), ((3, 4), (4,)))],
    "minimum": [Case(cr.minimum, lambda a, b: _torch().minimum(a, b), ((3, 1), (3, 4)))],
    "where": [
        Case(
            lambda a, b: cr.where(a > 0, a, b),
            lambda a, b: _torch().where(a > 0, a, b),
            ((3, 4), (4,)),
        )
    ],
    "clip": [
        Case(lambda a: cr.clip(a, -0.5, 0.5), lambda a: a.clamp(-0.5, 0.5), ((8,),)),
        Case(lambda a: cr.clip(a, min=0.0), lambda a: a.clamp(min=0.0), ((8,),), label="lower only"),
    ],
    "sum": [
        Case(lambda a: a.sum(), lambda a: a.sum(), ((3, 4),)),
        Case(lambda a: a.sum(axis=1), lambda a: a.sum(dim=1), ((3, 4),)),
        Case(lambda a: a.sum(axis=(0, 2), keepdims=True), lambda a: a.sum(dim=(0, 2), keepdim=True), ((2, 3, 2),)),
    ],
    "mean": [
        Case(lambda a: a.mean(), lambda a: a.mean(), ((3, 4),)),
        Case(lambda a: a.mean(axis=-1, keepdims=True), lambda a: a.mean(dim=-1, keepdim=True), ((3, 4),)),
    ],
    "max": [
        Case(lambda a: a.max(), lambda a: a.amax(), ((3, 4),)),
        Case(lambda a: a.max(axis=0), lambda a: a.amax(dim=0), ((3, 4),)),
    ],
    "min": [Case(lambda a: a.min(axis=1, keepdims=True), lambda a: a.amin(dim=1, keepdim=True), ((3, 4),))],
    "logsumexp": [
        Case(lambda a: cr.logsumexp(a, axis=1), lambda a: _torch().logsumexp(a, dim=1), ((3, 4),)),
        Case(lambda a: cr.logsumexp(a), lambda a: _torch().logsumexp(a, dim=(0, 1)), ((3, 4),), label="all axes"),
    ],
    "softmax": [Case(lambda a: cr.softmax(a, axis=-1), lambda a: _torch().softmax(a, dim=-1), ((3, 4),))],
    "log_softmax": [Case(lambda a: cr.log_softmax(a, axis=0), lambda a: _torch().log_softmax(a, dim=0), ((3, 4),))],
    "to_device": [  # NumPy -> torch (CPU) -> back: the move and its adjoint, each way
        Case(
            lambda a: (a.to(_torch().device("cpu")) * 2.0).to("numpy"),
            lambda a: a * 2.0,
            ((3, 4),),
            label="to torch and back",
        ),
    ],
    "einsum": [
        Case(
            lambda a, b: cr.einsum("ij,jk->ik", a, b), lambda a, b: _torch().einsum("ij,jk->ik", a, b), ((3, 4), (4, 2))
        ),
        Case(
            lambda a, b: cr.einsum("bij,bj->bi", a, b),
            lambda a, b: _torch().einsum("bij,bj->bi", a, b),
            ((2, 3, 4), (2, 4)),
            label="batched",
        ),
        Case(lambda a: cr.einsum("ij->j", a), lambda a: _torch().einsum("ij->j", a), ((3, 4),), label="sum"),
        Case(
            lambda a, b: cr.einsum("...i,i", a, b),
            lambda a, b: _torch().einsum("...i,i", a, b),
            ((2, 3, 4), (4,)),
            label="ellipsis, implicit",
        ),
        Case(
            lambda a, b: cr.einsum("i,j->ij", a, b),
            lambda a, b: _torch().einsum("i,j->ij", a, b),
            ((3,), (4,)),
            label="outer",
        ),
        Case(
            lambda a, b: cr.einsum("ij,k->i", a, b),
            lambda a, b: _torch().einsum("ij,k->i", a, b),
            ((3, 2), (4,)),
            label="index only one operand has",
        ),
    ],
    "inv": [
        Case(
            lambda a: cr.linalg.inv(a @ a.mT + 2.0 * cr.eye(3, dtype=a.dtype, device=a.device)),
            lambda a: _torch().linalg.inv(a @ a.mT + 2.0 * _torch().eye(3, dtype=a.dtype)),
            ((3, 3),),
        ),
        Case(
            lambda a: cr.linalg.inv(a + 3.0 * cr.eye(2, dtype=a.dtype, device=a.device)),
            lambda a: _torch().linalg.inv(a + 3.0 * _torch().eye(2, dtype=a.dtype)),
            ((2, 2, 2),),
            label="batched",
        ),
    ],
    "det": [
        Case(lambda a: cr.linalg.det(a), lambda a: _torch().linalg.det(a), ((3, 3),)),
        Case(lambda a: cr.linalg.det(a), lambda a: _torch().linalg.det(a), ((2, 2, 2),), label="batched"),
    ],
    "matmul": [
        Case(lambda a, b: a @ b, lambda a, b: a @ b, ((3, 4), (4, 2)), label="matrix"),
        Case(lambda a, b: a @ b, lambda a, b: a @ b, ((4,), (4, 2)), label="vector-matrix"),
        Case(lambda a, b: a @ b, lambda a, b: a @ b, ((3, 4), (4,)), label="matrix-vector"),
        Case(lambda a, b: a @ b, lambda a, b: a @ b, ((4,), (4,)), label="dot"),
        Case(lambda a, b: a @ b, lambda a, b: a @ b, ((2, 3, 4), (4, 2)), label="batched"),
        Case(lambda a, b: a @ b, lambda a, b: a @ b, ((2, 1, 2, 3), (3, 3, 2)), label="batch broadcast"),
        Case(lambda a, b: a @ b, lambda a, b: a @ b, ((3,), (2, 3, 2)), label="vector-batched"),
        Case(lambda a, b: a @ b, lambda a, b: a @ b, ((2, 2, 3), (3,)), label="batched-vector"),
    ],
    "linear": [
        Case(cr.linear, lambda x, W, b: _torch().nn.functional.linear(x, W, b), ((5, 4), (3, 4), (3,)), label="batch"),
        Case(cr.linear, lambda x, W, b: _torch().nn.functional.linear(x, W, b), ((4,), (3, 4), (3,)), label="vector"),
        Case(cr.linear, lambda x, W, b: _torch().nn.functional.linear(x, W, b), ((2, 3, 4), (2, 4), (2,)), label="3-d"),
    ],
    "reshape": [Case(lambda a: a.reshape(4, 3), lambda a: a.reshape(4, 3), ((2, 6),))],
    "transpose": [
        Case(lambda a: a.T, lambda a: a.T, ((2, 3),)),
        Case(lambda a: a.permute(1, 2, 0), lambda a: a.permute(1, 2, 0), ((2, 3, 2),)),
        Case(lambda a: a.transpose(0, 2), lambda a: a.transpose(0, 2), ((2, 3, 4),), label="torch's two-dim swap"),
    ],
    "broadcast_to": [Case(lambda a: cr.broadcast_to(a, (2, 3, 4)), lambda a: a.expand(2, 3, 4), ((3, 1),))],
    "getitem": [
        Case(lambda a: a[1:, ::2], lambda a: a[1:, ::2], ((3, 4),), label="slices"),
        Case(lambda a: a[IDX], lambda a: a[_torch().tensor(IDX)], ((3, 2),), label="repeated indices"),
        Case(lambda a: a[MASK], lambda a: a[_torch().tensor(MASK)], ((2, 3),), label="boolean mask"),
        Case(lambda a: a[..., 1], lambda a: a[..., 1], ((2, 3),), label="ellipsis"),
    ],
    "scatter_add": [
        Case(
            lambda g: cr.scatter_add(g, IDX, (3, 2)),
            lambda g: _torch().zeros(3, 2, dtype=g.dtype).index_put((_torch().tensor(IDX),), g, accumulate=True),
            ((4, 2),),
        )
    ],
    "concatenate": [
        Case(
            lambda a, b: cr.concatenate([a, b], axis=1),
            lambda a, b: _torch().cat([a, b], dim=1),
            ((2, 3), (2, 2)),
        )
    ],
    "stack": [
        Case(lambda a, b: cr.stack([a, b], axis=1), lambda a, b: _torch().stack([a, b], dim=1), ((2, 3), (2, 3)))
    ],
    "astype": [
        Case(
            lambda a: cr.astype(a, np.float32).astype(np.float64) * 1.0,
            lambda a: a.to(_torch().float32).to(_torch().float64),
            ((3,),),
            fd_eps=1e-2,
        )
    ],
    # --- convolutional-network primitives (chainrule/primitives/nn.py) ---
    "unfold": [
        Case(
            lambda a: cr.nn.functional.unfold(a, (2, 3)),
            lambda a: _torch().nn.functional.unfold(a, (2, 3)),
            ((2, 2, 3, 4),),
        ),
        Case(
            lambda a: cr.nn.functional.unfold(a, 2, dilation=(1, 2), padding=1, stride=2),
            lambda a: _torch().nn.functional.unfold(a, 2, dilation=(1, 2), padding=1, stride=2),
            ((1, 2, 4, 5),),
            label="dilation, padding, stride",
        ),
    ],
    "fold": [
        Case(
            lambda a: cr.nn.functional.fold(a, (3, 4), (2, 2)),
            lambda a: _torch().nn.functional.fold(a, (3, 4), (2, 2)),
            ((2, 8, 6),),
            label="overlapping blocks add up",
        ),
        Case(
            lambda a: cr.nn.functional.fold(a, (4, 4), 3, padding=1, stride=2),
            lambda a: _torch().nn.functional.fold(a, (4, 4), 3, padding=1, stride=2),
            ((1, 9, 4),),
            label="padding, stride",
        ),
    ],
    # --- fused convolution (chainrule/primitives/conv.py) ---
    "conv2d": [
        Case(
            lambda x, w: cr.nn.functional.conv2d(x, w, padding=1),
            lambda x, w: _torch().nn.functional.conv2d(x, w, padding=1),
            ((2, 3, 5, 4), (4, 3, 3, 3)),
            label="padding",
        ),
        Case(
            lambda x, w: cr.nn.functional.conv2d(x, w, stride=2, padding=(1, 0), dilation=(1, 2)),
            lambda x, w: _torch().nn.functional.conv2d(x, w, stride=2, padding=(1, 0), dilation=(1, 2)),
            ((1, 2, 6, 7), (3, 2, 2, 3)),
            label="stride, padding, dilation",
        ),
    ],
    "conv2d_input": [
        Case(
            lambda g, w: cr.nn.functional.conv2d_input((2, 3, 5, 4), w, g, padding=1),
            lambda g, w: _torch().nn.grad.conv2d_input((2, 3, 5, 4), w, g, padding=1),
            ((2, 4, 5, 4), (4, 3, 3, 3)),
            label="padding",
        ),
        Case(
            lambda g, w: cr.nn.functional.conv_transpose2d(g, w, stride=2, padding=1, output_padding=1, dilation=2),
            lambda g, w: _torch().nn.functional.conv_transpose2d(
                g, w, stride=2, padding=1, output_padding=1, dilation=2
            ),
            ((1, 3, 3, 2), (3, 2, 2, 3)),
            label="conv_transpose2d, stride, dilation, output_padding",
        ),
    ],
    "conv2d_weight": [
        Case(
            lambda x, g: cr.nn.functional.conv2d_weight(x, (4, 3, 3, 3), g, padding=1),
            lambda x, g: _torch().nn.grad.conv2d_weight(x, (4, 3, 3, 3), g, padding=1),
            ((2, 3, 5, 4), (2, 4, 5, 4)),
            label="padding",
        ),
        Case(
            lambda x, g: cr.nn.functional.conv2d_weight(x, (3, 2, 2, 3), g, stride=2, padding=(1, 0), dilation=(1, 2)),
            lambda x, g: _torch().nn.grad.conv2d_weight(x, (3, 2, 2, 3), g, stride=2, padding=(1, 0), dilation=(1, 2)),
            ((1, 2, 6, 7), (1, 3, 4, 2)),
            label="stride, padding, dilation",
        ),
    ],
    # --- max pooling over non-overlapping windows (chainrule/primitives/pool.py) ---
    "max_pool2d_pick": [
        Case(
            lambda a: cr.nn.functional.max_pool2d(a, 2),
            lambda a: _torch().nn.functional.max_pool2d(a, 2),
            ((2, 3, 4, 6),),
            label="max_pool2d",
        ),
        Case(  # the places come from a fixed array: they have no gradient (as torch's indices)
            lambda v: _pool_pick(v, POOL_X, (2, 3)),
            lambda v: _torch_pick(v, _torch().tensor(POOL_X), (2, 3)),
            ((1, 2, 5, 7),),
            label="pick another array, partial windows dropped",
        ),
    ],
    "max_pool2d_unpool": [
        Case(
            lambda g: _pool_unpool(g, POOL_X, (2, 2)),
            lambda g: _torch().nn.functional.max_unpool2d(
                g,
                _torch().nn.functional.max_pool2d(_torch().tensor(POOL_X), 2, return_indices=True)[1],
                2,
                output_size=(5, 7),
            ),
            ((1, 2, 2, 3),),
            label="partial windows get zeros",
        ),
    ],
    "erf": [Case(lambda a: cr.nn.functional.erf(a), lambda a: _torch().erf(a), ((3, 4),))],
    # torch's inverse trigonometry, atan2 and expm1 (issue 25)
    "asin": [Case(lambda a: _tm().asin(a), lambda a: _torch().asin(a), ((3, 4),), ("unit",))],
    "acos": [Case(lambda a: _tm().acos(a), lambda a: _torch().acos(a), ((5,),), ("unit",))],
    "atan": [Case(lambda a: _tm().atan(a), lambda a: _torch().atan(a), ((2, 3),))],
    "asinh": [Case(lambda a: _tm().asinh(a), lambda a: _torch().asinh(a), ((4,),))],
    "acosh": [Case(lambda a: _tm().acosh(a + 1.5), lambda a: _torch().acosh(a + 1.5), ((4,),), ("pos",))],
    "atanh": [Case(lambda a: _tm().atanh(a), lambda a: _torch().atanh(a), ((2, 2),), ("unit",))],
    "expm1": [Case(lambda a: _tm().expm1(a), lambda a: _torch().expm1(a), ((3,),))],
    "atan2": [
        Case(lambda a, b: _tm().atan2(a, b), lambda a, b: _torch().atan2(a, b), ((3, 4), (4,)), label="broadcast"),
        Case(lambda a, b: _tm().atan2(a, b), lambda a, b: _torch().atan2(a, b), ((), ()), label="scalars"),
    ],
}
