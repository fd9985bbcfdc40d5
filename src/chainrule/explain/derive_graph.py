"""``cr.derive(output)``: a graph recorded from ordinary code, named and made ready for derive's walk.

The string form of ``derive`` parses a program and runs it to record a graph;
here the graph is the user's own (modules, functional calls, operators,
indexing).  This module finds its leaves and constants, names them, and builds
the two things derive's record needs from a program:

* the *names*: a parameter by its module path (``fc1.weight``, from
  ``named_parameters`` of the modules given, or found among the caller's
  variables), a value by :func:`name`, by ``names=``, or by the caller's own
  variable (``hpreact``, ``logits``); label and index arrays (``Yb``) by the
  caller's variable too.  Every printed input has a keyword-safe spelling for
  the exported ``backward(**inputs)``: each character that cannot be in a
  Python name becomes ``_`` (``fc1.weight`` -> ``fc1_weight``, ``0.bias`` ->
  ``_0_bias``);
* the *replay*: one statement per recorded node that runs the primitive's own
  forward on NumPy values, so the check's central differences never use a
  VJP rule (:mod:`.derive_check`).
"""

from __future__ import annotations

import keyword
import re
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .. import symbolic as S
from ..autodiff import toposort
from ..grad_mode import no_grad
from ..graph import node_of, stand_ins, value_of
from ..nn.module import Module
from ..tensor import Tensor, apply
from .derive_chain import build_chain
from .derive_check import TOLERANCE, CheckResult, _compare, _run_forward
from .derive_forms import add_steps, conv_notes, find_layers, suggest_names
from .derive_numpy import ExportError, module_source
from .derive_records import Line
from .derive_run import load
from .derive_steps import FINAL
from .derive_walk import _inline_steps, _symbolic

# the primitives whose VJP rules run on symbols and whose formulas the NumPy export writes
SUPPORTED = frozenset(
    (
        "add sub mul div neg pow abs exp log log1p log2 log10 sqrt sin cos tanh sigmoid relu clip maximum "
        "minimum where matmul linear sum mean max min logsumexp softmax log_softmax reshape transpose "
        "broadcast_to getitem concatenate stack unfold fold"
    ).split()
)

_LABELS: dict[int, tuple[Any, str]] = {}  # id(tensor) -> (weak reference, name) given by cr.name


class DeriveError(ValueError):
    """``cr.derive(output)`` cannot derive this graph (an operation without a matrix form, a bad name)."""


def name(t: Tensor, label: str) -> Tensor:
    """Give ``t`` the name ``label`` in ``cr.derive``'s equations (``cr.name(logits, "logits")``); returns ``t``."""
    if not isinstance(t, Tensor):
        raise TypeError(f"cr.name: expected a Tensor, got {type(t).__name__}")
    if not isinstance(label, str) or not label.strip() or any(c in label for c in " \t\n;=,()[]"):
        raise ValueError(f"cr.name: {label!r} is not a usable name (no spaces, brackets, commas, ';' or '=')")
    _LABELS[id(t)] = (weakref.ref(t), label)
    return t


def _label(t: Tensor) -> Optional[str]:
    entry = _LABELS.get(id(t))
    if entry is None:
        return None
    if entry[0]() is not t:
        del _LABELS[id(t)]
        return None
    return entry[1]


def keyword_name(label: str) -> str:
    """The spelling of a printed name as a Python keyword argument: ``fc1.weight`` -> ``fc1_weight``."""
    text = re.sub(r"\W", "_", label)
    if not text or text[0].isdigit() or keyword.iskeyword(text):
        text = "_" + text
    return text


class NamedArray(np.ndarray):
    """A label or index array of the graph, printed by its name (``Yb``) and written as code by it too."""

    code: str = ""
    text: str = ""

    def __new__(cls, array: np.ndarray, text: str, code: str) -> NamedArray:
        obj = np.asarray(array).view(cls)
        obj.text, obj.code = text, code
        return obj

    def __array_finalize__(self, obj: Any) -> None:
        self.text = getattr(obj, "text", "")
        self.code = getattr(obj, "code", "")

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.code


