"""Elementwise primitives: arithmetic, unary math, activations, max/min gates.

Each line pairs a forward with its VJP rules.  Rules see ``(xp, g, out, *args)``;
the engine reduces broadcast gradients, so rules ignore broadcasting.
"""

from __future__ import annotations

import math
import operator

from ..primitive import defbatch, defprim, defvjp
from .batching import elementwise

# --- arithmetic -------------------------------------------------------------

add = defprim("add", "add", nin=2, scalar_fwd=operator.add, kind="linear", symbol="+")
defvjp(add, lambda xp, g, out, x, y: g, lambda xp, g, out, x, y: g)
defbatch(add, elementwise(add))  # linear and elementwise: the batch axis lines up

sub = defprim("sub", "subtract", nin=2, scalar_fwd=operator.sub, kind="linear", symbol="-")
defvjp(sub, lambda xp, g, out, x, y: g, lambda xp, g, out, x, y: -g)
defbatch(sub, elementwise(sub))

mul = defprim("mul", "multiply", nin=2, scalar_fwd=operator.mul, kind="bilinear", symbol="*")
defvjp(mul, lambda xp, g, out, x, y: g * y, lambda xp, g, out, x, y: g * x)
defbatch(mul, elementwise(mul))

div = defprim("div", "divide", nin=2, scalar_fwd=operator.truediv, kind="elementwise", symbol="/")
defvjp(
    div,
    lambda xp, g, out, x, y: g / y,
    lambda xp, g, out, x, y: -g * out / y,
)

neg = defprim("neg", "negative", scalar_fwd=operator.neg, kind="linear", symbol="-")
defvjp(neg, lambda xp, g, out, x: -g)
defbatch(neg, elementwise(neg))


def _pow_dx(xp, g, out, x, y):
    if isinstance(y, (int, float)):
        if y == 0:
            return g * 0.0
        if y == 1:
            return g
        if y == 2:
            return g * (2.0 * x)
        return g * (y * xp.power(x, y - 1.0))
    # torch: where(exponent == 0, 0, grad * exponent * x ** (exponent - 1)).  The masked branch is
    # computed on a safe base (1 where y == 0), so its own derivative is never 0 * inf = NaN.
    # The printed formula (symbolic namespace) shows x itself: the safe base only matters at y == 0, x == 0.
    return xp.where(y == 0, 0.0, g * (y * xp.power(xp.guarded(y == 0, 1.0, x), y - 1.0)))


def _pow_dy(xp, g, out, x, y):
    # torch: where((x == 0) & (y >= 0), 0, grad * out * log(x)).  Each branch reads log() of a base that
    # is 1 wherever that branch is masked out, so no masked branch holds log(0) (its derivative would be NaN).
    # The printed formula is torch's: the guards (xp.guarded) show x and out themselves.
    if (type(x) is float or type(x) is int) and x > 0:  # a constant base: log(x) in the gradient's own dtype
        return g * out * xp.log(x)  # (a masked pick of two Python numbers takes the default dtype, as in torch)
    zero = x == 0
    nonzero = g * xp.guarded(zero, 0.0, out) * xp.log(xp.guarded(zero, 1.0, x))
    at_zero = g * out * xp.log(xp.guarded(y >= 0, 1.0, x))  # y < 0: out = inf, log(0) = -inf, as torch
    return xp.where(zero, xp.where(y >= 0, 0.0, at_zero), nonzero)


power = defprim("pow", "pow", nin=2, scalar_fwd=math.pow, kind="elementwise", symbol="**")
defvjp(power, _pow_dx, _pow_dy)

# --- unary math ---------------------------------------------------------------

absolute = defprim("abs", "abs", scalar_fwd=abs, kind="elementwise")
defvjp(absolute, lambda xp, g, out, x: g * xp.sign(x))

exp = defprim("exp", "exp", scalar_fwd=math.exp, kind="elementwise")
defvjp(exp, lambda xp, g, out, x: g * out)

log = defprim("log", "log", scalar_fwd=math.log, kind="elementwise")
defvjp(log, lambda xp, g, out, x: g / x)

