"""``cr.derive(output, batch="x")``: a recorded graph's equations with the batch size written ``B``.

The batch axis is followed through the graph's operations (:mod:`.derive_batch_axes`); the graph is then
replayed with that axis at two lengths, the first the recorded one where no other axis is that long, and
derived at both, as the program form ``cr.derive(program, {"x": ("B", 30)})`` does: a length that is the
batch prints as ``B`` (``B×27``), and a constant that changes with it as a power of ``B`` (``1/B``, the
mean's ``Σ / B``).  The exported ``backward(**inputs)`` reads ``B`` from the batch input's shape, and the
check runs it at the recorded values (the recorded batch size) and at another batch size (the recorded rows
repeated, those past the recorded ones scaled at random), against central differences of the replayed
forward each time; each step's claim is evaluated in both derivations, and a step whose text would differ
between them (a size that leaked into it) fails the check.
"""

from __future__ import annotations

import dataclasses
import re
from fractions import Fraction
from typing import Any

import numpy as np

from .. import symbolic as S
from ..autodiff import toposort
from ..graph import node_of
from ..tensor import Tensor
from .derive_batch_axes import Axes, BatchError, follow, parse_spec, resize
from .derive_chain import build_chain
from .derive_check import CheckResult
from .derive_forms import conv_notes
from .derive_graph import (
    BATCH,
    NamedArray,
    Recorded,
    _check,
    _closed_forms,
    equations,
    export,
    finish_and_check,
    record,
)
from .derive_walk import _inline_steps

__all__ = ["BatchError", "derive_batched"]


def _sizes_elsewhere(order: list[Tensor], axes: Axes) -> set[int]:
    """The lengths of every axis in the graph that is not the batch axis (a placeholder must differ from them)."""
    out: set[int] = set()

    def add(v: Any) -> None:
        shape = (len(v),) if isinstance(v, range) else np.shape(v) if isinstance(v, np.ndarray) else None
        if isinstance(v, Tensor):
            shape = v.shape
        for a, d in enumerate(shape or ()):
            if not axes.is_batch(v, a):
                out.add(int(d))

    for t in order:
        add(t)
        view = node_of(t)
        for i, x in enumerate(view.inputs):
            add(x if x is not None else view.args[i])
        for p in view.params:
            for q in p if isinstance(p, tuple) else (p,):
                if isinstance(q, (np.ndarray, range)):
                    add(q)
    return out


def _placeholders(n0: int, taken: set[int]) -> tuple[int, int]:
    """Two batch sizes to derive at: the recorded one where no other axis has its length, and a larger one."""
    first = n0
    if first in taken:
        first = 7
        while first in taken:
            first += 1
    second = max(first, n0) + 3
    while second in taken:
        second += 1
    return first, second


def _symbol(rec: Recorded) -> str:
    for name in ("B", "N", "n_batch"):
        if name not in rec.keywords.values() and name not in rec.keywords:
            return name
    return "B_"


def _range_text(shape: tuple[int, ...], axis: int, symbol: str) -> tuple[str, str]:
    text, code = f"range({symbol})", f"np.arange({symbol})"
    if len(shape) > 1:
        where = ", ".join(":" if a == axis else "None" for a in range(len(shape)))
        text, code = f"{text}[{where}]", f"{code}[{where}]"
    return text, code


def replay(rec0: Recorded, output: Tensor) -> Recorded:
    """The recorded graph replayed as it is (every value kept, where the engine released some), named as
    recorded: what the walk and the steps' claims read values from."""
    return _named(rec0, resize(toposort([output]), Axes(), 0), "")


def _run(rec0: Recorded, order: list[Tensor], axes: Axes, n: int, symbol: str, seed: int) -> tuple:
    """The graph replayed at batch size ``n``, named as recorded, and derived with ``n`` printed as the symbol."""
    rec = _named(rec0, resize(order, axes, n, seed), symbol)
    with S.dims_context({n: symbol}):
        eq = equations(rec, inline=False)
    return rec, eq