@dataclass
class _Program:
    """What derive's walk reads of a program: the inputs in order, the output's name."""

    inputs: list[str]
    output: str
    statements: list[Any] = field(default_factory=list)
    generic: bool = False


class _Node:
    """One recorded node as a statement of the check's replay: ``target = prim(reads..., params...)``."""

    def __init__(self, target: str, reads: tuple[str, ...], t: Tensor) -> None:
        self.target, self.reads, self.size, self.t = target, reads, int(t.size), t
        view = node_of(t)
        self.prim, self.params = view.prim, view.params
        # the operands: _READ where the environment gives the value, else the constant itself (float ones in
        # float64, as the check computes: a float32 divisor of a mean would round the differences)
        self.constants = [_READ if x is not None else _float64(view.args[i]) for i, x in enumerate(view.inputs)]

    def __repr__(self) -> str:
        return f"_Node({self.target} = {self.prim.name}({', '.join(self.reads)}))"

    def run(self, env: Mapping[str, Any]) -> Any:
        reads = iter(self.reads)
        args = [env[next(reads)] if c is _READ else c for c in self.constants]
        with no_grad():
            return apply(self.prim, *args, *self.params)


_READ = object()  # an operand the replay reads from its environment


def _float64(a: Any) -> Any:
    floating = isinstance(a, (np.ndarray, np.floating)) and np.asarray(a).dtype.kind == "f"
    return np.asarray(a, dtype=np.float64) if floating else a


@dataclass
class Recorded:
    """A recorded graph, named: what ``derive`` needs to run its walk, export and check."""

    prog: _Program
    env: dict[str, Tensor]  # printed name -> tensor (leaves and named intermediates)
    names: dict[int, str]  # id(tensor) -> printed name
    consts: dict[int, Any]  # id(constant array) -> its replacement in formulas (a variable or a NamedArray)
    constants: tuple[str, ...]  # inputs without gradients (data, labels)
    inputs: dict[str, Any]  # printed name -> recorded tensor or array (every input of backward())
    keywords: dict[str, str]  # printed name -> keyword spelling
    integer: tuple[str, ...]  # keyword names of integer (label, index) arrays
    layers: list[dict] = field(default_factory=list)  # composite layers found in the graph (derive_forms)


def _unsupported(order: list[Tensor]) -> None:
    for t in order:
        prim = node_of(t).prim
        if prim.name not in SUPPORTED:
            raise DeriveError(
                f"cr.derive: the operation '{prim.name}' (output shape {t.shape}) has no matrix form yet; "
                f"cr.derive(output) supports: {', '.join(sorted(SUPPORTED))} (and the layers and losses built "
                "from them: Linear, Embedding, BatchNorm1d and LayerNorm in training mode, Tanh, ReLU, Sigmoid, "
                "cross_entropy, mse_loss)"
            )


def _arrays_in(value: Any) -> Iterable[Any]:
    """The arrays (and Python ranges: ``logprobs[range(n), Yb]``) inside a node's static parameters."""
    if (isinstance(value, np.ndarray) and value.ndim > 0) or isinstance(value, range):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _arrays_in(v)


def _is_range(a: Any) -> bool:
    """A Python range, or ``arange(n)`` (possibly with axes of length 1 around it, as ``np.indices`` gives)."""
    if isinstance(a, range):
        return True
    long = [d for d in a.shape if d != 1]
    if a.dtype.kind not in "iu" or len(long) > 1 or a.ndim == 0:
        return False
    return bool(np.array_equal(a.reshape(-1), np.arange(a.size)))


