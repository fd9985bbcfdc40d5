"""The fused affine map of ``nn.Linear``: ``linear(x, W, b) = x @ Wᵀ + b``.

One primitive instead of ``matmul(x, transpose(W)) + b``: the forward adds the
bias into the product's own buffer, and the weight gradient is formed directly
in ``W``'s layout as ``gᵀ x`` (no transpose node, so no transposed view that
would have to be copied into ``W.grad``).  The bias gradient is ``g`` itself;
the engine sums it over the batch axes, as it does for any broadcast input.
``x`` may have any number of leading (batch) axes, or be a single vector.
"""

from __future__ import annotations

from ..primitive import defbatch, defjvp, defprim, defvjp
from .batching import linear_rule
from .elementwise import add
from .linalg import matmul


def _linear(xp, x, W, b):
    xs, ws = xp.shape(x), xp.shape(W)
    if len(ws) != 2 or len(xs) < 1 or xs[-1] != ws[1]:
        raise ValueError("W must have shape (out_features, in_features) with in_features equal to x's last dimension")
    # Wᵀ is a view; the product is a fresh array, so the bias is added into it (same values as y + b)
    return xp.add_fresh(xp.matmul(x, xp.swapaxes(W, -1, -2)), b)


def _rows(xp, a):
    """``a`` as a 2-D (rows, features) array: batch axes folded into one."""
    shape = xp.shape(a)
    if len(shape) == 2:
        return a
    n = 1
    for s in shape[:-1]:
        n *= s
    return xp.reshape(a, (n, shape[-1]))


def _linear_dx(xp, g, out, x, W, b):
    return g @ W


def _linear_dW(xp, g, out, x, W, b):
    if len(xp.shape(x)) == 1:  # a single vector: the outer product g xᵀ
        return xp.reshape(g, (xp.shape(g)[0], 1)) * x
    return xp.swapaxes(_rows(xp, g), -1, -2) @ _rows(xp, x)


def _linear_db(xp, g, out, x, W, b):
    return g


def _linear_jvp(xp, tangents, out, x, W, b):
    tx, tW, tb = tangents
    terms = []
    if tx is not None:
        terms.append(tx @ xp.swapaxes(W, -1, -2))
    if tW is not None:
        terms.append(x @ xp.swapaxes(tW, -1, -2))
    total = terms[0] if terms else None
    for t in terms[1:]:
        total = total + t
    if tb is not None:
        total = tb if total is None else total + tb
    return total


linear = defprim(
    "linear",
    _linear,
    nin=3,
    symbol="linear",
    doc="x @ Wᵀ + b (nn.Linear), with W of shape (out_features, in_features)",
)
defvjp(linear, _linear_dx, _linear_dW, _linear_db)  # x: the input, y: W (trace letters)
defjvp(linear, _linear_jvp)
defbatch(linear, linear_rule(linear, matmul, add))