log1p = defprim("log1p", "log1p", scalar_fwd=math.log1p, kind="elementwise")
defvjp(log1p, lambda xp, g, out, x: g / (x + 1.0))

# Their own forwards (not log(x) / log(2)), so powers of two and ten give exact integers, as torch's do.
_LN2, _LN10 = math.log(2.0), math.log(10.0)
log2 = defprim("log2", "log2", scalar_fwd=math.log2, kind="elementwise", symbol="log₂")
defvjp(log2, lambda xp, g, out, x: g / (x * _LN2))

log10 = defprim("log10", "log10", scalar_fwd=math.log10, kind="elementwise", symbol="log₁₀")
defvjp(log10, lambda xp, g, out, x: g / (x * _LN10))

sqrt = defprim("sqrt", "sqrt", scalar_fwd=math.sqrt, kind="elementwise", symbol="√")
defvjp(sqrt, lambda xp, g, out, x: g / (out * 2.0))

sin = defprim("sin", "sin", scalar_fwd=math.sin, kind="elementwise")
defvjp(sin, lambda xp, g, out, x: g * xp.cos(x))

cos = defprim("cos", "cos", scalar_fwd=math.cos, kind="elementwise")
defvjp(cos, lambda xp, g, out, x: -g * xp.sin(x))

tanh = defprim("tanh", "tanh", scalar_fwd=math.tanh, kind="elementwise")
defvjp(tanh, lambda xp, g, out, x: g * (1.0 - out * out))


def _sigmoid(xp, x):
    # exp(-|x|) never overflows; both branches are exact where they are used.
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _sigmoid_scalar(x):
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


sigmoid = defprim("sigmoid", _sigmoid, scalar_fwd=_sigmoid_scalar, kind="elementwise", symbol="σ")
defvjp(sigmoid, lambda xp, g, out, x: g * (out * (1.0 - out)))


def _relu_scalar(x):
    return x if (x > 0 or x != x) else 0.0


relu = defprim("relu", lambda xp, x: xp.maximum(x, 0), scalar_fwd=_relu_scalar, kind="elementwise")
defvjp(relu, lambda xp, g, out, x: g * xp.indicator(out > 0, g))  # out > 0 exactly where x > 0: x need not be kept

# --- gates that route the gradient (ties split evenly, as torch.maximum does) --


def _max_dx(xp, g, out, x, y):
    return xp.where(x == y, g * 0.5, g * xp.indicator(x > y, g))


def _max_dy(xp, g, out, x, y):
    return xp.where(x == y, g * 0.5, g * xp.indicator(y > x, g))


def _min_dx(xp, g, out, x, y):
    return xp.where(x == y, g * 0.5, g * xp.indicator(x < y, g))


def _min_dy(xp, g, out, x, y):
    return xp.where(x == y, g * 0.5, g * xp.indicator(y < x, g))


def _max_scalar(x, y):
    return x if (x > y or x != x) else y  # NaN propagates from either side, as np.maximum does


def _min_scalar(x, y):
    return x if (x < y or x != x) else y


maximum = defprim("maximum", "maximum", nin=2, scalar_fwd=_max_scalar, kind="elementwise")
defvjp(maximum, _max_dx, _max_dy)

minimum = defprim("minimum", "minimum", nin=2, scalar_fwd=_min_scalar, kind="elementwise")
defvjp(minimum, _min_dx, _min_dy)

where = defprim("where", "where", nin=3, kind="elementwise")
defvjp(
    where,
    None,
    lambda xp, g, out, c, x, y: xp.where(c, g, 0.0),
    lambda xp, g, out, c, x, y: xp.where(c, 0.0, g),
)


def _clip(xp, x, lo, hi):
    return xp.clip(x, lo, hi)


def _clip_dx(xp, g, out, x, lo, hi):
    inside = g
    if lo is not None:
        inside = inside * xp.indicator(x >= lo, g)
    if hi is not None:
        inside = inside * xp.indicator(x <= hi, g)
    return inside


clip = defprim("clip", _clip, nin=1, kind="elementwise")
defvjp(clip, _clip_dx)