def _range_text(a: Any) -> tuple[str, str]:
    """A range as the text shows it and as the exported code writes it: ``range(32)``, ``np.arange(32)``."""
    r = a if isinstance(a, range) else range(a.size)
    args = str(r.stop) if (r.start, r.step) == (0, 1) else f"{r.start}, {r.stop}" + (f", {r.step}" * (r.step != 1))
    text, code = f"range({args})", f"np.arange({args})"
    if isinstance(a, np.ndarray) and a.ndim > 1:  # a column of the grid: range(32)[:, None]
        where = ", ".join(":" if d != 1 else "None" for d in a.shape)
        text, code = f"{text}[{where}]", f"{code}[{where}]"
    return text, code


def _extrema(order: list[Tensor]) -> dict[int, str]:
    """Index arrays that pick the largest (smallest) entry along an axis (``x.max(1).values``): argmax, argmin."""

    out: dict[int, str] = {}
    for t in order:
        view = node_of(t)
        index = view.params[0] if view.prim.name == "getitem" and view.params else None
        if not isinstance(index, tuple) or view.inputs[0] is None:
            continue
        picks = [(k, a) for k, a in enumerate(index) if isinstance(a, np.ndarray) and not _is_range(a)]
        if len(picks) != 1 or not all(_is_range(a) for k, a in enumerate(index) if k != picks[0][0]):
            continue
        axis, idx = picks[0]
        try:
            x = np.asarray(value_of(view.inputs[0]))
        except Exception:  # (a released value: the array keeps its plain name)
            continue
        if idx.ndim != x.ndim or idx.shape[axis] != 1:
            continue
        got = np.take_along_axis(x, idx, axis)
        for word, best in (("argmax", x.max(axis, keepdims=True)), ("argmin", x.min(axis, keepdims=True))):
            if np.array_equal(got, best):
                out[id(idx)] = word
                break
    return out


def _patches(order: list[Tensor], frame: Any) -> dict[int, str]:
    """conv2d's patches of an input that needs no gradient (no im2col node is recorded then): a data leaf
    ``cols`` in ``reshape(W) · cols`` with a 4-D ``W``, named ``im2col(x)`` where it is the im2col of the
    caller's ``x`` at some padding and stride (checked entry by entry), else ``cols``."""
    from ..primitives.nn import unfold

    out: dict[int, str] = {}
    for t in order:
        view = node_of(t)
        if view.prim.name != "matmul" or any(x is None for x in view.inputs):
            continue
        flat, cols = view.inputs
        if cols._node is not None or cols.requires_grad or cols.ndim != 3 or flat._node is None:
            continue
        w = node_of(flat).inputs[0] if node_of(flat).prim.name == "reshape" else None
        if w is None or w.ndim != 4:
            continue
        out[id(cols)] = "cols"
        kernel = tuple(w.shape[2:])
        for var, value in list(frame.f_locals.items()) if frame is not None else []:
            raw = value._data if isinstance(value, Tensor) else value
            if var.startswith("_") or not isinstance(raw, np.ndarray) or raw.ndim != 4 or raw.dtype.kind != "f":
                continue
            for pad in range(kernel[0]):
                for stride in (1, 2, 3):
                    geometry = (kernel, (1, 1), (pad, pad), (stride, stride))
                    try:
                        got = unfold.fwd(raw, *geometry)
                    except ValueError:
                        continue
                    if got.shape == cols.shape and np.array_equal(got, np.asarray(value_of(cols))):
                        out[id(cols)] = f"im2col({var})"
    return out


def _caller_integers(frame: Any) -> list[tuple[str, np.ndarray]]:
    """The caller's integer arrays (or tensors of them), by variable name."""
    out = []
    for var, value in list(frame.f_locals.items()) if frame is not None else []:
        raw = value._data if isinstance(value, Tensor) else value
        if not var.startswith("_") and isinstance(raw, np.ndarray) and raw.dtype.kind in "iu" and raw.ndim:
            out.append((var, raw))
    return out


