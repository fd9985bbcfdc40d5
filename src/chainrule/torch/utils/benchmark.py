"""``torch.utils.benchmark`` is not part of chainrule.torch: importing it works, using any name raises a clear error.

Time code with Python's own ``timeit`` (``timeit.timeit(lambda: f(x), number=100)``) or chainrule's benchmark
suite (``bench/``)."""

from __future__ import annotations

from typing import Any

from ...torch_names import NotSupportedError


def __getattr__(name: str) -> Any:
    if name.startswith("_"):
        raise AttributeError(f"module 'chainrule.torch.utils.benchmark' has no attribute {name!r}")
    raise NotSupportedError(
        f"torch.utils.benchmark.{name} is not supported in chainrule.torch; the chainrule way: Python's timeit "
        "(timeit.timeit(lambda: f(x), number=100)), or the side-by-side suite in bench/"
    )
