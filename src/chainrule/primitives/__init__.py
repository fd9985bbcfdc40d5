"""The primitive table, grouped by kind.  Importing this package registers them all."""

from . import elementwise, linalg, reduction, shape  # noqa: F401
from . import nn  # noqa: F401