def _caller_names(frame: Any, used: set[int]) -> tuple[dict[int, str], dict[int, str]]:
    """Names of the caller's tensors and arrays (by identity; a tensor's array too), and its modules' parameters.

    A module among the caller's variables names its parameters by their path in it (``fc1.weight`` in
    ``model``); where the caller has several that are not parts of one another (``fc1``, ``bn``), or one
    layer without submodules, the path starts with the variable's name (``fc1.weight``, ``ln.weight``).
    Only modules with a parameter among ``used`` (the graph's leaves) count.
    """
    found: dict[int, str] = {}
    params: dict[int, str] = {}
    if frame is None:
        return found, params
    modules: dict[int, tuple[str, Module]] = {}
    for var, value in list(frame.f_locals.items()):
        if var.startswith("_"):
            continue
        if isinstance(value, Module):
            modules.setdefault(id(value), (var, value))
        elif isinstance(value, Tensor):
            found.setdefault(id(value), var)
            if isinstance(value._data, np.ndarray):
                found.setdefault(id(value._data), var)
        elif isinstance(value, np.ndarray):
            found.setdefault(id(value), var)
    inner = {id(m) for _, mod in modules.values() for _, m in mod.named_modules() if m is not mod}
    top = [(var, mod) for key, (var, mod) in modules.items() if key not in inner]
    top = [(var, mod) for var, mod in top if any(id(p) in used for p in mod.parameters())]  # (in this graph)
    for var, mod in top:
        single = len(top) == 1 and any(m is not mod for _, m in mod.named_modules())  # one model: paths inside
        for pname, p in mod.named_parameters(prefix="" if single else var):
            params.setdefault(id(p), pname)
    return found, params


