"""``cr.compare(mine, output)``: check a hand-written backward pass against the engine's, step by step.

The true gradients come from one run of the engine's backward walk (``walk.walk``) with an observer that keeps
the gradient arriving at every node (its upstream) and every edge's contribution (upstream × local =
downstream).  Nothing is accumulated into ``.grad`` and the graph is kept.  For each gradient that is wrong,
the correct step is rebuilt from the node that produces it, with the local derivative printed by the same
helpers as ``cr.trace`` (the primitive's own VJP rule run on symbols), and a few diagnoses are tried: your
upstream was already wrong, a branch of a fan-out was left out, the sign, a broadcast not summed, and, when
yours is the true gradient times one constant, which local factor on the way from the output explains it.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..autodiff import _seed, toposort
from ..graph import is_freed, node_of
from ..saved import Released, ValueReleasedError
from ..tensor import Tensor, node_parts
from ..walk import Backprop, GraphFreedError, _namespace, walk
from .compare_report import d, num, render_html, render_json, render_text
from .trace import _local_value, expression, local_formula

EXACT, CLOSE, WRONG, SHAPE = "exact", "close", "wrong", "shape mismatch"


@dataclass
class Term:
    """One use of a tensor T by a node C: ``dT += dC × ∂C/∂T`` (the walk's edge from C to T)."""

    node: str  # C's name
    expression: str  # how C was computed, e.g. "sigmoid(z)"
    operand: str  # T's name
    formula: str  # the local derivative ∂C/∂T as the rule computes it ("" if unknown)
    elementwise: bool  # whether ``formula`` is a per-element factor (else a VJP in the upstream)
    upstream: Any  # the true dC
    upstream_from: list[tuple[str, Any]]  # where dC comes from: (consumer of C, its contribution)
    local: Any  # the local derivative's value where elementwise, else None
    downstream: Any  # the true contribution to dT
    your_upstream: Any = None  # dC as you supplied it, if you did
    your_upstream_status: Optional[str] = None
    released: bool = False  # values of this node were released by the engine (formula only)


@dataclass
class Row:
    """One gradient you supplied, checked."""

    name: str  # the tensor's name
    key: str  # the key as you wrote it
    status: str  # exact, close, wrong or shape mismatch
    shape: tuple  # the tensor's (and so the true gradient's) shape
    your_shape: tuple
    max_abs: Optional[float]  # max |yours - true|
    max_rel: Optional[float]  # max |yours - true| / max |true| (None where max |true| <= atol)
    position: float  # where the backward walk completes this gradient (1 = the output)
    mine: Any = field(repr=False, default=None)
    true: Any = field(repr=False, default=None)
    terms: list[Term] = field(default_factory=list, repr=False)  # the correct step (wrong rows only)
    hints: list[str] = field(default_factory=list)
    culprit: Optional[Term] = field(default=None, repr=False)  # a step further up that explains the error
    follows: Optional[str] = None  # the wrong upstream gradient of yours this one follows from (step itself right)

    @property
    def ok(self) -> bool:
        return self.status in (EXACT, CLOSE)


@dataclass
class Comparison:
    """What :func:`compare` found: ``rows`` in backward order, ``missing`` true gradients you did not supply."""

    output: str
    rows: list[Row]
    missing: list[str]
    rtol: float
    atol: float
    unnamed: int = 0  # inputs that get a gradient but have no name (not listed in missing)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    def row(self, name: str) -> Row:
        for r in self.rows:
            if r.name == name or r.key == name:
                return r
        raise KeyError(f"compare: no row {name!r}; the rows are {[r.name for r in self.rows]}")

    @property
    def wrong(self) -> list[Row]:
        return [r for r in self.rows if not r.ok]

    def __str__(self) -> str:
        return render_text(self)

    def __repr__(self) -> str:
        counts = {s: sum(r.status == s for r in self.rows) for s in (EXACT, CLOSE, WRONG, SHAPE)}
        parts = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        return f"<Comparison of {len(self.rows)} gradients of {self.output}: {parts or 'none'}; ok={self.ok}>"

    def _repr_html_(self) -> str:
        return render_html(self)

    def to_json(self) -> str:
        return render_json(self)

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.text import Text

        yield Text(render_text(self))


# --- the walk, observed ---------------------------------------------------------------------


def _copy(v: Any) -> Any:
    return v.copy() if isinstance(v, np.ndarray) else v


class _Observer(Backprop):
    """The engine's own backpropagation (first order, raw values), remembering each node's upstream and each edge."""

    def __init__(self) -> None:
        super().__init__()
        self.upstream: dict[int, Any] = {}
        self.position: dict[int, float] = {}
        self.edges: dict[int, list[tuple[Tensor, int, Any]]] = {}
        self.count = 0

    def start(self, t: Tensor, g: Any) -> Any:
        self.count += 1
        self.upstream[id(t)] = _copy(g)
        self.position[id(t)] = float(self.count)
        return g

    def edge(self, t: Tensor, i: int, inp: Tensor, gi: Any) -> None:
        self.edges.setdefault(id(inp), []).append((t, i, _copy(gi)))
        if inp._node is None:  # a leaf's gradient is complete after its last use
            self.position[id(inp)] = self.count + 0.5


# --- names ---------------------------------------------------------------------------------


def _own_name(t: Tensor) -> Optional[str]:
    """A name the tensor carries itself (``cr.name(t, ...)`` where available stores it as ``_name``)."""
    for attr in ("_name", "_label"):
        v = getattr(t, attr, None)
        if isinstance(v, str) and v:
            return v
    return None


class _Names:
    """Every way a tensor of the graph can be named, by priority: names=, its own name, module path, your variables."""

    def __init__(self, everything: dict[int, Tensor], names: Any, module: Any, scope: dict[str, Any]) -> None:
        from ..nn.module import qualified_name
        from .trace import parameter_names

        self.everything = everything
        self.by_name: dict[str, Tensor] = {}
        self.of: dict[int, str] = {}
        self.strangers: dict[str, Tensor] = {}  # your variables bound to tensors outside the graph
        self.real: set[int] = set()  # tensors with a name from a real source (not a made-up label)

        def add(name: str, t: Tensor, display: bool = True) -> None:
            if id(t) not in everything:
                return
            self.by_name.setdefault(name, t)
            if display and id(t) not in self.of:
                self.of[id(t)] = name
            self.real.add(id(t))

        for name, t in _names_mapping(names):
            add(name, t)
        for t in everything.values():
            own = _own_name(t)
            if own:
                add(own, t)
        for key, name in parameter_names(module).items():
            if key in everything:
                add(name, everything[key])
        for t in everything.values():
            if t._node is None:
                q = qualified_name(t)
                if q:
                    add(q, t)
        for name, v in scope.items():
            if isinstance(v, Tensor) and not name.startswith("_"):
                if id(v) in everything:
                    add(name, v)
                else:
                    self.strangers.setdefault(name, v)
        # tensors nobody named: n1, n2, ... in the order they were computed (as cr.trace labels them)
        k = 0
        for t in sorted(everything.values(), key=lambda t: t._seq if t._node is not None else -1):
            if id(t) not in self.of:
                k += 1
                while f"n{k}" in self.by_name:
                    k += 1
                self.of[id(t)] = f"n{k}"

    def name(self, t: Tensor) -> str:
        return self.of[id(t)]

    def shown(self, x: Optional[Tensor]) -> bool:
        """Whether an operand reads as its name (a tensor that gets a gradient, or data you named) or its value."""
        return x is not None and (x.requires_grad or id(x) in self.real)

    def lookup(self, key: str, where: str) -> Tensor:
        if key in self.by_name:
            return self.by_name[key]
        for prefix in ("grad_", "d"):  # mine = {"dlogits": dlogits}: the gradient of logits
            if key.startswith(prefix) and key[len(prefix) :] in self.by_name:
                return self.by_name[key[len(prefix) :]]
        if key in self.strangers:
            t = self.strangers[key]
            raise ValueError(
                f"compare: your variable {key!r} (a tensor of shape {t.shape}) is not in the graph of {where}, so "
                "it has no gradient there; was it computed in a separate forward pass, or under no_grad()?"
            )
        known = sorted(self.by_name)
        raise KeyError(
            f"compare: no tensor named {key!r} in the graph of {where}. Names it knows: "
            f"{', '.join(known) if known else '(none)'}. Pass names={{{key!r}: tensor}}, or key the dict by the tensor"
        )


def _names_mapping(names: Any) -> list[tuple[str, Tensor]]:
    if names is None:
        return []
    if not isinstance(names, Mapping):
        raise TypeError(
            f"compare: names= must be a dict (name -> tensor or tensor -> name), got {type(names).__name__}"
        )
    out = []
    for k, v in names.items():
        if isinstance(k, str) and isinstance(v, Tensor):
            out.append((k, v))
        elif isinstance(k, Tensor) and isinstance(v, str):
            out.append((v, k))
        else:
            raise TypeError(
                f"compare: names= maps names to tensors (or tensors to names); got the entry "
                f"{type(k).__name__} -> {type(v).__name__}"
            )
    return out


# --- the check --------------------------------------------------------------------------------


def _as_array(v: Any, key: str) -> np.ndarray:
    if isinstance(v, Tensor):
        v = v.detach().numpy()
    elif hasattr(v, "detach") and hasattr(v, "numpy"):  # a torch tensor
        v = v.detach().cpu().numpy()
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"compare: the gradient given for {key!r} is a {type(v).__name__}, not numbers; give a NumPy array, "
            "a float or a tensor"
        ) from None
    return a


