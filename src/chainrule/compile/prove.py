"""The bit-exactness prover: a line the schedule writes out must be the primitive's own result, bit for bit.

A primitive's forward, or one of its VJP rules, is run on symbols (:mod:`chainrule.symbolic`)
and the formula is written as assignments by the one code generator (:func:`chainrule.codegen.lower`),
with the results of large operations written into buffers (``out=``).  The lines are kept only if
they give what the primitive itself gives (``norm(prim.fwd(...))``, ``fit(rule(xp, ...))``): the
same type, shape, dtype, strides and bytes (NaN positions and signed zeros included), the same
writeability and sharing of memory with each operand, and the same floating-point errors raised,
on the trace's values and on probes full of NaN, infinities, signed zeros, tiny and huge numbers.
Otherwise the schedule calls the primitive's forward or rule as it is.

A *form* (the lines with placeholders for the schedule's names, and how it passed) is cached per
primitive, rule, operand specs and statics; the check on the trace's values runs for every line.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Callable
from typing import Any, Optional

import numpy as np

from ..codegen import has_out_form, helper_namespace, index_text, lower
from ..primitive import REGISTRY, Primitive
from ..symbolic import SYM, var
from ..symbolic import prim as symbolic_prim
from ..values import _norm
from .runtime import empty, fit, is_array, is_torch
from .symbolic_forward import FWD

ndarray = np.ndarray

PLACEHOLDER = re.compile(r"\b_(?:g|o|[stb]?\d+)\b")
_FORMS: dict = {}  # key -> Form, or None (no spelling, or it failed the probe)
_KEY_ARRAY = 4096  # index arrays up to this size are part of the cache key by value (larger: not cached)
_CACHE_SIZE = 4096  # forms kept (the cache starts again when full)
_SPECIALS = (np.nan, np.inf, -np.inf, -0.0, 0.0, 1.0, -1.0, 0.5, -2.5, 1e-3, 3e4, 1e-41, -1e38)
_FLOAT_SPECIALS = (np.nan, np.inf, -np.inf, -0.0, 0.0, 1.0, -1.0, 0.5, -2.5, 2.0, 1e-3, 3e4, 5e-324, 1e308)


class Form:
    """A forward or rule written as assignments with placeholders, its evaluator, and how it matched.

    ``steps`` and ``result`` are :func:`chainrule.codegen.lower`'s; ``buffers`` lists the arrays the
    steps write into (``(placeholder, shape, dtype)``); ``fn(*lead, *operands, *static arrays,
    *buffers)`` evaluates the lines; ``mode`` is ``""`` (the lines give the result as it is) or
    ``"norm"`` / ``"fit"`` (after the engine's normalization / reduction).
    """

    __slots__ = ("steps", "result", "used", "fn", "sym_ops", "buffers", "mode", "needs", "floats", "templates")

    def __init__(self, steps: list, result: str, used: frozenset, fn: Callable, sym_ops: list, buffers: list) -> None:
        self.steps = steps
        self.result = result
        self.used = used
        self.fn = fn
        self.sym_ops = sym_ops  # the operands that are symbols (the others are numbers written into the text)
        self.buffers = buffers
        self.mode: Optional[str] = None
        inner = {st.target for st in steps} | {b[0] for b in buffers}
        texts = [result] + [st.text for st in steps]
        self.needs = {m.group(0) for t in texts for m in PLACEHOLDER.finditer(t)} - inner  # the schedule's names
        self.floats = False  # a form over Python floats (checked on the probe's numbers only)
        # the texts as format strings (placeholders as fields): the steps', their operands', and the result's
        last = steps[-1] if steps and steps[-1].target == result else None
        final = last.text if last is not None and last.out is None else result
        self.templates = (
            [(_template(st.text), tuple(_template(o) for o in st.operands)) for st in steps],
            _template(final),
        )

    def scratch(self) -> list:
        """Fresh buffers for one evaluation."""
        return [empty(shape, dtype) for _, shape, dtype in self.buffers]


def _template(text: str) -> str:
    return PLACEHOLDER.sub(lambda m: "{" + m.group(0) + "}", text.replace("{", "{{").replace("}", "}}"))


def registered(prim: Primitive) -> bool:
    """One of chainrule's own primitives (a user's ``custom_vjp`` is never run twice, nor spelled by its name)."""
    return REGISTRY.get(prim.name) is prim


def spec_of(v: Any) -> tuple:
    if type(v) is float:
        return _FLOAT
    if type(v) is ndarray:
        return ("A", v.shape, v.dtype.str)
    if is_torch(v):
        return ("T", tuple(v.shape), str(v.dtype), str(v.device))
    if isinstance(v, np.generic):
        return ("G", v.dtype.str)
    return ("P", type(v))


def static_arrays(v: Any, out: list) -> None:
    """The arrays among a node's statics (index arrays), each once, in order."""
    if type(v) in (tuple, list):
        for x in v:
            static_arrays(x, out)
    elif type(v) is ndarray and all(a is not v for a in out):
        out.append(v)


