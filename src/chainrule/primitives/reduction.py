"""Reductions and the normalizations built on them (softmax, log-softmax).

``axis`` reaches the rules already normalized (``None`` or a sorted tuple of
non-negative ints), so ``expand`` can restore the reduced axes.
"""

from __future__ import annotations

import math

import numpy as np

from ..numeric import keepdims_shape
from ..primitive import defbatch, defjvp, defprim, defvjp
from .batching import along_axis, reduction


def expand(xp, g, shape, axis, keepdims):
    """Broadcast a reduced gradient back over the axes the reduction removed."""
    if not keepdims and axis is not None:
        g = xp.reshape(g, keepdims_shape(shape, axis))
    return xp.broadcast_to(g, shape)


def _count(shape, axis):
    if axis is None:
        return float(math.prod(shape))
    return float(math.prod(shape[a] for a in axis))


def _inverse_count(shape, axis):
    # 1/n as a Python float: it meets the gradient in the gradient's dtype without passing through n there
    # (n = 70000 is inf in float16, and g / inf = 0; torch gives 1/70000 = 1.43e-05).
    # A count of 0 means x has no elements, so the gradient is empty (as torch's) whatever the factor.
    n = _count(shape, axis)
    return 1.0 / n if n else 0.0


sum_ = defprim("sum", lambda xp, x, axis, keepdims: xp.sum(x, axis, keepdims), kind="linear", symbol="Σ")
defvjp(sum_, lambda xp, g, out, x, axis, keepdims: expand(xp, g, xp.shape(x), axis, keepdims))
defbatch(sum_, reduction(sum_))

mean = defprim("mean", lambda xp, x, axis, keepdims: xp.mean(x, axis, keepdims), kind="linear")


def _mean_dx(xp, g, out, x, axis, keepdims):
    return expand(xp, g, xp.shape(x), axis, keepdims) * _inverse_count(xp.shape(x), axis)


defvjp(mean, _mean_dx)
defbatch(mean, reduction(mean))


def _extremum_dx(xp, g, out, x, axis, keepdims):
    # Route to the winners; exact ties share the gradient evenly (as torch.amax does).
    shape = xp.shape(x)
    winners = xp.indicator(x == expand(xp, out, shape, axis, keepdims), g)
    count = xp.sum(winners, axis, True)
    return expand(xp, g, shape, axis, keepdims) * winners / xp.broadcast_to(count, shape)


def _extremum_jvp(xp, tangents, out, x, axis, keepdims):
    # The tangent of the winner; the mean over exact ties (the transpose of the VJP's even split).
    (t,) = tangents
    shape = xp.shape(x)
    winners = xp.indicator(x == expand(xp, out, shape, axis, keepdims), t)
    return xp.sum(t * winners, axis, keepdims) / xp.sum(winners, axis, keepdims)


max_ = defprim("max", lambda xp, x, axis, keepdims: xp.max(x, axis, keepdims))
defvjp(max_, _extremum_dx)
defjvp(max_, _extremum_jvp)
defbatch(max_, reduction(max_))

min_ = defprim("min", lambda xp, x, axis, keepdims: xp.min(x, axis, keepdims))
defvjp(min_, _extremum_dx)
defjvp(min_, _extremum_jvp)
defbatch(min_, reduction(min_))


def _shifted(xp, x, axis):
    m = xp.max(x, axis, True)
    m = xp.where(xp.isfinite(m), m, 0.0)
    return x - m, m


def _logsumexp(xp, x, axis, keepdims):
    # xp.widesum keeps dims and sums float16 in float32 (70,000 float16 ones are inf), as torch does.
    z, m = _shifted(xp, x, axis)
    out = xp.astype(xp.log(xp.widesum(xp.exp(z), axis)) + m, xp.dtype_of(z))
    if keepdims:
        return out
    shape = xp.shape(x)
    removed = range(len(shape)) if axis is None else axis
    return xp.reshape(out, tuple(s for i, s in enumerate(shape) if i not in removed))


logsumexp = defprim("logsumexp", _logsumexp)
defvjp(
    logsumexp,
    lambda xp, g, out, x, axis, keepdims: (
        expand(xp, g, xp.shape(x), axis, keepdims) * xp.exp(x - expand(xp, out, xp.shape(x), axis, keepdims))
    ),
)
defjvp(
    logsumexp,
    lambda xp, tangents, out, x, axis, keepdims: xp.sum(
        tangents[0] * xp.exp(x - expand(xp, out, xp.shape(x), axis, keepdims)), axis, keepdims
    ),
)
defbatch(logsumexp, reduction(logsumexp))


def _shifted_by_max(xp, x, axis):
    # softmax and log_softmax subtract the max as it is, as torch does: a row holding +inf gives NaN
    # (logsumexp, like torch's, shifts by 0 instead where the max is infinite).
    return x - xp.max(x, axis, True)


def _softmax(xp, x, axis):
    with np.errstate(invalid="ignore"):
        e = xp.exp(_shifted_by_max(xp, x, axis))
    return xp.astype(e / xp.widesum(e, axis), xp.dtype_of(e))


softmax = defprim("softmax", _softmax)
defvjp(
    softmax,
    lambda xp, g, out, x, axis: out * (g - xp.sum(g * out, axis, True)),
)
# The Jacobian diag(s) - s sᵀ is symmetric, so the JVP has the VJP's formula.
defjvp(softmax, lambda xp, tangents, out, x, axis: out * (tangents[0] - xp.sum(tangents[0] * out, axis, True)))
defbatch(softmax, along_axis(softmax))


def _log_softmax(xp, x, axis):
    with np.errstate(invalid="ignore"):
        z = _shifted_by_max(xp, x, axis)
    return z - xp.astype(xp.log(xp.widesum(xp.exp(z), axis)), xp.dtype_of(z))


log_softmax = defprim("log_softmax", _log_softmax)
defvjp(
    log_softmax,
    lambda xp, g, out, x, axis: g - xp.exp(out) * xp.sum(g, axis, True),
)
defjvp(log_softmax, lambda xp, tangents, out, x, axis: tangents[0] - xp.sum(xp.exp(out) * tangents[0], axis, True))
defbatch(log_softmax, along_axis(log_softmax))