def _status(m: np.ndarray, g: np.ndarray, rtol: float, atol: float) -> tuple[str, Optional[float], Optional[float]]:
    if m.shape != g.shape:
        return SHAPE, None, None
    if np.array_equal(m, g, equal_nan=True):
        return EXACT, 0.0, 0.0
    with np.errstate(invalid="ignore"):
        diff = np.abs(m - g)
    max_abs = float(np.nanmax(diff)) if np.isfinite(diff).any() else float("inf")
    if np.isnan(diff).any() and not np.array_equal(np.isnan(m), np.isnan(g)):
        max_abs = float("inf")
    scale = float(np.nanmax(np.abs(g))) if g.size and np.isfinite(g).any() else 0.0
    # relative to the largest true entry; none where the true gradient is zero up to atol (rounding would dominate)
    max_rel = max_abs / scale if scale > atol else None
    close = np.allclose(m, g, rtol=rtol, atol=atol, equal_nan=True)
    return (CLOSE if close else WRONG), max_abs, max_rel


def _caller_scope() -> dict[str, Any]:
    frame = inspect.currentframe()
    try:
        caller = frame.f_back.f_back if frame is not None and frame.f_back is not None else None
        if caller is None:
            return {}
        scope = dict(caller.f_globals)
        scope.update(caller.f_locals)
        return scope
    finally:
        del frame


