"""``derive --at W=[[0.1,0.5],[-0.3,0.8]] x=[0.2,0.4]``: the equations evaluated at given values.

The gradients come from the exported NumPy module (the printed equations); the
small local Jacobians are built explicitly, by central differences of the
operation written in the program's own syntax (the note's ``of_expr``), so the
entries shown are an independent look at what each note describes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..creation import tensor
from ..format import fmt_value as format_value
from ..grad_mode import no_grad
from .derive_check import _run_forward
from .derive_run import load
from .parse import evaluate, generic_program, parse_expression, parse_program

MAX_SHOWN = 64  # a local Jacobian with more entries is described, not printed


def fmt_value(v: np.ndarray) -> str:
    """The trace's formatting (values first, the shape after a matrix), with four decimals."""
    return format_value(np.asarray(v, dtype=np.float64), precision=4)


def _matrix(J: np.ndarray) -> list[str]:
    cells = [[f"{v:.4g}" if not abs(v) <= 1e-12 else "0" for v in row] for row in J]  # NaN and inf print as such
    width = max(len(c) for row in cells for c in row)
    return ["      [" + "  ".join(c.rjust(width) for c in row) + "]" for row in cells]


def at_text(d: Any, values: Mapping[str, Any]) -> str:
    """Gradients at ``values`` and the entries of each small local Jacobian there."""

    prog = parse_program(generic_program(d.program))
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}
    with np.errstate(all="ignore"):  # NaN and inf are printed where they arise, not warned about
        grads = load(d.numpy())(**arrays)
        env = _run_forward(prog, arrays)
    out = ["at the given values (from the exported equations):"]
    for name, t in env.items():
        if name in arrays or name == prog.output:
            continue
        out.append(f"  {name} = {fmt_value(np.asarray(t.data))}")
    out.append(f"  {prog.output} = {fmt_value(np.asarray(env[prog.output].data))}")
    for ln in d.backward:
        key = ln.name[1:]
        if key in grads:
            out.append(f"  {ln.name} = {fmt_value(np.asarray(grads[key]))}")
    notes, seen = [], set()
    for j in d.jacobians:  # an operand used twice (q * q) is shown once: the whole derivative, both terms added
        small = j.rows * j.cols <= MAX_SHOWN
        if j.input.isidentifier() and j.input in env and small and (j.operation, j.input) not in seen:
            seen.add((j.operation, j.input))
            notes.append(j)
    if notes:
        out.append("local Jacobians at these values (built by central differences of the operation):")
    values_env = {n: np.asarray(t.data, dtype=np.float64) for n, t in env.items()}
    for j in notes:
        node = parse_expression(generic_program(j.operation))  # (f(z) runs as its stand-in, sin)
        base = values_env[j.input]
        flat = base.reshape(-1)
        cols = []
        for i in range(flat.size):
            h = 1e-6 * max(1.0, abs(flat[i]))
            pair = []
            for step in (h, -h):
                moved = flat.copy()
                moved[i] += step
                scope = {n: tensor(v) for n, v in values_env.items()}
                scope[j.input] = tensor(moved.reshape(base.shape))
                with no_grad():
                    pair.append(np.asarray(evaluate(node, scope).data, dtype=np.float64).reshape(-1))
            cols.append((pair[0] - pair[1]) / (2 * h))
        J = np.stack(cols, axis=1)
        both = f", both uses of {j.input} together" if j.shared else ""
        out.append(f"  ∂({j.operation})/∂{j.input}  ({j.rows}×{j.cols}, {j.structure.kind}{both}):")
        out += _matrix(J)
    return "\n".join(out)