def _named(rec0: Recorded, res: Any, symbol: str) -> Recorded:
    given = []
    for key, label in rec0.names.items():
        if key in res.new:
            given.append((res.new[key], label))
    for label, value in rec0.inputs.items():
        if not isinstance(value, Tensor):
            given.append((res.new.get(id(value), value), label))
    rec = record(res.output, given, (), None)
    for key, (_, axis) in res.ranges.items():
        r = next(v for v in res.new.values() if id(v) == key)
        values = np.arange(len(r)) if isinstance(r, range) else np.asarray(r)
        rec.consts[key] = NamedArray(values, *_range_text(np.shape(values), axis, symbol))
    if list(rec.inputs) != list(rec0.inputs):
        raise BatchError(
            "cr.derive(output, batch=...): the graph replayed at another batch size names its inputs "
            f"{list(rec.inputs)}, not {list(rec0.inputs)} as recorded; derive without batch="
        )
    return rec


_NUMBER = re.compile(r"(\d+(?:\.\d+)?(?:e[-+]?\d+)?)")


def _text_in_sizes(a: str, b: str, sizes: tuple[int, int], symbol: str) -> str:
    """``a`` (a text made at the first size) with each number that differs in its twin ``b`` (made at the second)
    written as a power of the symbol where it is one (``/ 7`` -> ``/ B``, ``7 stacked`` -> ``B stacked``)."""
    if a == b:
        return a
    pa, pb = _NUMBER.split(a), _NUMBER.split(b)
    if len(pa) != len(pb) or pa[0::2] != pb[0::2]:
        return a
    for i in range(1, len(pa), 2):
        if pa[i] == pb[i]:
            continue
        x, y = float(pa[i]), float(pb[i])
        for power in (1, -1, 2, -2):
            k = x / sizes[0] ** power
            if k and abs(k - y / sizes[1] ** power) <= 1e-9 * abs(k):
                frac = Fraction(k).limit_denominator(1000)
                if abs(float(frac) - k) <= 1e-9 * abs(k):
                    pa[i] = S.render(S.sconst(x, frac, ((symbol, power),)))
                break
    return "".join(pa)


def _texts_in_sizes(first: Any, second: Any, sizes: tuple[int, int], symbol: str, depth: int = 0) -> None:
    """The text fields of a record made at the first size (the chain, the Jacobian notes) written in the
    symbol where their twin, made at the second size, shows they depend on it (in place)."""
    if depth > 6 or type(first) is not type(second):
        return
    if isinstance(first, list):
        if len(first) == len(second):
            for u, v in zip(first, second):
                _texts_in_sizes(u, v, sizes, symbol, depth + 1)
        return
    if not dataclasses.is_dataclass(first):
        return
    for f in dataclasses.fields(first):
        u, v = getattr(first, f.name), getattr(second, f.name)
        if isinstance(u, str) and isinstance(v, str):
            setattr(first, f.name, _text_in_sizes(u, v, sizes, symbol))
        elif isinstance(u, list) or dataclasses.is_dataclass(u):
            _texts_in_sizes(u, v, sizes, symbol, depth + 1)


def _combined(first: CheckResult, second: CheckResult, sizes: list[dict], note: str) -> CheckResult:
    """The check at the recorded size and at the other one, as one result (the worse of the two)."""
    for r in (first, second):
        if r.status == "not made":
            r.sizes, r.recorded = sizes, False
            return r
    errors = {k: max(first.errors.get(k, 0.0), second.errors.get(k, 0.0)) for k in {**first.errors, **second.errors}}
    status = "passed" if first.status == second.status == "passed" else "failed"
    reason = "; ".join(r.reason for r in (first, second) if r.reason)
    out = CheckResult(
        status,
        sizes,
        errors,
        max(first.max_relative_error, second.max_relative_error),
        reason=reason,
        sampled={k: max(first.sampled.get(k, 0), v) for k, v in second.sampled.items()}
        | {k: v for k, v in first.sampled.items() if k not in second.sampled},
        note=note,
        unchecked=sorted(set(first.unchecked) | set(second.unchecked)),
    )
    return out


