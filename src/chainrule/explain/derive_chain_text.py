"""The text view of a derivation's chain of Jacobians (``chainrule derive --chain``, with ``--at`` its numbers)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .derive_at import MAX_SHOWN, _matrix
from .derive_chain import Chain, Link, _error
from .derive_check import TOLERANCE


def chain_text(chain: Chain) -> str:
    """Each gradient as the product of local Jacobians along every path, the factors' structures, the shortcut."""
    out = [
        f"chain of Jacobians (∂{chain.output}/∂X as the product of the local Jacobians along each path from the "
        "output; sizes are rows×columns of the values flattened row by row; where paths fan out, the products add):"
    ]
    for ln in chain.links:
        out.append(f"  {ln.text()}")
        out.append(f"      shortcut: {ln.shortcut}")
    out += [f"  where {k} = {v}" for k, v in chain.where.items()]
    out.append("local factors (the Jacobian notes' structures):")
    seen: set[str] = set()
    for f in chain.factors:
        if f.symbol in seen:
            continue
        seen.add(f.symbol)
        out.append(f"  {f.symbol}  {f.size}: {f.description}; its VJP is {f.vjp}")
    if chain.generic:
        out.append("  (f is a generic elementwise function; with values, sin stands in for it)")
    return "\n".join(out)


def chain_at_text(chain: Chain) -> str:
    """The factors' entries at the values, each product, and the check against the engine and central differences."""
    if not chain.evaluated:
        return "chain at the given values: not evaluated (Chain.evaluate(values), or derive --chain --at ...)"
    stand_in = "; f = sin stands in for the generic f" if chain.generic else ""
    out = [
        f"chain at the given values (each factor built by float64 central differences of its own operation{stand_in}):"
    ]
    if chain.status != "not made":
        seen: set[str] = set()
        for f in chain.factors:
            if f.symbol in seen or f.entries is None:
                continue
            seen.add(f.symbol)
            out.append(f"  {f.symbol}  ({f.rows}×{f.cols}, {f.structure}) =")
            out += _entries(f.entries)
        for ln in chain.links:
            out += _link_at(ln)
    out.append(chain.check_text())
    return "\n".join(out)


def _entries(J: Any) -> list[str]:
    J = np.asarray(J, dtype=np.float64)
    if J.size > MAX_SHOWN:
        return [f"      ({J.shape[0]}×{J.shape[1]}: not printed, over {MAX_SHOWN} entries)"]
    return _matrix(J)


def _link_at(ln: Link) -> list[str]:
    out = [
        f"  {ln.symbol} = " + " + ".join(p.text() for p in ln.paths) + (" + …" if ln.n_paths > len(ln.paths) else "")
    ]
    if len(ln.paths) > 1:
        for k, p in enumerate(ln.paths, 1):
            if p.product is not None:
                out.append(f"    path {k}: {p.text()} =")
                out += ["  " + row for row in _entries(p.product)]
    summed = "the sum over the paths" if ln.n_paths > 1 else "the product"
    out.append(f"    {summed} ({ln.rows}×{ln.cols}) =")
    out += ["  " + row for row in _entries(ln.product)]
    e_engine = _error(ln.product, ln.engine, ln.scale) if ln.engine is not None else float("nan")
    e_central = _error(ln.product, ln.central, ln.scale) if ln.central is not None else float("nan")
    if ln.kinks:
        out.append(
            f"    not compared: {', '.join(ln.kinks)} at a kink at these values (no derivative there; central "
            "differences take the average of the two sides, the engine takes one side, as torch does)"
        )
        return out
    mark = "" if ln.error <= TOLERANCE else "   ← WRONG"
    out.append(
        f"    vs the engine's Jacobian (cr.jacobian): max relative error {e_engine:.1e}; "
        f"vs central differences of the forward: {e_central:.1e}{mark}"
    )
    return out


def _text(self: Chain) -> str:
    return chain_text(self) + ("\n" + chain_at_text(self) if self.evaluated else "")


Chain.text = _text  # type: ignore[attr-defined]  (the record's own method; this module is its view)