def compare(
    mine: Mapping[Any, Any],
    output: Tensor,
    grad_output: Any = None,
    *,
    names: Any = None,
    module: Any = None,
    rtol: float = 1e-5,
    atol: float = 1e-8,
) -> Comparison:
    """Check hand-computed gradients of ``output`` against the engine's backward pass.

    ``mine`` maps each tensor to your gradient of ``output`` with respect to it (a NumPy array, number or
    tensor).  Keys are tensors or names; a name is found in ``names=`` (``{"logits": logits}`` or
    ``{logits: "logits"}``), then a name the tensor carries itself (``_name``, set by ``cr.name`` where it
    exists), then ``module=``'s parameter paths (``"0.weight"``; a parameter of any module is also found by its
    path from its outermost module), then your variables (the caller's local and global names bound to tensors
    of the graph).  ``"dlogits"`` or ``"grad_logits"`` names the gradient of ``logits`` when nothing is called
    that itself.

    Each gradient is ``exact`` (equal in every entry), ``close`` (``np.allclose`` with ``rtol``, ``atol``),
    ``wrong`` or ``shape mismatch``; rows come in the order the backward walk completes them.  For each one
    that is not right the result holds the correct step (upstream × local = downstream at every node that
    uses the tensor) and what the check could tell about the mistake.  ``output`` must be a scalar, or
    ``grad_output`` gives the gradient to start from.  The graph is kept and ``.grad`` is not touched.
    """
    if not isinstance(output, Tensor):
        raise TypeError(
            f"compare: output must be the Tensor your gradients are of (e.g. loss), got {type(output).__name__}"
        )
    if not isinstance(mine, Mapping):
        raise TypeError(
            f"compare: mine must be a dict of your gradients (name or tensor -> array), got {type(mine).__name__}"
        )
    if is_freed(output):
        raise GraphFreedError(
            "compare: the graph of this output was freed by backward(). Call cr.compare(mine, loss) before "
            "loss.backward(), or call loss.backward(retain_graph=True)."
        )
    if not output.requires_grad:
        raise ValueError(
            "compare: the output does not require grad, so nothing in its graph has a gradient; give the "
            "parameters requires_grad=True (and record outside no_grad())"
        )
    if grad_output is None and output.shape != ():
        raise ValueError(
            f"compare: the output has shape {output.shape}, not a scalar: pass grad_output= (the gradient of the "
            "final result with respect to it, of that shape), or compare the gradients of a scalar such as its sum"
        )
    if grad_output is not None:
        g0 = np.asarray(grad_output._data if isinstance(grad_output, Tensor) else grad_output)
        if g0.shape != output.shape:
            raise ValueError(f"compare: grad_output has shape {g0.shape} but the output has shape {output.shape}")
    scope = _caller_scope()
    try:
        order = toposort([output])
    except GraphFreedError:
        raise GraphFreedError(
            "compare: part of this graph was freed by an earlier backward(); recompute the forward pass, or use "
            "backward(retain_graph=True)"
        ) from None
    everything: dict[int, Tensor] = {id(output): output}
    for t in order:
        everything[id(t)] = t
        for inp in node_parts(t)[0]:
            if inp is not None:
                everything.setdefault(id(inp), inp)
    nm = _Names(everything, names, module, scope)
    out_name = nm.name(output)
    where = f"the output {out_name}" if out_name[0] != "n" or nm.by_name.get(out_name) is output else "the output"

    # resolve your keys before the walk, so a typo costs nothing
    wanted: list[tuple[str, Tensor, Any]] = []
    for key, value in mine.items():
        if isinstance(key, str):
            t = nm.lookup(key, where)
            label = key
        elif isinstance(key, Tensor):
            if id(key) not in everything:
                raise ValueError(
                    f"compare: a tensor of shape {key.shape} given as a key is not in the graph of {where}; only "
                    "tensors the output was computed from have a gradient"
                )
            t, label = key, nm.name(key)
        else:
            raise TypeError(f"compare: keys of mine are names (str) or tensors, got {type(key).__name__}: {key!r}")
        if not t.requires_grad:
            raise ValueError(
                f"compare: {label!r} (shape {t.shape}) is in the graph but gets no gradient: it has "
                "requires_grad=False (data, not a parameter)"
            )
        wanted.append((label, t, value))

    seed = _seed(output, grad_output, False)
    obs = _Observer()
    true: dict[int, Any] = {id(leaf): g for leaf, g in walk([output], [seed], True, obs)}
    true.update(obs.upstream)
    if output._node is None:
        true[id(output)] = seed
    obs.position.setdefault(id(output), 1.0)

    rows: list[Row] = []
    mine_of: dict[int, np.ndarray] = {}
    for label, t, value in wanted:
        if id(t) not in true:
            raise ValueError(f"compare: {label!r} gets no gradient from {where} (no path from it to the output)")
        m = _as_array(value, label)
        g = np.asarray(true[id(t)], dtype=np.float64)
        status, max_abs, max_rel = _status(m, g, rtol, atol)
        name = nm.name(t) if not isinstance(label, str) or nm.by_name.get(label) is not t else label
        rows.append(Row(name, label, status, tuple(t.shape), m.shape, max_abs, max_rel, obs.position[id(t)], m, g))
        mine_of[id(t)] = m
    statuses = {id(t): r.status for (_, t, _), r in zip(wanted, rows)}
    tensors = {id(r): t for (_, t, _), r in zip(wanted, rows)}
    if not all(r.ok for r in rows):
        sub = _substituted(output, seed, mine_of, statuses)
        for r in rows:
            if not r.ok:
                _explain(r, tensors[id(r)], obs, sub, nm, mine_of, statuses, rtol, atol)
    rows.sort(key=lambda r: r.position)

    supplied = {id(t) for _, t, _ in wanted}
    missing_ts = [
        t for key, t in everything.items() if key in true and key not in supplied and key in nm.real and t is not output
    ]
    missing_ts.sort(key=lambda t: obs.position.get(id(t), 0.0))
    unnamed = sum(1 for key, t in everything.items() if key in true and t._node is None and key not in nm.real)
    return Comparison(out_name, rows, [nm.name(t) for t in missing_ts], rtol, atol, unnamed)


