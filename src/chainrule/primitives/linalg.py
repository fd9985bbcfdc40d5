"""Matrix multiplication, with NumPy's rules for 1-D and batched operands."""

from __future__ import annotations

import numpy as np

from ..primitive import defprim, defvjp


def _matmul_dx(xp, g, out, x, y):
    xd, yd = len(xp.shape(x)), len(xp.shape(y))
    if xd == 1 and yd == 1:
        return g * y
    if yd == 1:  # (..., m, n) @ (n,) -> (..., m): outer product of g and y
        return xp.reshape(g, xp.shape(g) + (1,)) * y
    if xd == 1:  # (n,) @ (..., n, m) -> (..., m)
        gcol = xp.reshape(g, xp.shape(g)[:-1] + (xp.shape(g)[-1], 1))
        prod = y @ gcol
        return xp.reshape(prod, xp.shape(prod)[:-1])
    return g @ xp.swapaxes(y, -1, -2)


def _matmul_dy(xp, g, out, x, y):
    xd, yd = len(xp.shape(x)), len(xp.shape(y))
    if xd == 1 and yd == 1:
        return g * x
    if xd == 1:  # dy[..., n, m] = x[n] g[..., m]
        return xp.reshape(x, (xp.shape(x)[0], 1)) * xp.reshape(g, xp.shape(g)[:-1] + (1, xp.shape(g)[-1]))
    if yd == 1:  # (..., m, n) @ (n,): dy = xᵀ g summed over the batch
        gcol = xp.reshape(g, xp.shape(g) + (1,))
        prod = xp.swapaxes(x, -1, -2) @ gcol
        return xp.reshape(prod, xp.shape(prod)[:-1])
    return xp.swapaxes(x, -1, -2) @ g


matmul = defprim("matmul", np.matmul, nin=2, kind="bilinear", symbol="@")
defvjp(matmul, _matmul_dx, _matmul_dy, local=("yᵀ", "xᵀ"))
