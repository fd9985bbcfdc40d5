"""The primitive registry: every differentiable operation is defined here once.

A :class:`Primitive` holds everything the rest of chainrule reads about an
operation: its forward, an optional fast forward for Python floats, one
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

Forwards are written once too, against the same kind of namespace: either the
name of a namespace function (``"exp"``: ``xp.exp``) or ``fwd(xp, *args)``.
``prim.fwd`` is that forward bound to NumPy (the fast path every NumPy array
takes); ``prim.xfwd(xp, *args)`` runs it on any array library (see
:mod:`chainrule.backend`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Optional, Union

from .numeric import NUMPY

Rule = Callable[..., Any]

REGISTRY: dict[str, Primitive] = {}


class Primitive:
    """One differentiable operation.

    Attributes:
        name: the registry key and the name shown in traces and drawings.
        fwd: the forward bound to NumPy, ``fwd(*args)``.
        xfwd: the forward on any namespace, ``xfwd(xp, *args)``.
        scalar_fwd: a forward for Python floats (math module), or ``None``.
        nin: how many leading positional args are tensor inputs (``-1``: all but
            the last argument, for variadic operations such as ``concatenate``).
        batch: the batching rule ``batch(xp, vals, dims, *params) -> (out, out_dim)`` used by ``vmap``
            (``None``: derived from ``kind`` where it determines one; a string: refused, with that reason).
        vjps: one rule per input (``None`` for a non-differentiable input); a
            variadic primitive has a single rule called as ``rule(xp, g, out, i, *args)``.
        kind: ``"elementwise"``, ``"linear"``, ``"bilinear"`` or ``None``; read by forward mode.
        jvp: an explicit forward-mode rule ``jvp(xp, tangents, out, *args)`` or ``None``.
        plain: ``fwd`` is ``fwd(*args)`` with no namespace argument (user-defined primitives).
        symbol: how the operation is written in formulas (``"+"``, ``"exp"``).  (The trace's local-gradient
            formulas are not stored: they are the VJP rules themselves, run on symbolic arrays.)
        numpy_fwd: optional: the forward specialised for NumPy arrays, ``numpy_fwd(*args)``, where NumPy has a
            faster spelling than the namespace-generic ``fwd(xp, *args)`` (unfold's strided view).
        shape: optional ``shape(input_shapes, *params)``: the result's shape without running the forward
            (the symbolic namespace asks it); otherwise the forward is run on zeros of the input shapes.
    """

    __slots__ = (
        "name",
        "fwd",
        "xfwd",
        "scalar_fwd",
        "nin",
        "vjps",
        "variadic",
        "kind",
        "jvp",
        "symbol",
        "doc",
        "saves",
        "shape",
        "batch",
    )

    def __init__(
        self,
        name: str,
        fwd: Union[str, Callable[..., Any]],
        *,
        nin: int = 1,
        scalar_fwd: Optional[Callable[..., Any]] = None,
        kind: Optional[str] = None,
        symbol: Optional[str] = None,
        doc: str = "",
        plain: bool = False,
        numpy_fwd: Optional[Callable[..., Any]] = None,
        shape: Optional[Callable[..., tuple]] = None,
    ) -> None:
        self.name = name
        if plain:  # a user's forward over arrays, fwd(*args) (cr.custom_vjp): called as it is on any library
            self.fwd = fwd
            self.xfwd = lambda xp, *args: fwd(*args)
        elif isinstance(fwd, str):  # a namespace function by name: NumPy's own function is the fast path
            self.fwd = getattr(NUMPY, fwd)
            self.xfwd = _by_name(fwd)
        else:
            self.fwd = numpy_fwd if numpy_fwd is not None else partial(fwd, NUMPY)
            self.xfwd = fwd
        self.scalar_fwd = scalar_fwd
        self.nin = nin
        self.variadic = nin < 0
        self.vjps: tuple[Optional[Rule], ...] = ()
        self.kind = kind
        self.jvp: Optional[Rule] = None
        self.symbol = symbol or name
        self.doc = doc
        self.saves: Any = None  # what a node keeps for these rules (chainrule.saved.saves_of), made on first use
        self.shape = shape
        self.batch: Any = None  # the batching rule (cr.vmap; see chainrule.primitives.batching), or why it is refused

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"

    def differentiable(self, i: int) -> bool:
        """Whether input ``i`` has a VJP rule."""
        if self.variadic:
            return bool(self.vjps) and self.vjps[0] is not None
        return i < len(self.vjps) and self.vjps[i] is not None


def _by_name(fname: str) -> Callable[..., Any]:
    def named(xp: Any, *args: Any) -> Any:
        return getattr(xp, fname)(*args)

    named.__name__ = fname
    return named


def defprim(name: str, fwd: Union[str, Callable[..., Any]], **options: Any) -> Primitive:
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


def defbatch(prim: Primitive, rule: Rule) -> Primitive:
    """Attach a batching rule ``rule(xp, vals, dims, *params) -> (out, out_dim)`` (chainrule.primitives.batching)."""
    prim.batch = rule
    return prim


def refuse_batch(prim: Primitive, reason: str) -> Primitive:
    """Mark ``prim`` as not batchable under ``vmap``, with the reason its error gives."""
    prim.batch = reason
    return prim