_FLOAT = ("P", float)


def static_key(v: Any) -> Any:
    """A hashable stand-in for a node's statics (by value), or None where they are not cached."""
    t = type(v)
    if t in (int, float, bool, str, type(None)) or v is Ellipsis:
        return (t, v)
    if t in (tuple, list):
        parts = tuple(static_key(x) for x in v)
        return None if any(p is None for p in parts) else (t, parts)
    if t is slice:
        return (t, v.start, v.stop, v.step) if all(type(e) in (int, type(None)) for e in (v.start, v.stop)) else None
    if t is ndarray and v.size <= _KEY_ARRAY:
        return ("A", v.shape, v.dtype.str, v.tobytes())
    if isinstance(v, np.generic):
        return ("G", v.dtype.str, v.tobytes())
    return None


def cached_form(key: Any, build: Callable[[], Optional[Form]]) -> Optional[Form]:
    """The form for ``key`` (built once; ``key`` None: built every time)."""
    if key is None:
        return build()
    form = _FORMS.get(key, False)
    if form is False:
        form = build()
        if len(_FORMS) >= _CACHE_SIZE:
            _FORMS.clear()
        _FORMS[key] = form
    return form


def build_form(
    formulas: list[Callable[[], Any]],
    lead: list,
    vals: list,
    sym_ops: list[int],
    arrays: list,
    want: Callable,
    wrap: str,
    target: Any,
    buffered: bool,
    lib: str = "numpy",
) -> Optional[Form]:
    """The first of ``formulas`` that writes out and passes the probe; None if none does.

    ``want`` is the primitive's own forward or rule (as the opaque line calls it) over ``lead +
    vals``; ``wrap`` the engine's step after it (``"norm"`` or ``"fit"``, with ``target`` the value
    ``fit`` reduces to).  With ``buffered``, array results are written into buffers.  ``lib``: the
    dialect (``"numpy"``, or ``"torch"`` for torch tensors; Python floats take ``"float"``).
    """
    placeholders = {id(a): f"_s{k}" for k, a in enumerate(arrays)}
    syms = [var(p, np.shape(v)) for p, v in zip(("_g", "_o"), lead)]
    syms += [var(f"_{j}", np.shape(v)) if j in sym_ops else v for j, v in enumerate(vals)]
    floats = not any(is_array(v) for v in list(lead) + list(vals))
    if floats:  # Python floats: eager's float path runs the math module, so only operators are its arithmetic
        lib = "float"
    for formula in formulas:
        try:
            form = _lower(formula(*syms), lead, vals, sym_ops, arrays, placeholders, buffered, lib)
        except Exception:  # no symbolic form or spelling (a namespace function or an operation the generator lacks)
            continue
        modes = set()
        for p_lead, p_vals in _probes(lead, vals, sym_ops):
            modes.add(match(form, p_lead, p_vals, arrays, wrap, want, p_vals[target] if wrap == "fit" else None))
            if len(modes) > 1 or None in modes:
                break
        form.mode = modes.pop() if len(modes) == 1 else None
        form.floats = floats
        if form.mode is not None:
            return form
    return None


def _lower(
    formula: Any, lead: list, vals: list, sym_ops: list, arrays: list, placeholders: dict, buffered: bool, lib: str
) -> Form:
    """Write ``formula`` out twice: every operation assigned (to learn each result's kind on the trace's values),
    then with buffers for the array results."""
    used: set[str] = set()
    index = lambda ix, sub: index_text(ix, placeholders, sub)  # noqa: E731
    params = ["_g", "_o"][: len(lead)] + [f"_{j}" for j in sym_ops] + list(placeholders.values())
    args = list(lead) + [vals[j] for j in sym_ops] + list(arrays)
    order: list = []
    steps, result = lower(formula, used, lambda y: order.append(y) is None, lambda y: None, index, lib)
    values = _evaluate(steps, result, params, [s.target for s in steps])(*args)
    buffers: list = []
    chosen: dict[int, str] = {}
    for node, v in zip(order, values):
        spec = _buffer_spec(v) if buffered and has_out_form(node, lib) else None
        if spec is not None:
            chosen[id(node)] = name = f"_b{len(buffers)}"
            buffers.append((name, *spec))
    used = set()
    pick = lambda y: id(y) in chosen  # noqa: E731
    steps, result = lower(formula, used, pick, lambda y: chosen.get(id(y)), index, lib)
    fn = _evaluate(steps, result, params + [b[0] for b in buffers], None)
    return Form(steps, result, frozenset(used), fn, sym_ops, buffers)


