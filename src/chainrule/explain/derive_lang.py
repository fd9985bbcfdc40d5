"""``cr.derive(text, shapes, ints=...)`` for programs of the extended language: recorded, then derived as a graph.

A program that uses an operation of :mod:`.lang` (``square``, ``var``,
``where``, indexing, ``cross_entropy``, ``batch_norm``, ``conv2d``, ...) is
parsed and checked by :class:`.lang.LangChecker`, evaluated with chainrule's
own functions on values of the declared shapes (:mod:`.lang_eval`), which
records its graph, and that graph goes to the recorded-graph derive
(:func:`.derive_graph.derive_recorded`) with the program's own names for every
input and every assigned value.  So its equations use the program's names, and
every view (text, steps, chain, JSON, LaTeX, HTML, the NumPy export) and the
check work as for ``cr.derive(output)``.

Float inputs are drawn from a standard normal (fixed seed) unless values are
given; integer inputs (``ints=``) take their given values, or are drawn
deterministically below their class count, or, with no count, below the size
of the axis they first index.
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping
from typing import Any, Optional

import numpy as np

from ..creation import tensor
from ..saved import keep_values
from ..tensor import Tensor
from .derive_graph import DeriveError, derive_recorded
from .derive_numpy import docstring_safe
from .lang import parse_extended
from .lang_eval import Evaluator, Pending, draw_integers
from .parse import ParseError, generic_program

MAX_INPUT_ELEMENTS = 5_000_000  # per input, as for the basic language


def _int_spec(name: str, spec: Any, shape: Optional[tuple]) -> tuple[Optional[int], Optional[np.ndarray]]:
    """``ints[name]``: a class count (int), None (drawn below the axis it indexes), or the values themselves."""
    if spec is None:
        return None, None
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        if spec < 1:
            raise ParseError(f"ints: {name} has {spec} classes; give at least 1", kind="value")
        return int(spec), None
    try:
        arr = np.asarray(spec)
    except (ValueError, TypeError):
        arr = np.asarray([], dtype=object)
    if arr.dtype.kind == "f" and arr.size and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise ParseError(
            f"ints: {name} must be a class count (a whole number), or its values as whole numbers, got {spec!r:.60}",
            kind="value",
        )
    if shape is not None and tuple(arr.shape) != tuple(shape):
        raise ParseError(f"ints: the values of {name} have shape {arr.shape}, but its shape is {shape}", kind="shape")
    return None, arr.astype(np.int64)


def _shape(name: str, value: Any) -> tuple[int, ...]:
    dims = (value,) if isinstance(value, (int, np.integer, str)) else None
    if isinstance(value, (tuple, list)):
        dims = tuple(value)
    if dims is None:
        raise ParseError(f"the shape of {name}, {value!r:.60}, is not a tuple of whole numbers", kind="shape")
    if any(isinstance(d, str) for d in dims):
        raise ParseError(
            f"the shape of {name}, {value!r:.60}, has a symbolic size: a program with indexing or the operations of "
            "the extended language is derived at its given sizes; give numbers, as in (32, 27)",
            kind="shape",
        )
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0 for d in dims):
        raise ParseError(f"the shape of {name}, {value!r:.60}, is not a tuple of whole numbers", kind="shape")
    shape = tuple(int(d) for d in dims)
    if math.prod(shape) > MAX_INPUT_ELEMENTS:
        raise ParseError(f"{name} has {math.prod(shape):,} elements (limit {MAX_INPUT_ELEMENTS:,})", kind="limit")
    return shape


def derive_language(
    text: str,
    shapes: Mapping[str, Any],
    *,
    ints: Optional[Mapping[str, Any]] = None,
    values: Optional[Mapping[str, Any]] = None,
    constants: tuple[str, ...] = (),
    seed: int = 0,
    check: bool = True,
    max_numbers: int = 25_000_000,
) -> dict[str, Any]:
    """The fields of a ``Derivation`` of ``text`` (the extended language), recorded and derived as a graph."""
    try:
        prog = parse_extended(text)
    except ParseError:
        if isinstance(text, str) and generic_program(text) != text:
            raise ParseError(
                "f(...), the generic elementwise function, is for programs of the basic operations only; write a "
                "real function (tanh, relu, ...) in a program that uses indexing or the extended operations",
                kind="not allowed",
            ) from None
        raise
    if prog.output is None:
        raise ParseError("the program must end with an assignment, as in  E = sum(h)", kind="syntax")
    ints = dict(ints or {})
    values = dict(values or {})
    for what, names in (("shapes", shapes), ("ints", ints), ("values", values), ("constants", constants)):
        for name in names:
            if name not in prog.inputs:
                raise ParseError(
                    f"unknown name '{name}' in the {what}: the program's inputs are " + ", ".join(prog.inputs),
                    kind="unknown name",
                )
    env: dict[str, Any] = {}
    classes: dict[str, Optional[int]] = {}
    rng = np.random.default_rng(0)
    missing = []
    for key, name in enumerate(prog.inputs):
        shape = _shape(name, shapes[name]) if name in shapes else None
        if name in ints:
            count, given = _int_spec(name, ints[name], shape)
            classes[name] = count
            if (shape if given is None else given.shape) == ():
                raise ParseError(
                    f"the integer input {name} has shape (): give it at least one axis (--ints {name}=1:N), or "
                    "write a single index as a number, as in x[2]",
                    kind="shape",
                )
            if given is not None:
                env[name] = given
            elif shape is None:
                missing.append(name)
            elif count is not None:
                env[name] = draw_integers(shape, count, key)
            else:
                env[name] = Pending(name, shape, key)
            continue
        if name in values:
            raw = np.asarray(values[name], dtype=np.float64)
            if shape is not None and raw.shape != shape:
                raise ParseError(f"the value of {name} has shape {raw.shape}, but its shape is {shape}", kind="shape")
        elif shape is None:
            missing.append(name)
            continue
        else:
            raw = rng.standard_normal(shape)
        env[name] = tensor(raw if raw.shape else float(raw), requires_grad=name not in constants)
    if missing:
        raise ParseError(
            "missing shape for " + ", ".join(missing) + " (give it as NAME=64x32, or NAME=scalar; an integer input "
            "as --ints NAME=SHAPE:CLASSES)",
            kind="missing value",
        )
    inputs = dict(env)
    evaluator = Evaluator(env, classes, max(max_numbers // 2, 1))
    with np.errstate(all="ignore"), keep_values():
        for st in prog.statements:
            value = evaluator.ev(st.expr)
            env[st.target] = value if isinstance(value, (Tensor, np.ndarray)) else tensor(value)
    out = env[prog.output]
    if not isinstance(out, Tensor) or out._node is None or not _varies(out, inputs, constants):
        raise ParseError(f"the output {prog.output} does not depend on the inputs that get gradients", kind="value")
    for name in list(inputs):
        if isinstance(env[name], Pending):  # (declared but never used as an index)
            raise ParseError(
                f"the integer input {name} is never used as an index; give its class count (--ints {name}=SHAPE:N)",
                kind="value",
            )
        inputs[name] = env[name]
    pairs: list[tuple[Any, str]] = []
    seen: set[int] = set()
    for name, v in env.items():  # the inputs first, then the assigned values (the first name of a value wins)
        if isinstance(v, (Tensor, np.ndarray)) and id(v) not in seen:
            seen.add(id(v))
            pairs.append((v, name))
    taken = {name for _, name in pairs}
    for v, label in evaluator.labels:  # masks not assigned a name: [x > 0], dropout_mask
        if id(v) not in seen:
            base, k = label, 1
            while label in taken:
                k += 1
                label = f"{base}_{k}"
            seen.add(id(v))
            taken.add(label)
            pairs.append((v, label))
    frame = types.SimpleNamespace(f_locals={n: v for n, v in env.items() if isinstance(v, (Tensor, np.ndarray))})
    try:
        fields = derive_recorded(out, names=pairs, frame=frame, check=check, seed=seed)
    except DeriveError as exc:
        raise ParseError(str(exc).split("\n")[0], kind="not allowed") from None
    placeholder = f"    {fields['program']}\n"  # ("recorded graph of L" in the exported module's docstring)
    fields["program"] = text
    source = fields.get("numpy_source", "")
    if source and placeholder in source:  # the module's docstring shows the program, as for the basic language
        lines = "".join(
            "    " + docstring_safe(ln.strip()) + "\n" for ln in text.replace(";", "\n").splitlines() if ln.strip()
        )
        fields["numpy_source"] = source.replace(placeholder, lines, 1)
    return fields


def _varies(out: Tensor, inputs: Mapping[str, Any], constants: tuple[str, ...]) -> bool:
    """Whether the output's graph reaches an input that gets a gradient."""
    from ..autodiff import toposort
    from ..graph import node_of

    wanted = {id(v) for n, v in inputs.items() if isinstance(v, Tensor) and n not in constants}
    for t in toposort([out]):
        if any(x is not None and id(x) in wanted for x in node_of(t).inputs):
            return True
    return False