def record(
    output: Tensor,
    names: Optional[Mapping[Any, str]] = None,
    modules: Any = (),
    frame: Any = None,
) -> Recorded:
    """Name the graph behind ``output`` (see the module's docstring) and build its replay."""
    if output._node is None:
        raise DeriveError(
            f"cr.derive: the output (shape {output.shape}) is a leaf, not the result of recorded operations: "
            "record it from tensors that require a gradient (parameters, or requires_grad=True), outside no_grad()"
        )
    order = toposort([output])  # root first
    _unsupported(order)
    leaf_ids = {id(x) for t in order for x in node_of(t).inputs if x is not None and x._node is None}
    local, local_params = _caller_names(frame, leaf_ids)
    local_ints = _caller_integers(frame)
    given: dict[int, str] = {}
    pairs = (names or {}).items() if isinstance(names, Mapping) or names is None else names
    for key, label in pairs:  # (a list of pairs names arrays too, which cannot be dict keys)
        if not isinstance(label, str) or not label:
            raise DeriveError(f"cr.derive: names= maps to {label!r}, which is not a name")
        given[id(key)] = label
        if isinstance(key, Tensor) and isinstance(key._data, np.ndarray):
            given.setdefault(id(key._data), label)
    from_modules: dict[int, str] = {}
    pairs = list(modules.items()) if isinstance(modules, Mapping) else [("", m) for m in modules]
    for prefix, mod in pairs:
        if not isinstance(mod, Module):
            raise TypeError(f"cr.derive: module= takes chainrule.nn modules, got {type(mod).__name__}")
        for pname, p in mod.named_parameters(prefix=prefix):
            from_modules.setdefault(id(p), pname)
    for key, pname in local_params.items():
        from_modules.setdefault(key, pname)

    # leaves, constant arrays and index arrays, in the order the forward first uses them
    leaves: list[Tensor] = []
    arrays: list[np.ndarray] = []
    operands: set[int] = set()  # ids of the arrays that are operands (a mask), not parts of an index
    seen: set[int] = set()
    for t in reversed(order):
        view = node_of(t)
        for i, x in enumerate(view.inputs):
            if x is not None and x._node is None and id(x) not in seen:
                seen.add(id(x))
                leaves.append(x)
            elif x is None and isinstance(view.args[i], np.ndarray) and view.args[i].size > 1:
                operands.add(id(view.args[i]))
                if id(view.args[i]) not in seen:
                    seen.add(id(view.args[i]))
                    arrays.append(view.args[i])
        for a in _arrays_in(view.params):
            if id(a) not in seen and not _is_range(a):
                seen.add(id(a))
                arrays.append(a)

    used: set[str] = set()
    keywords: dict[str, str] = {}

    def claim(label: str) -> str:
        base, k = label, 1
        while label in used or keyword_name(label) in keywords.values():
            k += 1
            label = f"{base}_{k}"
        used.add(label)
        keywords[label] = keyword_name(label)
        return label

    def chosen(obj: Any) -> Optional[str]:
        key = id(obj)
        found = given.get(key) or (_label(obj) if isinstance(obj, Tensor) else None) or from_modules.get(key)
        found = found or local.get(key)
        if found is None and isinstance(obj, np.ndarray) and obj.dtype.kind in "iu":
            # labels the forward converted (C[Xb] with a tensor Xb): the caller's one array of equal values
            same = {v for v, a in local_ints if a.shape == obj.shape and np.array_equal(a, obj)}
            found = same.pop() if len(same) == 1 else None
        return found

    ids: dict[int, str] = {}
    env: dict[str, Tensor] = {}
    inputs: dict[str, Any] = {}
    constants: list[str] = []
    count = {"p": 0, "x": 0, "c": 0}
    patches = _patches(order, frame)
    for leaf in leaves:
        label = chosen(leaf) or patches.get(id(leaf))
        if label is None:
            kind = "p" if leaf.requires_grad else "x"
            count[kind] += 1
            label = f"{kind}{count[kind]}"
        label = claim(label)
        ids[id(leaf)] = label
        env[label] = leaf
        inputs[label] = leaf
        if not leaf.requires_grad:
            constants.append(label)
    consts: dict[int, Any] = {}
    integer: list[str] = []
    extrema = _extrema(order)
    for a in arrays:
        label = chosen(a) or extrema.get(id(a))
        if label is None:
            count["c"] += 1
            kind = "mask" if a.dtype.kind == "b" else "idx" if a.dtype.kind in "iu" else "c"
            label = f"{kind}{count['c']}"
        label = claim(label)
        inputs[label] = a
        constants.append(label)
        if a.dtype.kind in "iub":
            integer.append(keywords[label])
        if id(a) in operands:
            consts[id(a)] = S.var(label, a.shape)
        else:
            consts[id(a)] = NamedArray(a, label, keywords[label])
    for t in reversed(order):  # the ranges an index uses (logprobs[range(n), Yb]) are written, not passed
        for a in _arrays_in(node_of(t).params):
            if _is_range(a) and id(a) not in consts:
                values = np.arange(a.start, a.stop, a.step) if isinstance(a, range) else a
                consts[id(a)] = NamedArray(values, *_range_text(a))
    for t in order:  # intermediates named by the caller (the output first)
        label = chosen(t)
        if t is output and label is None:
            label = "out"
        if label is not None and id(t) not in ids:
            label = claim(label)
            ids[id(t)] = label
            env[label] = t
    layers = find_layers(order)
    for t, label in suggest_names(layers, lambda x: ids.get(id(x))):  # the values closed forms are written in
        if id(t) not in ids and t._node is not None:
            label = claim(label)
            ids[id(t)] = label
            env[label] = t
    statements = []
    for t in reversed(order):
        view = node_of(t)
        reads = tuple(keywords[ids[id(x)]] if id(x) in ids else f"_n{id(x)}" for x in view.inputs if x is not None)
        target = keywords[ids[id(t)]] if id(t) in ids else f"_n{id(t)}"
        statements.append(_Node(target, reads, t))
    prog = _Program([n for n in inputs if n in env], ids[id(output)], statements)
    return Recorded(prog, env, ids, consts, tuple(constants), inputs, keywords, tuple(integer), layers)


