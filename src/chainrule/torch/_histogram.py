"""``torch.histogram``: counts (or a density) of a tensor's values over bins, with torch's bin edges.

The edges of ``bins=N`` are torch's ``linspace(lo, hi, N + 1)`` in the input's dtype (bit for bit, see
``_linspace``), ``lo``/``hi`` the data's range (or ``range=``), widened by 0.5 each way when they are equal.
A value ``v`` falls in bin ``i`` when ``edges[i] <= v < edges[i + 1]``, the last bin also taking the last
edge, values outside the edges counted nowhere: the bin that torch's local search finds.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import numpy as np

from ..tensor import Tensor
from ._linspace import torch_linspace

histogram_result = namedtuple("histogram", ["hist", "bin_edges"])


def _values(x: Any) -> np.ndarray:
    return np.asarray(x._data if isinstance(x, Tensor) else x)


def histogram(
    input: Any,  # noqa: A002
    bins: Any = 100,
    *,
    range: Any = None,  # noqa: A002
    weight: Any = None,
    density: bool = False,
    out: Any = None,
) -> Any:
    """As ``torch.histogram``: ``(hist, bin_edges)``, both of the input's floating dtype."""
    if out is not None:
        raise TypeError("histogram: out= is not supported in chainrule.torch; use the returned (hist, bin_edges)")
    data = _values(input)
    if data.dtype.kind != "f":
        raise RuntimeError(f"histogram: torch.histogram needs a floating-point input, got {data.dtype}")
    dtype = data.dtype
    flat = data.reshape(-1)
    if isinstance(bins, (Tensor, np.ndarray, list, tuple)):
        edges = _values(bins).astype(dtype).reshape(-1)
        if edges.size < 2 or np.any(np.diff(edges) < 0):
            raise ValueError(f"histogram: bins as edges needs at least 2 increasing values, got {edges.tolist()}")
    else:
        count = int(bins)
        if count <= 0:
            raise ValueError(f"histogram: bins must be positive, got {bins}")
        if range is not None:
            lo, hi = float(range[0]), float(range[1])
            if lo > hi:
                raise ValueError(f"histogram: range's min {lo} is above its max {hi}")
        else:
            lo, hi = (float(flat.min()), float(flat.max())) if flat.size else (0.0, 0.0)
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        edges = torch_linspace(lo, hi, count + 1, dtype)
    nbins = edges.size - 1
    inside = (flat >= edges[0]) & (flat <= edges[-1])
    where = np.minimum(np.searchsorted(edges, flat[inside], side="right") - 1, nbins - 1)
    w = None if weight is None else _values(weight).reshape(-1)[inside].astype(np.float64)
    hist = np.bincount(where, weights=w, minlength=nbins).astype(dtype)
    if density:
        hist = (hist / (hist.sum(dtype=dtype) * np.diff(edges))).astype(dtype)
    return histogram_result(Tensor(hist), Tensor(np.array(edges, dtype=dtype)))
