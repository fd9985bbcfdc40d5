"""Inverse trigonometric and hyperbolic primitives, ``atan2`` and ``expm1`` (torch's ``asin acos atan atan2
asinh acosh atanh expm1``).  Rules in ``xp`` operations only; NumPy forwards by NumPy's own spelling."""

from __future__ import annotations

import math

import numpy as np

from ..primitive import defprim, defvjp

asin = defprim("asin", lambda xp, x: xp.asin(x), numpy_fwd=np.arcsin, scalar_fwd=math.asin, kind="elementwise")
defvjp(asin, lambda xp, g, out, x: g / xp.sqrt(1.0 - x * x))

acos = defprim("acos", lambda xp, x: xp.acos(x), numpy_fwd=np.arccos, scalar_fwd=math.acos, kind="elementwise")
defvjp(acos, lambda xp, g, out, x: -g / xp.sqrt(1.0 - x * x))

atan = defprim("atan", lambda xp, x: xp.atan(x), numpy_fwd=np.arctan, scalar_fwd=math.atan, kind="elementwise")
defvjp(atan, lambda xp, g, out, x: g / (1.0 + x * x))

asinh = defprim("asinh", lambda xp, x: xp.asinh(x), numpy_fwd=np.arcsinh, scalar_fwd=math.asinh, kind="elementwise")
defvjp(asinh, lambda xp, g, out, x: g / xp.sqrt(x * x + 1.0))

acosh = defprim("acosh", lambda xp, x: xp.acosh(x), numpy_fwd=np.arccosh, scalar_fwd=math.acosh, kind="elementwise")
defvjp(acosh, lambda xp, g, out, x: g / xp.sqrt(x * x - 1.0))

atanh = defprim("atanh", lambda xp, x: xp.atanh(x), numpy_fwd=np.arctanh, scalar_fwd=math.atanh, kind="elementwise")
defvjp(atanh, lambda xp, g, out, x: g / (1.0 - x * x))

expm1 = defprim("expm1", lambda xp, x: xp.expm1(x), numpy_fwd=np.expm1, scalar_fwd=math.expm1, kind="elementwise")
defvjp(expm1, lambda xp, g, out, x: g * (out + 1.0))

# atan2(y, x): d/dy = x / (x² + y²), d/dx = -y / (x² + y²), as torch (NaN at the origin, as torch)
atan2 = defprim(
    "atan2", lambda xp, y, x: xp.atan2(y, x), nin=2, numpy_fwd=np.arctan2, scalar_fwd=math.atan2, kind="elementwise"
)
defvjp(
    atan2,
    lambda xp, g, out, y, x: g * x / (x * x + y * y),
    lambda xp, g, out, y, x: -g * y / (x * x + y * y),
)

__all__ = ["acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "expm1"]