def safe_names(lines: list[Any], keywords: Mapping[str, str]) -> list[Any]:
    """Copies of equation lines with every name in its keyword spelling (for the NumPy export)."""

    def fix(name: str) -> str:
        if name in keywords:
            return keywords[name]
        if name.startswith("d") and name[1:] in keywords:
            return "d" + keywords[name[1:]]
        return keyword_name(name)

    out = []
    for ln in lines:
        mapping = {id(n): S.var(fix(n.name), n.shape) for n in S.nodes(ln.formula) if n.op == "var"}
        formula = S.substitute(ln.formula, mapping) if mapping else ln.formula
        out.append(Line(fix(ln.name), formula, ln.shape))
    return out


def values_of(rec: Recorded) -> dict[str, np.ndarray]:
    """The recorded inputs as NumPy arrays keyed by their keyword spelling (float64; labels stay integers)."""
    out = {}
    for label, v in rec.inputs.items():
        raw = np.asarray(v._data if isinstance(v, Tensor) else v)
        out[rec.keywords[label]] = raw if raw.dtype.kind in "iub" else raw.astype(np.float64)
    return out


class _Batch:
    """Filled in by :mod:`.derive_batch` (a module above this one, which builds on this one): the graph replayed
    with every value kept, and the route of a symbolic batch size."""

    replay: Callable[[Any, Tensor], Any]
    derive: Callable[..., dict[str, Any]]


BATCH = _Batch()


def derive_recorded(
    output: Tensor,
    *,
    names: Optional[Mapping[Any, str]] = None,
    modules: Any = (),
    check: bool = True,
    seed: int = 0,
    frame: Any = None,
    batch: Any = None,
) -> dict[str, Any]:
    """The fields of a ``Derivation`` of the graph behind ``output`` (``cr.derive(loss)``); ``batch`` names the
    input whose axis is the symbolic batch size ``B`` (:mod:`.derive_batch`)."""

    if not isinstance(output, Tensor):
        raise TypeError(f"cr.derive: expected a Tensor recorded from chainrule code, got {type(output).__name__}")
    with stand_ins():  # (the values the engine released are recomputed from the leaves by the replay)
        rec = record(output, names, modules, frame)
        if batch is not None:
            return BATCH.derive(rec, output, batch, check, seed)
        return _derive(rec, output, check, seed)


def equations(rec: Recorded, inline: bool = True) -> tuple:
    """The walk over a named graph: forward and backward lines (steps finished but for their formulas'
    sizes), Jacobian notes, the seed's text and the gradients' names."""
    forward, backward, jacobians, seed_text, targets, _route = _symbolic(
        rec.prog, rec.env, rec.names, rec.constants, rec.consts
    )
    for ln in backward:
        ln.formula = _merge_terms(ln.formula)
    for ln in backward:
        final = S.render(ln.formula)
        for st in ln.steps:
            st.text = st.text.replace(FINAL, final)
    if inline:  # (the substitution steps: after the sizes are symbolic, where they will be)
        _inline_steps(backward, rec.constants)
    return forward, backward, jacobians, seed_text, targets


def export(rec: Recorded, program: str, forward: list, backward: list, targets: list, dims: Mapping) -> tuple:
    """``(numpy_source, export_error)``: the printed equations as the module of ``backward(**inputs)``."""
    kw = rec.keywords
    shapes = {label: tuple(np.shape(v._data if isinstance(v, Tensor) else v)) for label, v in rec.inputs.items()}
    returned = [(n, "d" + kw.get(n, keyword_name(n))) for n in targets]
    try:
        source = module_source(
            program,
            [kw[n] for n in rec.inputs],
            {kw[n]: s for n, s in shapes.items()},
            safe_names(forward, kw),
            safe_names(backward, kw),
            returned,
            dims,
            integer=rec.integer,
        )
    except ExportError as exc:
        return "", str(exc)
    return source, ""