# --- the correct step, and what went wrong ------------------------------------------------------


def _node_args(t: Tensor) -> tuple[tuple, bool]:
    """The node's arguments; values the engine released (and nobody holds) become zero stand-ins of their shape."""
    try:
        return node_of(t).args, False
    except ValueReleasedError:
        args = node_parts(t)[1]
        out = []
        for v in args:
            if type(v) is Released:
                held = v.value()
                out.append(held if held is not None else np.zeros(v.shape, v.dtype))
            else:
                out.append(v)
        return tuple(out), True


def _term(c: Tensor, i: int, gi: Any, obs: _Observer, nm: _Names, mine_of: dict, statuses: dict) -> Term:
    from .trace import ELEMENTWISE

    prim = c._node
    inputs = node_parts(c)[0]
    args, released = _node_args(c)
    operands, constants = [], []
    from ..format import fmt_const

    for j, x in enumerate(inputs):
        if nm.shown(x):
            operands.append(nm.name(x))
            constants.append(None)
        else:
            operands.append(fmt_const(args[j]))
            constants.append(args[j])
    out = c._data
    out_value = out.value() if type(out) is Released else out
    if out_value is None:
        out_value, released = np.zeros(out.shape, out.dtype), True
    try:
        formula = local_formula(prim, i, operands, constants, args, tuple(np.shape(out_value)), frozenset({"x"}))
    except Exception:
        formula = "(see the rule)"
    elementwise = prim.name in ELEMENTWISE
    upstream_name = d(nm.name(c))
    if formula.endswith("(g = upstream)"):
        import re

        formula = re.sub(r"(?<![\w.])g(?![\w.])", upstream_name, formula[: -len("(g = upstream)")].rstrip())
    local = None if released else _local_value(prim, _namespace(prim, out_value), out_value, i, args)
    sources = [(_reads(e, nm), _copy(g)) for e, _, g in obs.edges.get(id(c), [])]
    return Term(
        nm.name(c),
        expression(prim, operands, args[len(inputs) :]),
        nm.name(inputs[i]),
        formula,
        elementwise,
        obs.upstream[id(c)],
        sources,
        local,
        gi,
        mine_of.get(id(c)),
        statuses.get(id(c)),
        released,
    )


