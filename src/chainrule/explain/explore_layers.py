"""The explorer's layer-by-layer view of a recorded model (``cr.explore(output)``).

One step per equation of ``cr.derive(output)``: the forward equations (``h = tanh(x · W1ᵀ + b1)``), then the
backward ones (``dW1 = dzᵀ · x``).  A step carries what the page shows for it, all as plain JSON:

- the equation in matrix form and its shape;
- for a backward equation, its steps from the index form to the matrix form, each with its reason (the *why*:
  why elementwise, why a transpose) and the error its numerical check measured;
- the chain of local Jacobians that gives the gradient, as a product along each path from the output, every
  factor with its size and its note (structure, and what its VJP does);
- the numbers of a small value or gradient, for a heat map.

The page computes nothing: every number here came from the derivation (checked against central differences)
or from the engine's own backward pass.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import symbolic as S
from ..format import fmt_value
from ..tensor import Tensor

SMALL_VALUES = 64  # values with at most this many entries are sent as numbers (heat maps)


def _grid(value: Any, precision: int) -> Optional[dict[str, Any]]:
    """A small value as rows of numbers (a vector is one row; more dims fold into the columns)."""
    if value is None:
        return None
    v = np.asarray(value, dtype=np.float64)
    if v.size == 0 or v.size > SMALL_VALUES:
        return None
    grid = v.reshape(1, -1) if v.ndim < 2 else v.reshape(v.shape[0], -1)
    return {
        "entries": [[float(x) if np.isfinite(x) else None for x in row] for row in grid],
        "text": [[fmt_value(float(x), precision) for x in row] for row in grid],
    }


def _factor(f: Any) -> dict[str, Any]:
    return {
        "symbol": f.symbol,
        "size": f.size,
        "note": f"{f.description}; the VJP is {f.vjp}",
        "identity": bool(f.dropped),
    }


def _chain_of(derived: Any, name: str) -> Optional[dict[str, Any]]:
    """``∂output/∂name`` as the sum over paths of products of local Jacobians (None where there is no chain)."""
    chain = getattr(derived, "chain", None)
    if chain is None:
        return None
    for link in chain.links:
        if link.wrt == name:
            return {
                "symbol": link.symbol,
                "size": link.size,
                "text": link.text(),
                "paths": [[_factor(f) for f in path.shown()] for path in link.paths],
                "more_paths": max(0, link.n_paths - len(link.paths)),
            }
    return None


def _gradients(output: Tensor, tensors: dict[str, Tensor]) -> dict[str, Any]:
    """The engine's gradient of ``output`` with respect to each named tensor (the graph is kept)."""
    from ..autodiff import grad

    named = [(n, t) for n, t in tensors.items() if isinstance(t, Tensor) and t.requires_grad and t is not output]
    if not named:
        return {}
    try:
        grads = grad(output, [t for _, t in named], retain_graph=True, allow_unused=True)
    except Exception:  # noqa: BLE001  (a graph the engine can no longer walk: the page shows no gradient numbers)
        return {}
    return {n: (None if g is None else np.asarray(g.data)) for (n, _), g in zip(named, grads)}


def layer_steps(derived: Any, output: Tensor, precision: int = 2) -> list[dict[str, Any]]:
    """The layer-by-layer steps of the explorer, forward then backward (see the module docstring)."""
    tensors = dict(getattr(derived, "tensors", {}) or {})
    grads = _gradients(output, tensors)
    steps: list[dict[str, Any]] = []
    for ln in derived.forward:
        t = tensors.get(ln.name)
        steps.append(
            {
                "phase": "forward",
                "name": ln.name,
                "equation": ln.text(),
                "shape": S.shape_text(ln.shape),
                "values": _grid(t.data if isinstance(t, Tensor) else None, precision),
            }
        )
    for ln in derived.backward:
        name = ln.name[1:] if ln.name.startswith("d") else ln.name
        why = []
        for st in ln.steps:
            check = st.check or {}
            why.append({"text": st.text, "reason": st.reason, "error": check.get("max_error")})
        steps.append(
            {
                "phase": "backward",
                "name": ln.name,
                "equation": ln.text(),
                "shape": S.shape_text(ln.shape),
                "steps": why,
                "chain": _chain_of(derived, name),
                "values": _grid(grads.get(name), precision),
            }
        )
    return steps