def _buffer_spec(v: Any) -> Optional[tuple]:
    """``(shape, dtype)`` of a buffer to write ``v`` into, if it is a fresh C-ordered array of one dimension or more
    (the layout eager's own result has, so later operations on it round alike); else None."""
    if type(v) is ndarray:
        return (v.shape, v.dtype) if v.ndim and v.flags.c_contiguous and v.base is None else None
    if is_torch(v) and v.ndim and v.is_contiguous() and v._base is None:
        return (tuple(v.shape), (v.dtype, v.device))
    return None


def _evaluate(steps: list, result: str, params: list[str], every: Optional[list[str]]) -> Callable:
    """The steps as a function of ``params``: returning the result, or (``every``) the listed names' values."""
    body = "".join(f"    {s.target} = {s.text}\n" for s in steps)
    ret = f"[{', '.join(every)}]" if every is not None else result
    source = f"def form({', '.join(params)}):\n{body}    return {ret}\n"
    ns = dict(helper_namespace())
    if "torch" in sys.modules:
        ns["torch"] = sys.modules["torch"]
    exec(source, ns)  # our own generated text (the code generator's spellings of a rule's formula)
    return ns["form"]


def match(form: Form, lead: list, vals: list, arrays: list, wrap: str, want: Callable, target: Any) -> Optional[str]:
    """``""`` if the form's value is the rule's bit for bit, ``wrap`` if it is after ``norm`` / ``fit``; else None.

    A rule that raises is matched by a form raising an ``ArithmeticError`` or ``ValueError`` (on
    Python floats: the replay then runs the call eagerly, as it does for any such error).
    """
    every = list(lead) + list(vals)
    operands = [v for v in every if is_array(v)]
    e, e_flags = _flagged_run(want, every)
    r, r_flags = _flagged_run(form.fn, list(lead) + [vals[j] for j in form.sym_ops] + list(arrays) + form.scratch())
    if type(e) is _Raised or type(r) is _Raised:
        return "" if type(e) is _Raised and type(r) is _Raised and r.fallback else None
    if e_flags == r_flags and same_bits(r, e, operands):
        return ""
    w, w_flags = _flagged_run(_norm, [r]) if wrap == "norm" else _flagged_run(fit, [r, target])
    if type(w) is _Raised:
        return None
    return wrap if e_flags == r_flags | w_flags and same_bits(w, e, operands) else None


class _Raised:
    __slots__ = ("fallback",)

    def __init__(self, exc: BaseException) -> None:
        self.fallback = isinstance(exc, (ArithmeticError, ValueError))


def _flagged_run(fn: Callable, args: list) -> tuple[Any, frozenset]:
    seen: set[str] = set()
    try:
        with np.errstate(all="call", call=lambda kind, flag: seen.add(kind)):
            out = fn(*args)
    except Exception as exc:
        return _Raised(exc), frozenset(seen)
    return out, frozenset(seen)


def same_bits(r: Any, e: Any, operands: list) -> bool:
    """The same type, shape, dtype, strides and bytes; the same writeability and sharing with each operand."""
    if type(r) is not type(e):
        return False
    if is_torch(e):
        return _same_torch_bits(r, e, operands)
    if type(e) is float:
        return np.float64(r).tobytes() == np.float64(e).tobytes()
    if isinstance(e, np.generic):  # a NumPy scalar (a gradient summed to a 0-d input, before it is stored)
        return r.dtype == e.dtype and r.tobytes() == e.tobytes()
    if type(e) is not ndarray:
        return False
    if r.shape != e.shape or r.dtype != e.dtype or r.flags.writeable != e.flags.writeable:
        return False
    if r.strides != e.strides and r.size > 1:
        return False
    for o in operands:
        if (r is o) != (e is o) or np.may_share_memory(r, o) != np.may_share_memory(e, o):
            return False
    return r.tobytes() == e.tobytes()


def _same_torch_bits(r: Any, e: Any, operands: list) -> bool:
    torch = sys.modules["torch"]
    if r.shape != e.shape or r.dtype != e.dtype or r.device != e.device or r.stride() != e.stride():
        return False
    for o in operands:
        if is_torch(o) and ((r is o) != (e is o) or (_storage(r) == _storage(o)) != (_storage(e) == _storage(o))):
            return False
    if not r.dtype.is_floating_point:
        return bool(torch.equal(r, e))
    ints = {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16}.get(r.dtype)
    if ints is None:
        return False
    return bool(torch.equal(r.contiguous().view(ints), e.contiguous().view(ints)))


def _storage(t: Any) -> int:
    return t.untyped_storage().data_ptr()


# --- probes ---------------------------------------------------------------------------------------------