def derive_batched(rec0: Recorded, output: Tensor, batch: Any, check: bool, seed: int) -> dict[str, Any]:
    """The fields of a ``Derivation`` of ``output``'s graph with the batch size symbolic (module docstring)."""
    label, axis = parse_spec(batch, rec0.inputs)
    order = toposort([output])
    axes = follow(order, rec0.inputs[label], axis)
    n0 = axes.size
    p1, p2 = _placeholders(n0, _sizes_elsewhere(order, axes))
    symbol = _symbol(rec0)
    dims1, dims2 = {p1: symbol}, {p2: symbol}
    rec1, (fw1, bw1, jac1, seed1, targets) = _run(rec0, order, axes, p1, symbol, seed)
    rec2, (fw2, bw2, _j, _s, _t) = _run(rec0, order, axes, p2, symbol, seed)
    if [ln.name for ln in fw1 + bw1] != [ln.name for ln in fw2 + bw2]:
        raise BatchError(
            "cr.derive(output, batch=...): the equations at two batch sizes name different values "
            f"({[ln.name for ln in fw1 + bw1]} and {[ln.name for ln in fw2 + bw2]}); derive without batch="
        )
    sizes1, sizes2 = {symbol: p1}, {symbol: p2}
    for a, b in zip(fw1 + bw1, fw2 + bw2):  # the constants that change with the batch size: powers of B
        a.formula, b.formula = (
            S.symbolize(a.formula, b.formula, sizes1, sizes2),
            S.symbolize(b.formula, a.formula, sizes2, sizes1),
        )
    for lines, dims in ((bw1, dims1), (bw2, dims2)):
        with S.dims_context(dims):
            _inline_steps(lines, rec1.constants)
    program = "recorded graph of " + rec0.prog.output
    with S.dims_context(dims1):
        source, error = export(rec1, program, fw1, bw1, targets, dims1)
    fields: dict[str, Any] = dict(
        program=program,
        forward=fw1,
        backward=bw1,
        jacobians=jac1,
        check=None,
        dims=dims1,
        seed=seed1,
        input_shapes={k: tuple(np.shape(v.data if isinstance(v, Tensor) else v)) for k, v in rec1.inputs.items()},
        inputs=dict(rec0.inputs),
        keywords=dict(rec0.keywords),
        tensors=dict(rec0.env),
        differential="not made for a recorded graph yet: derive the program form, cr.derive(program, shapes)",
        numpy_source=source,
        export_error=error,
    )
    chains = []
    for rec, dims in ((rec1, dims1), (rec2, dims2)):
        with S.dims_context(dims):
            try:
                chains.append(build_chain(program, rec.prog, rec.env, rec.constants))
            except Exception:  # noqa: BLE001  (an operation the chain cannot factor leaves the chain out)
                chains.append(None)
    fields["chain"] = chains[0]
    if chains[0] is not None and chains[1] is not None:
        _texts_in_sizes(chains[0], chains[1], (p1, p2), symbol)
    _texts_in_sizes(jac1, _j, (p1, p2), symbol)
    if check:
        note = (
            f"{symbol} = {n0} at the recorded values; {symbol} = {p2} at the recorded rows repeated in turn, "
            f"those past row {n0} scaled at random"
        )
        at_recorded = _check(rec0, source, error, targets, seed)
        at_other = _check(rec2, source, error, targets, seed)
        fields["check"] = _combined(at_recorded, at_other, [{symbol: n0}, {symbol: p2}], note)
    if source:
        for rec, lines, dims in ((rec1, bw1, dims1), (rec2, bw2, dims2)):
            if rec.layers:
                with S.dims_context(dims):
                    _closed_forms(rec, source, lines)
    with S.dims_context(dims1):  # (after the closed forms: the notes state their claims)
        fields["jacobians"] = jac1 + conv_notes(rec1.layers, rec1.names)
    finish_and_check(fields, bw1, bw2, (sizes1, sizes2), (dims1, dims2), check, seed)
    return fields


BATCH.replay = replay
BATCH.derive = derive_batched
