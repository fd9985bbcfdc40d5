"""The primitive table, grouped by kind.  Importing this package registers them all."""

from . import conv, elementwise, linalg, nn, pool, reduction, shape, trig  # noqa: F401
from . import linear as _linear  # noqa: F401  (nn.Linear's fused x @ Wᵀ + b)