def _probes(lead: list, vals: list, sym_ops: list[int]):
    """Operand lists to check a form on: for arrays, a mix of special values, then each operand full of one;
    on Python floats (a scalar node), combinations of special numbers (numbers written into the text stay)."""
    every = list(lead) + list(vals)
    n = len(lead)
    symbols = set(range(n)) | {n + j for j in sym_ops}
    floats = [k for k, v in enumerate(every) if type(v) is float and k in symbols]
    if any(is_array(v) for v in every) or not floats:
        for fill in (None, *_SPECIALS[:5], _SPECIALS[-1]):
            probe = [_probe_value(v, k, fill) for k, v in enumerate(every)]
            yield probe[:n], probe[n:]
        return
    if len(floats) <= 2:
        combos: Any = itertools.product(_FLOAT_SPECIALS, repeat=len(floats))
    else:
        rng = np.random.default_rng(11)
        picks = rng.integers(0, len(_FLOAT_SPECIALS), (240, len(floats)))
        combos = [tuple(_FLOAT_SPECIALS[i] for i in row) for row in picks]
        combos += [(s,) * len(floats) for s in _FLOAT_SPECIALS]
    for combo in combos:
        probe = list(every)
        for k, v in zip(floats, combo):
            probe[k] = float(v)
        yield probe[:n], probe[n:]


def _probe_value(v: Any, k: int, fill: Optional[float] = None) -> Any:
    """A float array like ``v`` holding NaN, infinities, signed zeros, tiny and huge values (others: ``v``).

    With ``fill``, the array is that one value throughout (a row of +inf, a matrix of zeros).  The
    NumPy probes are made once per shape, dtype and place, read-only (a rule writing into its
    operands fails its check); torch probes are fresh tensors of the same values.
    """
    if is_torch(v) and v.dtype.is_floating_point and v.numel():
        like = np.empty(tuple(v.shape), str(v.dtype).replace("torch.", ""))
        return sys.modules["torch"].tensor(_probe_value(like, k, fill), device=v.device)
    if type(v) is not ndarray or v.dtype.kind != "f" or not v.size:
        return v
    key = (v.shape, v.dtype.str, k, fill if fill is None else np.float64(fill).tobytes())
    a = _PROBES.get(key)
    if a is None:
        if len(_PROBES) >= 256:
            _PROBES.clear()
        a = _PROBES[key] = _make_probe(v, k, fill)
        a.flags.writeable = False
    return a


_PROBES: dict[tuple, ndarray] = {}


def _make_probe(v: ndarray, k: int, fill: Optional[float]) -> ndarray:
    if fill is not None:
        with np.errstate(all="ignore"):
            return np.full(v.shape, fill, v.dtype)
    rng = np.random.default_rng(k)
    a = rng.standard_normal(v.size) * 3.0
    s = np.array(_SPECIALS)
    m = min(v.size, len(s))
    a[:m] = s[:m]  # the same specials at the same places in every operand, then rotated ones
    r = min(v.size - m, len(s))
    a[m : m + r] = np.roll(s, k + 1)[:r]
    with np.errstate(all="ignore"):
        return a.astype(v.dtype).reshape(v.shape)


_STAND_INS: dict[tuple, ndarray] = {}


def stand_in_gradient(out: Any) -> Any:
    """An incoming gradient for checking a VJP rule (the trace keeps the forward values, not the gradients).

    One read-only array per shape and dtype, shared by the checks (a rule writing into it fails its check).
    """
    if type(out) is float:
        return -0.6931471805599453
    if is_torch(out):
        like = stand_in_gradient(np.empty(tuple(out.shape), str(out.dtype).replace("torch.", "")))
        return sys.modules["torch"].as_tensor(like.copy(), device=out.device)
    key = (out.shape, out.dtype.str)
    g = _STAND_INS.get(key)
    if g is None:
        if len(_STAND_INS) >= 64:
            _STAND_INS.clear()
        g = _STAND_INS[key] = np.random.default_rng(15).standard_normal(out.shape).astype(out.dtype)
        g.flags.writeable = False
    return g


def forward_formulas(prim: Primitive, statics: tuple, shape: tuple) -> list[Callable[..., Any]]:
    """The forward on symbols: the primitive's own forward run in the symbolic namespace (``linear`` as a
    product and a sum), then the formula ``derive`` prints (a named call such as ``sigmoid(x)``)."""
    return [
        lambda *a: prim.xfwd(FWD, *a, *statics),
        lambda *a: symbolic_prim(prim, a, tuple(statics), shape),
    ]


def unbroadcast(formula: Any, shape: tuple) -> Any:
    """The engine's reduction of a gradient to its input's shape, on symbols."""
    return SYM.unbroadcast(formula, shape)