def _reads(node: Tensor, nm: _Names) -> str:
    """``n3 = a - 1``: a consumer as it was computed (its name alone if its arguments cannot be read)."""
    from ..format import fmt_const

    inputs, args = node_parts(node)
    try:
        operands = [nm.name(x) if nm.shown(x) else fmt_const(args[j]) for j, x in enumerate(inputs)]
        return f"{nm.name(node)} = {expression(node._node, operands, args[len(inputs) :])}"
    except Exception:
        return nm.name(node)


def _close(a: Any, b: Any, rtol: float, atol: float) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=max(rtol, 1e-7), atol=atol, equal_nan=False))


class _Substitute(Backprop):
    """The engine's backpropagation again, but at each tensor you supplied a gradient for, yours replaces the
    true one.  What then arrives at a tensor is what your upstream gradients give through correct steps; and
    ``sources`` says which of your wrong gradients it depends on."""

    def __init__(self, mine: dict[int, np.ndarray], wrong: set[int]) -> None:
        super().__init__()
        self.mine, self.wrong = mine, wrong
        self.arrived: dict[int, Any] = {}
        self.sources: dict[int, frozenset] = {}
        self.after: dict[int, frozenset] = {}

    def start(self, t: Tensor, g: Any) -> Any:
        key = id(t)
        self.arrived[key] = _copy(g)
        after = self.sources.get(key, frozenset())
        m = self.mine.get(key)
        if m is not None and m.shape == np.shape(g):
            g = m.astype(np.result_type(g)) if isinstance(g, np.ndarray) else type(g)(m)
            after = frozenset((key,)) if key in self.wrong else frozenset()
        self.after[key] = after
        return g

    def edge(self, t: Tensor, i: int, inp: Tensor, gi: Any) -> None:
        self.sources[id(inp)] = self.sources.get(id(inp), frozenset()) | self.after[id(t)]