def _derive(rec0: Recorded, output: Tensor, check: bool, seed: int) -> dict[str, Any]:
    rec = BATCH.replay(rec0, output)  # (the same graph with every value kept: the steps' claims read them)
    constants = rec.constants
    forward, backward, jacobians, seed_text, targets = equations(rec)
    shapes = {label: tuple(np.shape(v._data if isinstance(v, Tensor) else v)) for label, v in rec.inputs.items()}
    program = "recorded graph of " + rec.prog.output
    fields: dict[str, Any] = dict(
        program=program,
        forward=forward,
        backward=backward,
        jacobians=jacobians,
        check=None,
        dims={},
        seed=seed_text,
        input_shapes=shapes,
        inputs=dict(rec0.inputs),
        keywords=dict(rec0.keywords),
        tensors=dict(rec0.env),
        # the differential route's check evaluates a typed program's statements; a recorded graph has none yet
        differential="not made for a recorded graph yet: derive the program form, cr.derive(program, shapes)",
    )
    source, error = export(rec, program, forward, backward, targets, {})
    if source:
        fields["numpy_source"] = source
    else:
        fields["export_error"] = error
    try:  # each gradient as the product of the local Jacobians along its paths (derive --chain), as for programs
        fields["chain"] = build_chain(program, rec.prog, rec.env, constants)
    except Exception:  # noqa: BLE001  (an operation the chain cannot factor leaves the chain out, never the rest)
        fields["chain"] = None
    if check:
        fields["check"] = _check(rec, fields.get("numpy_source", ""), fields.get("export_error", ""), targets, seed)
    if rec.layers and fields.get("numpy_source"):
        _closed_forms(rec, fields["numpy_source"], backward)
    fields["jacobians"] = jacobians + conv_notes(rec.layers, rec.names)
    finish_and_check(fields, backward, [], ({}, {}), ({}, {}), check, seed)
    return fields


def finish_and_check(
    fields: dict, first: list, second: list, sizes: tuple, dims: tuple, check: bool, seed: int
) -> None:
    """The steps written out (their formulas in the symbolic sizes) and, with ``check``, each step's claim
    evaluated (:mod:`.derive_stepcheck`): a false step fails the derivation's check."""
    from .derive_stepcheck import check as check_steps
    from .derive_stepcheck import finish, merge

    steps = finish(first, second, sizes, dims)
    if check and fields.get("check") is not None:
        merge(fields["check"], check_steps(steps, seed))
        _check_notes(fields["check"], fields.get("jacobians", []), seed)


def _check_notes(result: Any, notes: list, seed: int) -> None:
    """The local Jacobian notes that state a VJP in closed form (conv2d's), each claim evaluated: a false one
    fails the check, as a false step does."""
    from .derive_claims import TOLERANCE as STEP_TOLERANCE

    rng = np.random.default_rng([seed, 29])
    false = []
    for note in notes:
        claims = getattr(note, "claims", None)
        if not claims:
            continue
        errors = [float(c.check(rng)) for c in claims]
        worst = max(errors) if not any(np.isnan(errors)) else float("nan")
        note.check = {"max_error": None if np.isnan(worst) else worst, "kind": "closed form", "runs": len(errors)}
        if not worst <= STEP_TOLERANCE:
            false.append(
                f"the note of ∂({note.operation})/∂{note.input}: its VJP is false (relative error {worst:.1e})"
            )
    if false:
        what = "; ".join(false)
        result.reason = (result.reason + "; " if result.reason else "") + what
        if result.status == "passed":
            result.status = "failed"


def _closed_forms(rec: Recorded, source: str, backward: list[Any]) -> None:
    """The composite layers' closed forms as steps, where they agree with the exported gradients."""

    values = values_of(rec)
    try:
        with np.errstate(all="ignore"):
            grads = load(source)(**values)
            env = _run_forward(rec.prog, values)  # type: ignore[arg-type]
    except Exception:  # (the check reports a failing export; no closed forms then)
        return
    by_keyword = {kw: label for label, kw in rec.keywords.items()}
    forward = {by_keyword[k]: np.asarray(t.data, dtype=np.float64) for k, t in env.items() if k in by_keyword}
    labels = {id(v): label for label, v in rec.inputs.items()}

    def text(a: Any) -> str:
        if id(a) in labels:
            return labels[id(a)]
        return _range_text(a)[0] if _is_range(a) else "the labels"

    add_steps(rec.layers, backward, rec.names, forward, grads, text)


