"""The primitive table, grouped by kind.  Importing this package registers them all."""

from . import elementwise, linalg, nn, reduction, shape  # noqa: F401
