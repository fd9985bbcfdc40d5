"""The primitive registry: every differentiable operation is defined here once.

A :class:`Primitive` holds everything the rest of chainrule reads about an
operation: its NumPy forward, an optional fast forward for Python floats, one
vector-Jacobian-product (VJP) rule per differentiable input, a forward-mode tag,
and the readable pieces the explanation tools print.

VJP rules are written once against an *array namespace* ``xp`` and are called as
``rule(xp, g, out, *args)`` where ``g`` is the upstream gradient, ``out`` the
forward result and ``args`` the forward's positional arguments (tensor inputs
first, then static parameters such as ``axis``).  The same rule runs on NumPy
arrays (first-order backprop), on Python floats (the scalar fast path), on
chainrule tensors (gradients of gradients) and on symbolic arrays (``derive``).
Broadcasting is *not* handled by rules: the engine reduces every gradient back
to its input's shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

Rule = Callable[..., Any]

REGISTRY: dict[str, Primitive] = {}


class Primitive:
    """One differentiable operation.

    Attributes:
        name: the registry key and the name shown in traces and drawings.
        fwd: the NumPy forward ``fwd(*args)``.
        scalar_fwd: a forward for Python floats (math module), or ``None``.
        nin: how many leading positional args are tensor inputs (``-1``: all but
            the last argument, for variadic operations such as ``concatenate``).
        vjps: one rule per input (``None`` for a non-differentiable input); a
            variadic primitive has a single rule called as ``rule(xp, g, out, i, *args)``.
        kind: ``"elementwise"``, ``"linear"``, ``"bilinear"`` or ``None``; read by forward mode.
        jvp: an explicit forward-mode rule ``jvp(xp, tangents, out, *args)`` or ``None``.
        symbol: how the operation is written in formulas (``"+"``, ``"exp"``).  (The trace's local-gradient
            formulas are not stored: they are the VJP rules themselves, run on symbolic arrays.)
    """

    __slots__ = (
        "name",
        "fwd",
        "scalar_fwd",
        "nin",
        "vjps",
        "variadic",
        "kind",
        "jvp",
        "symbol",
        "doc",
    )

    def __init__(
        self,
        name: str,
        fwd: Callable[..., Any],
        *,
        nin: int = 1,
        scalar_fwd: Optional[Callable[..., Any]] = None,
        kind: Optional[str] = None,
        symbol: Optional[str] = None,
        doc: str = "",
    ) -> None:
        self.name = name
        self.fwd = fwd
        self.scalar_fwd = scalar_fwd
        self.nin = nin
        self.variadic = nin < 0
        self.vjps: tuple[Optional[Rule], ...] = ()
        self.kind = kind
        self.jvp: Optional[Rule] = None
        self.symbol = symbol or name
        self.doc = doc

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"

    def differentiable(self, i: int) -> bool:
        """Whether input ``i`` has a VJP rule."""
        if self.variadic:
            return bool(self.vjps) and self.vjps[0] is not None
        return i < len(self.vjps) and self.vjps[i] is not None


def defprim(name: str, fwd: Callable[..., Any], **options: Any) -> Primitive:
    """Create and register a primitive (see :class:`Primitive` for the options)."""
    if name in REGISTRY:
        raise ValueError(f"defprim: a primitive named {name!r} is already registered")
    prim = Primitive(name, fwd, **options)
    REGISTRY[name] = prim
    return prim


def defvjp(prim: Primitive, *rules: Optional[Rule]) -> Primitive:
    """Attach VJP rules to ``prim``: one per input, ``None`` where not differentiable."""
    if not prim.variadic and len(rules) != prim.nin:
        raise ValueError(f"defvjp: primitive {prim.name!r} has {prim.nin} inputs but {len(rules)} rules were given")
    prim.vjps = tuple(rules)
    return prim


def defjvp(prim: Primitive, rule: Rule) -> Primitive:
    """Attach an explicit forward-mode rule ``rule(xp, tangents, out, *args)``."""
    prim.jvp = rule
    return prim