def _check(rec: Recorded, source: str, export_error: str, targets: list[str], seed: int) -> Any:
    """The exported module against central differences of the replayed forward, at the recorded values."""

    if not source:
        return CheckResult("not made", [], reason=export_error)
    run = load(source)
    kw = rec.keywords

    def backward(**inputs: Any) -> dict:
        return {kw.get(n, keyword_name(n)): g for n, g in run(**inputs).items()}

    values = values_of(rec)
    wanted = [(kw.get(n, keyword_name(n)), "d" + n) for n in targets if n != rec.prog.output]
    env = _run_forward(rec.prog, values)  # type: ignore[arg-type]  (a recorded graph's replay)
    if not all(np.all(np.isfinite(np.asarray(t.data, dtype=np.float64))) for t in env.values()):
        reason = "the forward pass overflows (inf or NaN) at the recorded values"
        return CheckResult("not made", [{}], reason=reason, recorded=True)
    rng = np.random.default_rng(seed)
    outcome = _compare(rec.prog, backward, env, values, wanted, rng, 1, np.random.default_rng([seed, 1]))  # type: ignore[arg-type]
    if isinstance(outcome, CheckResult):
        outcome.sizes, outcome.recorded = [{}], True
        return outcome
    if isinstance(outcome, str):
        return CheckResult("not made", [{}], reason=outcome, recorded=True)
    errors = {d: e for d, (e, _) in outcome.items() if e is not None}
    sampled = {d: c for d, (e, c) in outcome.items() if e is not None and c is not None}
    unchecked = [d for d, (e, _) in outcome.items() if e is None]
    worst = max(errors.values(), default=0.0)

    status = "passed" if all(e <= TOLERANCE for e in errors.values()) else "failed"
    result = CheckResult(status, [{}], errors, worst, sampled=sampled, unchecked=unchecked)
    result.recorded = True
    return result


def recorded_layout(forward: list[Any], inputs: Mapping[str, Any]) -> str:
    """``"column"`` where a parameter multiplies from the left (``W · a``), else ``"row"`` (``x · Wᵀ``)."""
    params = {n for n, v in inputs.items() if isinstance(v, Tensor) and v.requires_grad}
    for ln in forward:
        for node in S.nodes(ln.formula):
            if node.op == "matmul":
                left, right = node.args[0], node.args[1]
                if isinstance(right, S.Sym) and right.op == "transpose" and _is_var(right.args[0], params):
                    return "row"  # x · Wᵀ (in a typed program every input has a gradient, x too)
                if _is_var(left, params):
                    return "column"
    return "row"


def _is_var(x: Any, names: set[str]) -> bool:
    return isinstance(x, S.Sym) and x.op == "var" and x.name in names


def _merge_terms(formula: Any) -> Any:
    """``a + a`` (a term the walk sent twice, as through ``c ⊙ c``) written ``2 a``; the check runs the result."""
    if not isinstance(formula, S.Sym) or formula.op != "add":
        return formula
    terms: list[Any] = []
    stack = [formula]
    while stack:
        node = stack.pop()
        if isinstance(node, S.Sym) and node.op == "add" and S.shape_of(node.args[0]) == S.shape_of(node.args[1]):
            stack.extend(reversed(node.args))
        else:
            terms.append(node)
    groups: list[list[Any]] = []
    for term in terms:
        for group in groups:
            if S.same(group[0], term):
                group.append(term)
                break
        else:
            groups.append([term])
    if len(groups) == len(terms):
        return formula
    out = None
    for group in groups:
        term = group[0] if len(group) == 1 else S.const(float(len(group))) * group[0]
        out = term if out is None else out + term
    return S.simplify(out) if S.shape_of(out) == S.shape_of(formula) else formula