def _substituted(output: Tensor, seed: Any, mine_of: dict, statuses: dict) -> _Substitute:
    wrong = {key for key, st in statuses.items() if st in (WRONG, SHAPE)}
    sub = _Substitute(mine_of, wrong)
    for leaf, g in walk([output], [seed], True, sub):
        sub.arrived[id(leaf)] = g
    return sub


def _explain(
    row: Row,
    t: Tensor,
    obs: _Observer,
    sub: _Substitute,
    nm: _Names,
    mine_of: dict,
    statuses: dict,
    rtol: float,
    atol: float,
) -> None:
    uses = obs.edges.get(id(t), [])
    row.terms = [_term(c, i, gi, obs, nm, mine_of, statuses) for c, i, gi in uses]
    m, g, name = row.mine, row.true, row.name
    if row.status == SHAPE:
        _shape_hints(row, rtol, atol)
        return
    if np.allclose(m, -g, rtol=max(rtol, 1e-7), atol=atol) and np.any(g != 0):
        row.hints.append("yours is the true gradient with the sign flipped")
    sources = sorted(sub.sources.get(id(t), frozenset()), key=lambda k: -obs.position.get(k, 0.0))
    if sources:
        nearest = nm.name(nm.everything[sources[0]])
        arrived = sub.arrived.get(id(t))
        if arrived is not None and _close(m, arrived, rtol, atol):
            row.follows = nearest
            row.hints.append(
                f"this follows from your {d(nearest)}, which is wrong: the steps from {d(nearest)} to {d(name)} "
                f"are right (they give yours from your {d(nearest)}). Fix {d(nearest)} first"
            )
            return
        row.hints.append(
            f"your {d(nearest)}, further up, is wrong too; even from yours the steps down to {d(name)} give something "
            "else, so there is a second mistake between them"
        )
    if len(uses) > 1:
        names_ = ", ".join(f"{u.node} = {u.expression}" for u in row.terms)
        row.hints.append(f"{name} is used {len(uses)} times ({names_}): its gradient is the sum of one term per use")
        for u in row.terms:
            if _close(m, g - np.asarray(u.downstream, dtype=np.float64), rtol, atol):
                row.hints.append(f"yours leaves out the term from {u.node} = {u.expression}")
            elif len(uses) > 2 and _close(m, u.downstream, rtol, atol):
                row.hints.append(f"yours is only the term from {u.node} = {u.expression}")
    if len(uses) == 1 and not sources:
        c, u = uses[0][0], row.terms[0]
        if u.your_upstream_status in (EXACT, CLOSE):
            rule = (
                f"the local derivative ∂{u.node}/∂{name} is {u.formula}"
                if u.elementwise
                else f"the rule is {u.formula}"
            )
            row.hints.append(f"your {d(u.node)} is right, so the mistake is in this step: {rule}")
            used = _used_local(row, u, c, nm)
            if used is not None:
                row.hints.append(f"yours used {used}")
            return
    if not sources and not any("leaves out" in h for h in row.hints) and any(k in mine_of for k in _above(t, obs)):
        row.hints.append(
            f"the gradients you supplied above {d(name)} are right, so the mistake is in the steps from them "
            f"to {d(name)}"
        )
    _find_factor(row, t, obs, nm, mine_of, statuses)


def _above(t: Tensor, obs: _Observer) -> set[int]:
    """Ids of the tensors whose gradient flows into ``t``'s (its consumers, theirs, ...)."""
    seen: set[int] = set()
    stack = [c for c, _, _ in obs.edges.get(id(t), [])]
    while stack:
        c = stack.pop()
        if id(c) in seen:
            continue
        seen.add(id(c))
        stack.extend(e for e, _, _ in obs.edges.get(id(c), []))
    return seen


