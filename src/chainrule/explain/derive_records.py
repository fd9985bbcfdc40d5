"""The parts of a derivation record: an equation (``Line``) and a local Jacobian note (``Jacobian``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import symbolic as S
from .derive_jacobian import Structure
from .derive_steps import Step

STAND_IN = "sin"  # what a generic f(z) computes when the equations are checked


@dataclass
class Line:
    """``name = formula`` with the value's shape, and (backward lines) the steps that lead to it."""

    name: str
    formula: Any  # a Sym (or a constant)
    shape: tuple[int, ...]
    steps: list[Step] = field(default_factory=list)

    def text(self, latex: bool = False) -> str:
        name = S._latex_name(self.name) if latex else self.name
        return f"{name} = {S.render(self.formula, latex)}"


@dataclass
class Jacobian:
    """The local Jacobian ``∂output/∂input`` of one operation: its size and structure (never built)."""

    operation: str  # the operation in the program's own syntax, e.g. "W @ a"
    output: str
    input: str
    rows: int
    cols: int
    structure: Structure
    # how to rebuild it: the primitive, which operand, its static parameters, and each operand
    # as ("tensor", shape) or ("const", value)
    primitive: Any = field(default=None, repr=False)
    role: int = 0
    params: tuple = ()
    operands: tuple = ()
    shared: int = 0  # how often the operand occurs in this one operation, where more than once (q * q)

    @property
    def why(self) -> str:
        return f"{self.structure.description}; the VJP is {self.structure.vjp}"

    def text(self) -> str:
        n = self.rows * self.cols
        wrt = self.input if self.input.isidentifier() else f"({self.input})"
        if self.shared:
            wrt += f" (as operand {self.role + 1}; {self.input} is used {self.shared} times here, the terms add)"
        return (
            f"∂({self.operation})/∂{wrt}: {self.rows}×{self.cols} "
            f"({_count(n)} numbers, {_bytes(8 * n)}, {'' if self.structure.exact else 'at most '}"
            f"{_count(self.structure.nonzeros)} nonzero): {self.why}" + _false_note(getattr(self, "check", None))
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "of_expr": self.operation,
            "wrt": self.input,
            "rows": self.rows,
            "cols": self.cols,
            "structure": self.structure.kind,
            "nonzeros": self.structure.nonzeros,
            "nonzeros_exact": self.structure.exact,
            "description": self.structure.description,
            "operand": self.role,
            **({"check": dict(self.check)} if getattr(self, "check", None) else {}),
        }


def _false_note(check: Any) -> str:
    """``  ✗ FALSE (relative error 4.2e-01)`` after a note whose stated VJP its check found false (conv2d's)."""
    err = (check or {}).get("max_error")
    return f"  ✗ FALSE (relative error {err:.1e})" if err is not None and err > 1e-5 else ""


def _count(n: int) -> str:
    return f"{n:,}" if n < 10**9 else f"{n:.2e}"


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} EB"