def _shape_hints(row: Row, rtol: float, atol: float) -> None:
    m, g, name = row.mine, row.true, row.name
    row.hints.append(f"a gradient has the shape of its tensor: {name} is {row.shape}, yours is {row.your_shape}")
    try:
        big = np.broadcast_shapes(row.shape, row.your_shape)
    except ValueError:
        big = None
    if big == row.your_shape and m.ndim >= len(row.shape):
        lead = m.ndim - len(row.shape)
        axes = tuple(range(lead)) + tuple(
            k + lead for k, n in enumerate(row.shape) if n == 1 and row.your_shape[k + lead] != 1
        )
        summed = m.sum(axis=axes).reshape(row.shape)
        how = "exact" if np.array_equal(summed, g) else "close" if _close(summed, g, rtol, atol) else "still wrong"
        where = axes if len(axes) > 1 else axes[0]
        if any(np.shape(u.upstream) == row.your_shape for u in row.terms):
            row.hints.append(
                f"{name} was broadcast to {row.your_shape} in the forward pass: sum yours over axis {where} to undo "
                f"it (then it is {how})"
            )
        elif how != "still wrong":
            row.hints.append(f"summed over axis {where}, yours would be {how}")


def _used_local(row: Row, u: Term, c: Tensor, nm: _Names) -> Optional[str]:
    """At an elementwise step whose upstream you had right: the factor you used instead, if the program has it."""
    if u.local is None or not u.elementwise or row.status != WRONG:
        return None
    up = np.broadcast_to(np.asarray(u.upstream, dtype=np.float64), row.true.shape)
    if np.shape(u.downstream) != row.true.shape or np.any(up == 0):
        return None
    used = row.mine / up  # upstream × (your local) = yours
    found = _what_is(used, c, nm)
    if found is None:
        return None
    return f"{num(float(used.flat[0]))}, {found}" if used.size == 1 else found


def _constant_ratio(m: np.ndarray, g: np.ndarray) -> Optional[float]:
    """``r`` where yours is ``r`` times the true gradient in every entry (None if not)."""
    nz = g != 0
    if not nz.any() or np.any(m[~nz] != 0) or not np.all(np.isfinite(m)):
        return None
    r = m[nz] / g[nz]
    r0 = float(r.flat[0])
    if not np.allclose(r, r0, rtol=1e-6, atol=0) or np.isclose(r0, 1.0, rtol=1e-9, atol=0):
        return None
    return r0


def _find_factor(row: Row, t: Tensor, obs: _Observer, nm: _Names, mine_of: dict, statuses: dict) -> None:
    """Yours = r × true in every entry: walk toward the output along the one path and find the local factor
    that, multiplied by r, is a value the program has (σ instead of σ(1−σ)), or 1 (a factor left out)."""
    r = _constant_ratio(row.mine, row.true)
    if r is None:
        return
    row.hints.append(
        f"yours is the true gradient times {r:.4g} in every entry: one factor on the way from the output is off"
    )
    x = t
    for _ in range(10_000):
        uses = obs.edges.get(id(x), [])
        if len(uses) != 1:
            return
        c, i, gi = uses[0]
        if statuses.get(id(c)) == WRONG and not any("your d" in h for h in row.hints):
            row.hints.append(f"your {d(nm.name(c))} on that path is wrong too")
        term = _term(c, i, gi, obs, nm, mine_of, statuses)
        if term.local is not None and not term.released:
            used = np.asarray(term.local, dtype=np.float64) * r
            found = _what_is(used, c, nm)
            if found is not None:
                shown = num(float(used.flat[0])) if used.size == 1 else "those values"
                row.hints.append(
                    f"that factor is step {term.node} = {term.expression}: its local derivative ∂{term.node}/∂"
                    f"{term.operand} is {term.formula}, but yours used {shown}, {found}"
                )
                row.culprit = term
                return
        x = c


def _what_is(used: np.ndarray, c: Tensor, nm: _Names) -> Optional[str]:
    def same(v: Any) -> bool:
        v = np.asarray(v, dtype=np.float64)
        return v.shape == used.shape and bool(np.allclose(used, v, rtol=1e-6, atol=1e-12))

    if same(np.ones_like(used)):
        return "1: the factor was left out"
    out = c._data
    if type(out) is not Released and same(out):
        return f"the value of {nm.name(c)} itself"
    for x, v in zip(node_parts(c)[0], node_parts(c)[1]):
        if x is not None and type(v) is not Released and same(v):
            return f"the value of {nm.name(x)}"
    return None
