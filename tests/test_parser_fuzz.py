"""Fuzzing the expression parser of ``explain`` / ``derive`` (issue 6, "the expression parser").

Every public entry point that reads user text -- ``parse_expression``, ``parse_program``,
``parse_value``, ``parse_assignments``, ``evaluate`` on what was parsed, ``cr.derive`` and the
``chainrule explain`` / ``chainrule derive`` commands -- is fed arbitrary text and mutations of
valid input.  The contract checked on every example:

* the call either succeeds or raises :class:`chainrule.ParseError` with a one-line message
  (the commands: exit 0, or exit 2 with a one-line ``chainrule ...: error: ...``); no other
  exception type ever escapes;
* nothing is executed: ``eval`` / ``exec`` / ``os.system`` are booby-trapped during each call,
  ``compile`` may only build syntax trees, and canary files are never created;
* every call returns within ``TIME_BOUND`` seconds: huge exponents, deep nesting and very long
  input are refused up front, not computed.  (The bound is deliberately generous: it is about
  refusing pathological input, not about speed.)

Evaluation errors are always ``ParseError`` (a ``ValueError`` subclass): :func:`evaluate` turns
the engine's ``ValueError`` / ``TypeError`` / ``ArithmeticError`` into ``ParseError(kind="shape")``
and refuses results larger than ``MAX_RESULT_ELEMENTS`` before computing them
(``kind="limit"``).  Values that overflow (``exp(exp(exp(x)))``, ``x**99``) are fine: they give
inf/NaN, not an exception.

The size of a run follows the Hypothesis profile of ``tests/conftest.py`` (``ci`` by default;
``HYPOTHESIS_PROFILE=thorough`` for a long run).  Output is captured with ``redirect_stdout`` /
``redirect_stderr`` rather than ``capsys`` because pytest's function-scoped fixtures are not
reset between Hypothesis examples.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import os
import re
import sys
import time
import warnings
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import chainrule as cr
from chainrule.cli import main
from chainrule.explain.parse import (
    FUNCTIONS,
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_RESULT_ELEMENTS,
    ParseError,
    evaluate,
    names_in,
    parse_assignments,
    parse_expression,
    parse_program,
    parse_value,
)
from chainrule.tensor import Tensor

TIME_BOUND = 2.0  # seconds per call; the calls take milliseconds

# --- the material -----------------------------------------------------------------------------

VALID_EXPRESSIONS = [
    "(x + y) * z",
    "1 / (1 + exp(-(w0*x0 + w1*x1 + w2)))",
    "-(x + y) * z / 2 ** 2 - sigmoid(x) + exp(log(y)) + x ** 3",
    "sum(softmax(W @ v, axis=0)) + max(W @ v)",
    "sum(sum(W.T, axis=1, keepdims=True))",
    "logsumexp(x, axis=0) - log_softmax(x, axis=-1)",
    "maximum(x, 0) + minimum(y, 1) * relu(z)",
    "tanh(x) * cos(y) + sin(z) ** 2 + sqrt(abs(x)) + log1p(y * y)",
    "mean(x * y, axis=(0,), keepdims=False)",
    "transpose(W) @ v",
    "matmul(W, v) + 2.5e-3",
    "x ** -2 + 1e3",
    "+x - -y",
    "x * exp(2) + y / 2 ** 2 - sum(z) * log(3)",
]

VALID_PROGRAMS = [
    ("z = W @ a + b; h = sigmoid(z); E = sum(h)", {"W": (4, 3), "a": (3, 1), "b": (4, 1)}),
    ("z = x * w\nE = mean(z ** 2)", {"x": (3,), "w": (3,)}),
    ("s = softmax(W @ x, axis=0); E = -sum(y * log(s))", {"W": (4, 3), "x": (3, 2), "y": (4, 2)}),
    (
        "h = relu(x @ W1 + b1); o = h @ W2; E = sum(logsumexp(o, axis=1))",
        {"x": ("B", 3), "W1": (3, 4), "b1": (4,), "W2": (4, 2)},
    ),
    ("a = tanh(x); b = exp(-a) / (1 + a ** 2); E = sum(maximum(a, b))", {"x": (2, 2)}),
    ("E = sum(x * x)", {"x": ()}),
]

# characters of the grammar, of Python that the grammar refuses, and some unicode
_GRAMMAR_CHARS = list("0123456789.eEjJ+-*/@()[]{},=;:_ \t\n\\#'\"xyzWvabT<>!~%&|^`$?")
_UNICODE_CHARS = list("λπ𝑥²√·×−ℌé中\u00a0\u200b\ufeff\u2028\x00\x7f")

TOKENS = [
    "x",
    "y",
    "z",
    "W",
    "v",
    "a",
    "E",
    "T",
    "_x",
    "__class__",
    "True",
    "None",
    "1j",
    "0x10",
    "1_000",
    "0",
    "1",
    "2",
    "10",
    "2.5",
    "1e3",
    "1e308",
    "9e999",
    "1" * 40,
    "nan",
    "inf",
    "+",
    "-",
    "*",
    "/",
    "**",
    "@",
    "//",
    "%",
    "<<",
    "&",
    "~",
    "==",
    "<",
    "not ",
    " and ",
    " if ",
    " for ",
    " in ",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ".",
    ".T",
    ".__class__",
    ".__mro__",
    ":",
    ":=",
    ";",
    "=",
    " ",
    "\n",
    "\\\n",
    "exp(",
    "log(",
    "sum(",
    "softmax(",
    "matmul(",
    "transpose(",
    "maximum(",
    "axis=",
    "axis=(0, 1)",
    "keepdims=True",
    "lambda: ",
    "yield ",
    "await ",
    "*x",
    "**x",
    "'s'",
    '"s"',
    "f'{x}'",
    "b'x'",
    "...",
    "#",
    "__import__",
    "open(",
]

HUGE = [
    "**10**10",
    "2**10**10",
    "**1e308",
    "**(10**10)",
    "** -101",
    "**100.5",
    "**(1/0)",
    "9e999",
    "-9e999",
    "1" * 400,
    "1" * 1990,
    "1e400-1e400",
    "**(2**7)",
    "**" + "2**" * 40 + "2",
]

_INJECTIONS = [
    "__import__('os').system('touch {p}')",
    "open('{p}', 'w')",
    "open('{p}', 'w').write('x')",
    "(lambda: __import__('os').system('touch {p}'))()",
    "[__import__('os').system('touch {p}') for _ in [1]]",
    "{{open('{p}', 'w')}}",
    "x.__class__.__mro__[1].__subclasses__()",
    "().__class__.__bases__[0].__subclasses__()",
    'f\'{{__import__("os").system("touch {p}")}}\'',
    "(q := open('{p}', 'w'))",
    "x[::-1]",
    "x[0:2, None]",
    "exp(x, **{{'axis': open('{p}', 'w')}})",
    "sum(x, axis=open('{p}', 'w'))",
    "sum(x, keepdims=open('{p}', 'w'))",
    "sum(*[open('{p}', 'w')])",
    "exp(x)(open('{p}', 'w'))",
    "exp.__globals__",
    "getattr(x, '__class__')",
    "eval(\"open('{p}', 'w')\")",
    "exec(\"open('{p}', 'w')\")",
    "compile('1', 'f', 'exec')",
    "breakpoint()",
    "globals()",
    "x if open('{p}', 'w') else y",
    "open('{p}', 'w') and x",
    "[x, open('{p}', 'w')]",
    "sum(open('{p}', 'w') for _ in x)",
    "await open('{p}')",
    "(yield open('{p}'))",
    "x; import os",
    "import os; os.system('touch {p}')",
]


def _char() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(_GRAMMAR_CHARS + _UNICODE_CHARS), st.characters())


ARBITRARY_TEXT = st.one_of(
    st.text(alphabet=_char(), max_size=60),
    st.lists(st.sampled_from(TOKENS), max_size=25).map("".join),
)


# grammar-aware replacements, which keep the text valid more often than not (so evaluation gets fuzzed too)
_SWAPS = [
    (re.compile(r"\*\*|[-+*/@]"), ["+", "-", "*", "/", "**", "@", "**-", "//"]),
    (re.compile(r"\b(?:" + "|".join(sorted(FUNCTIONS, key=len, reverse=True)) + r")\b"), sorted(FUNCTIONS) + ["open"]),
    (
        re.compile(r"(?<![\w.])\d+(?:\.\d*)?(?:e-?\d+)?"),
        ["0", "0.0", "-0.0", "1e308", "1e-308", "99", "100", "101", "100.5", "0.5", "9e999", "1" * 400, "(1/0)"],
    ),
    (re.compile(r"\b[a-zA-Z]\w*\b(?!\s*\()"), ["x", "y", "z", "W", "v", "a", "T", "_x", "x.T", "True", "None"]),
]


MUTATIONS = ["swap", "swap", "swap", "insert", "token", "delete", "replace", "duplicate", "nest", "huge", "long"]
MUTATIONS += ["unbalance", "rotate"]


@st.composite
def mutated(draw: st.DrawFn, bases: list[str], kinds: tuple[str, ...] = tuple(MUTATIONS)) -> str:
    """A valid input with one to four mutations: grammar-aware swaps, characters, tokens, nesting, huge numbers,
    length."""
    text = draw(st.sampled_from(bases))
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 2, 3, 4]))):
        kind = draw(st.sampled_from(kinds))
        pos = draw(st.integers(0, len(text)))
        end = draw(st.integers(pos, min(len(text), pos + 6)))
        if kind == "swap":
            pattern, choices = draw(st.sampled_from(_SWAPS))
            spots = list(pattern.finditer(text))
            if spots:
                m = spots[draw(st.integers(0, len(spots) - 1))]
                text = text[: m.start()] + draw(st.sampled_from(choices)) + text[m.end() :]
        elif kind == "insert":
            text = text[:pos] + draw(_char()) + text[pos:]
        elif kind == "token":
            text = text[:pos] + draw(st.sampled_from(TOKENS)) + text[pos:]
        elif kind == "delete":
            text = text[:pos] + text[end:]
        elif kind == "replace":
            text = text[:pos] + draw(st.sampled_from(TOKENS)) + text[end:]
        elif kind == "duplicate":
            text = text[:pos] + text[pos:end] * draw(st.sampled_from([2, 3, 50, 1000])) + text[end:]
        elif kind == "nest":
            depth = draw(st.sampled_from([1, 5, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 200, 1000]))
            opener = draw(st.sampled_from(["(", "exp(", "-(", "sum(", "[", "-", "+"]))
            closer = "" if opener in ("-", "+") else (")" if opener != "[" else "]")
            text = text[:pos] + opener * depth + text[pos:end] + closer * depth + text[end:]
        elif kind == "huge":
            text = text[:pos] + draw(st.sampled_from(HUGE)) + text[pos:]
        elif kind == "long":
            sep = draw(st.sampled_from(["", "+", ";", "\n", " * "]))
            text = sep.join([text] * draw(st.sampled_from([2, 10, 100, 400])))
        elif kind == "unbalance":
            text = text[:pos] + draw(st.sampled_from(["(", ")", "((", "))", "[", "]"])) + text[pos:]
        else:  # rotate: move two slices around
            text = text[end:] + text[pos:end] + text[:pos]
        text = text[: 10 * MAX_LENGTH]  # long enough to be refused; repeated mutations could otherwise reach megabytes
    return text


# mostly still valid: these reach evaluation, the trace and derive's symbolic pass more often
SWAPPED_EXPRESSIONS = mutated(VALID_EXPRESSIONS, kinds=("swap",))

VALUE_TEXTS = ["-2", "0", "0.5", "1e308", "[1, -2.5, 3]", "[[1, 2], [3, 4]]", "[]", "[[1], [2]]", "[[1, 2, 3]]"]
MUTATED_VALUES = st.one_of(st.sampled_from(VALUE_TEXTS), mutated(VALUE_TEXTS), ARBITRARY_TEXT)
SHAPE_TEXTS = ["3", "2x3", "3x1", "1x3", "Bx3", "scalar", "()", "2,3", "2×3"]
MUTATED_SHAPES = st.one_of(st.sampled_from(SHAPE_TEXTS), mutated(SHAPE_TEXTS))

_EVAL_VALUES = [-2.0, 0.0, 3.5, np.array([0.5, -1.0, 2.0]), np.arange(6.0).reshape(2, 3) - 2, np.ones((3, 1))]

# --- the guard ----------------------------------------------------------------------------------


def _refuse(*args, **kwargs):
    raise AssertionError("the parser must never execute anything (os.system/os.popen was called)")


def _from_a_module_file(filename) -> bool:
    """Code compiled from a real ``.py`` file: a lazy import (rich loads its unicode tables on first use)."""
    return isinstance(filename, str) and filename.endswith(".py") and os.path.isfile(filename)


def _called_by_typing() -> bool:
    """``typing.ForwardRef`` compiles and evaluates string annotations of the libraries (rich), never our input."""
    return sys._getframe(2).f_globals.get("__name__") == "typing"


_real_compile, _real_exec, _real_eval = builtins.compile, builtins.exec, builtins.eval


def _tree_only_compile(source, filename, mode, flags=0, *args, **kwargs):
    if not (flags & ast.PyCF_ONLY_AST or _from_a_module_file(filename) or _called_by_typing()):
        raise AssertionError(f"compile() was called to produce code from {filename!r}, not just a syntax tree")
    return _real_compile(source, filename, mode, flags, *args, **kwargs)


def _module_code_only(real):
    def guarded(code, *args, **kwargs):
        if not (hasattr(code, "co_filename") and _from_a_module_file(code.co_filename) or _called_by_typing()):
            raise AssertionError(f"{real.__name__}() was called on {code!r:.100}: the parser must never execute text")
        return real(code, *args, **kwargs)

    return guarded


@contextlib.contextmanager
def no_execution():
    """Booby-trap every way the text could run: eval/exec of anything but an imported module's code,
    compile() to code (only syntax trees, or a module file being imported), os.system/popen.  (typing's
    ForwardRef, which compiles the string annotations of rich, is let through.)"""
    with contextlib.ExitStack() as stack:
        for target, replacement in [
            ("builtins.eval", _module_code_only(_real_eval)),
            ("builtins.exec", _module_code_only(_real_exec)),
            ("builtins.compile", _tree_only_compile),
            ("os.system", _refuse),
            ("os.popen", _refuse),
        ]:
            stack.enter_context(mock.patch(target, replacement))
        yield


def _main_quiet(argv: list[str]) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main(argv)


_main_quiet(["explain", "x * y", "--at", "x=1", "y=2"])  # import everything the commands need before the guard
_main_quiet(["derive", "E = sum(x * x)", "--shape", "x=3"])


def call(fn, *args, **kwargs):
    """``(result, None)`` or ``(None, ParseError)``; any other exception propagates; always within TIME_BOUND."""
    start = time.perf_counter()
    error = None
    result = None
    try:
        with no_execution(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SyntaxWarning)
            result = fn(*args, **kwargs)
    except ParseError as exc:
        error = exc
    elapsed = time.perf_counter() - start
    leaked = [str(w.message) for w in caught if issubclass(w.category, SyntaxWarning)]
    assert not leaked, f"Python's SyntaxWarning reached the user: {leaked}"
    assert elapsed < TIME_BOUND, f"{fn.__name__} took {elapsed:.2f} s on {args!r:.200}"
    if error is not None:
        msg = str(error)
        assert msg and "\n" not in msg and "\r" not in msg, f"not a one-line message: {msg!r}"
        assert error.kind in ("syntax", "not allowed", "limit", "unknown name", "missing value", "shape", "value")
    return result, error


_ERROR_LINE = re.compile(r"^chainrule( explain| derive)?: error: ")


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """Run the command in-process; exit 0, or 2 with a one-line error (argparse adds its usage lines)."""
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with no_execution(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    elapsed = time.perf_counter() - start
    assert elapsed < TIME_BOUND, f"{argv!r:.200} took {elapsed:.2f} s"
    stdout, stderr = out.getvalue(), err.getvalue()
    derive_check_failed = argv[0] == "derive" and rc == 1 and stderr.startswith("chainrule derive: check FAILED")
    assert rc in (0, 2) or derive_check_failed, f"exit {rc}: {stderr!r:.300}"  # derive exits 1 on a failed check
    assert "Traceback" not in stderr
    if rc == 2:
        lines = stderr.strip("\n").split("\n")
        assert _ERROR_LINE.match(lines[-1]), stderr
        if not stderr.startswith("usage:"):
            assert len(lines) == 1, f"not a one-line error: {stderr!r}"
    elif "--help" not in argv and "-h" not in argv:
        assert stdout.strip()
    return rc, stdout, stderr


def _expression_argv(expr: str, at: list[str]) -> list[str]:
    # a leading '-' would be read as an option: put the expression after '--', as a user would have to
    if expr.startswith("-"):
        return ["explain", "--at", *at, "--", expr]
    return ["explain", expr, "--at", *at]


# --- parser functions ---------------------------------------------------------------------------

fuzz_settings = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@fuzz_settings
@given(text=st.one_of(ARBITRARY_TEXT, mutated(VALID_EXPRESSIONS), mutated([p for p, _ in VALID_PROGRAMS])))
def test_parser_functions_parse_or_raise_parse_error(text):
    node, e1 = call(parse_expression, text)
    if node is not None:
        assert isinstance(names_in(node), list)
    prog, e2 = call(parse_program, text)
    if prog is not None:
        assert prog.statements and all(isinstance(n, str) for n in prog.inputs)
    value, e3 = call(parse_value, text)
    assert value is None or isinstance(value, (float, np.ndarray))
    event(f"parse_expression: {e1.kind if e1 else 'ok'}")
    event(f"parse_program: {e2.kind if e2 else 'ok'}")
    for error in (e1, e2, e3):
        if error is not None and error.column is not None:  # a position inside the text (or just after it)
            assert 1 <= error.column <= len(text) + 1, (error.column, len(text))
    call(parse_assignments, [text, "x=" + text])


@fuzz_settings
@given(text=st.one_of(SWAPPED_EXPRESSIONS, mutated(VALID_EXPRESSIONS)), data=st.data())
def test_mutated_expressions_evaluate_or_raise_parse_error(text, data):
    node, _ = call(parse_expression, text)
    if node is None:
        return
    env = {n: cr.tensor(data.draw(st.sampled_from(_EVAL_VALUES)), requires_grad=True) for n in names_in(node)}
    with np.errstate(all="ignore"):
        result, error = call(evaluate, node, env)
    event(f"evaluate: {error.kind if error else 'ok'}")
    assert result is None or isinstance(result, (Tensor, float))


@fuzz_settings
@given(
    expr=st.one_of(st.sampled_from(VALID_EXPRESSIONS), SWAPPED_EXPRESSIONS, mutated(VALID_EXPRESSIONS), ARBITRARY_TEXT),
    data=st.data(),
)
def test_explain_command_exits_0_or_2(expr, data):
    try:
        names = names_in(parse_expression(expr))
    except ParseError:
        names = ["x"]
    values = data.draw(st.sampled_from([st.sampled_from(VALUE_TEXTS), MUTATED_VALUES]))  # half the time all valid
    at = [f"{n}={data.draw(values)}" for n in names] or ["x=1"]
    with np.errstate(all="ignore"):
        rc, _, _ = run_cli(_expression_argv(expr, at))
    event(f"explain: exit {rc}")


@fuzz_settings
@given(data=st.data())
def test_derive_parses_or_raises_parse_error(data):
    base, shapes = data.draw(st.sampled_from(VALID_PROGRAMS))
    program = data.draw(st.one_of(mutated([base], kinds=("swap",)), mutated([base]), ARBITRARY_TEXT))
    try:
        inputs = parse_program(program).inputs
    except ParseError:
        inputs = list(shapes)
    shapes = {n: shapes.get(n, data.draw(st.sampled_from([(), (3,), (2, 3), (3, 1), ("B", 3)]))) for n in inputs}
    with np.errstate(all="ignore"):
        result, error = call(cr.derive, program, shapes)
    event(f"derive: {error.kind if error else 'ok'}")
    if result is not None:
        assert str(result) and result.latex()
        assert all(ln.name.startswith("d") for ln in result.backward)


@fuzz_settings
@given(data=st.data())
def test_derive_command_exits_0_or_2(data):
    base, shapes = data.draw(st.sampled_from(VALID_PROGRAMS))
    program = data.draw(st.one_of(st.just(base), mutated([base]), ARBITRARY_TEXT))
    shape_args = [f"{n}={'x'.join(map(str, s)) or 'scalar'}" for n, s in shapes.items()]
    if data.draw(st.booleans()):
        shape_args[0] = shape_args[0].split("=")[0] + "=" + data.draw(MUTATED_SHAPES)
    argv = ["derive", program, "--shape", *shape_args]
    if program.startswith("-"):
        argv = ["derive", "--shape", *shape_args, "--", program]
    with np.errstate(all="ignore"):
        rc, _, _ = run_cli(argv)
    event(f"derive command: exit {rc}")


# --- nothing is executed --------------------------------------------------------------------------


@pytest.mark.parametrize("template", _INJECTIONS)
def test_code_injection_is_refused_and_never_runs(template, tmp_path):
    canary = tmp_path / "pwned"
    text = template.format(p=canary)
    for fn, arg in [
        (parse_expression, text),
        (parse_program, text),
        (parse_program, "y = " + text),
        (parse_program, "a = x; E = sum(" + text + ")"),
        (parse_value, text),
        (parse_value, "[" + text + "]"),
    ]:
        result, error = call(fn, arg)
        assert error is not None, f"{fn.__name__}({arg!r}) was accepted"
        assert error.kind in ("syntax", "not allowed", "unknown name", "value")
    _, error = call(cr.derive, "E = sum(" + text + ")", {"x": (3,)})
    assert error is not None
    rc, _, stderr = run_cli(_expression_argv(text, ["x=1"]))
    assert rc == 2
    rc, _, _ = run_cli(["explain", "x", "--at", f"x={text}"])
    assert rc == 2
    rc, _, _ = run_cli(["derive", "E = sum(" + text + ")", "--shape", "x=3"])
    assert rc == 2
    assert not canary.exists()


@fuzz_settings
@given(
    template=st.sampled_from(_INJECTIONS),
    junk=st.lists(st.sampled_from([t for t in TOKENS if "#" not in t]), max_size=4).map("".join),
)
def test_injections_with_junk_are_refused(template, junk, tmp_path_factory):
    # ("#" is left out of the junk: "x#open(...)" is the name x and a comment, rightly accepted)
    canary = tmp_path_factory.getbasetemp() / "pwned-fuzz"
    text = template.format(p=canary)
    for candidate in (junk + text, text + junk, "exp(" + text + ")" + junk):
        for fn in (parse_expression, parse_program, parse_value):
            _, error = call(fn, candidate)
            assert error is not None, f"{fn.__name__}({candidate!r}) was accepted"
    assert not canary.exists()


# --- limits: refused up front, with a clear message -----------------------------------------------


def _short(value):
    """Readable test ids for very long inputs."""
    return f"{value[:24]}...({len(value)} chars)" if isinstance(value, str) and len(value) > 40 else None


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("2**10**10", "too large"),
        ("x ** 10 ** 10", "too large"),
        ("x ** (2 ** 7)", "too large"),
        ("x ** 1e308", "too large"),
        ("x ** (1e308 * 10)", "too large"),
        ("x ** (1 / 0)", "too large"),
        ("9e999", "not finite"),
        ("x * -9e999", "not finite"),
        ("1" * 400, "400 digits) is not finite"),  # bug 1: OverflowError escaped
        ("x + " + "9" * 1000, "1000 digits"),
        ("sum(x, axis=9e999)", "axis must be a small integer"),  # bug 2: OverflowError escaped
        ("sum(x, axis=-9e999)", "axis must be a small integer"),
        ("sum(x, axis=(0, 1e999))", "axis must be a small integer"),
        ("sum(x, axis=1e400-1e400)", "axis must be a small integer"),
        ("(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1), "nested too deeply"),
        ("exp(" * 300 + "x" + ")" * 300, "nested too deeply"),
        ("-" * 1999 + "x", "nested too deeply"),
        ("x" + "**x" * 600, "nested too deeply"),
        ("x" + "+x" * (MAX_LENGTH // 2), "characters long"),
        ("x" * (MAX_LENGTH + 1), "characters long"),
    ],
    ids=_short,
)
def test_pathological_expressions_are_refused_quickly(text, fragment):
    _, error = call(parse_expression, text)
    assert error is not None and fragment in str(error), error
    _, error = call(parse_program, "E = " + text)
    assert error is not None


@pytest.mark.parametrize("text", ["1" * 400, "[1, " + "2" * 500 + "]", "[9e999]", "-" * 1500 + "1"], ids=_short)
def test_pathological_values_are_refused_or_read(text):
    value, error = call(parse_value, text)
    if text.startswith("-"):
        assert value == 1.0  # an even number of minus signs: a legitimate (if odd) number
    else:
        assert error is not None and "not finite" in str(error)  # bug 1 also hit --at values


@pytest.mark.parametrize("shape", [(-1,), ("B", -3), (2.5,), None, 3.0, (True,), {"rows": 3}, [[2]]])
def test_derive_refuses_bad_shapes_with_parse_error(shape):
    # bug 3: negative or non-integer dimensions, or a shape that is no sequence, escaped as ValueError/TypeError
    _, error = call(cr.derive, "E = sum(x)", {"x": shape})
    assert error is not None and error.kind == "shape" and "shape of x" in str(error)


@pytest.mark.parametrize(
    "expr, shapes",
    [
        ("a * b", {"a": (100_000, 1), "b": (1, 100_000)}),
        ("maximum(a, b)", {"a": (5000, 1), "b": (1, 5000)}),
        ("a @ b", {"a": (100_000, 1), "b": (1, 100_000)}),
        ("matmul(a, b)", {"a": (7, 5000, 1), "b": (1, 5000)}),
    ],
)
def test_results_too_large_are_refused_before_they_are_computed(expr, shapes):
    # bug 4: an outer product of two allowed inputs tried to allocate gigabytes (or raised NumPy's MemoryError)
    env = {n: cr.tensor(np.zeros(s), requires_grad=True) for n, s in shapes.items()}
    _, error = call(evaluate, parse_expression(expr), env)
    assert error is not None and error.kind == "limit" and f"limit {MAX_RESULT_ELEMENTS:,}" in str(error)
    _, error = call(cr.derive, "E = sum(" + expr + ")", shapes)
    assert error is not None and error.kind == "limit"


def test_size_limit_leaves_ordinary_products_alone():
    env = {"W": cr.tensor(np.ones((300, 200))), "v": cr.tensor(np.ones((200, 1))), "b": cr.tensor(np.ones((300, 1)))}
    out, error = call(evaluate, parse_expression("W @ v + b + W @ (W.T @ W @ v) + sum(v @ v.T)"), env)
    assert error is None and out.shape == (300, 1)


# --- evaluation-time bounds: values that explode give inf/NaN, not a hang or a crash ---------------


@pytest.mark.parametrize(
    "expr, at",
    [
        ("exp(exp(exp(x)))", ["x=10"]),
        ("x ** 99", ["x=1e10"]),
        ("x ** -99", ["x=0"]),
        ("x ** 100 * x ** 100 * x ** 100", ["x=1e300"]),
        ("exp(" * 50 + "x" + ")" * 50, ["x=1"]),
        ("log(x) + sqrt(x)", ["x=-1"]),
        ("x / y", ["x=0", "y=0"]),
        ("softmax(x, axis=0) * logsumexp(x)", ["x=[1e308, -1e308, 0]"]),
        ("sum(x ** 99 @ x ** 99)", ["x=[[1e5, 2], [3, 4]]"]),
    ],
    ids=_short,
)
def test_numerical_explosions_do_not_hang_or_crash(expr, at):
    with np.errstate(all="ignore"):
        rc, stdout, _ = run_cli(["explain", expr, "--at", *at])
    assert rc == 0 and "\n  f = " in stdout
    node = parse_expression(expr)
    env = {k: cr.tensor(parse_value(v), requires_grad=True) for k, v in parse_assignments(at).items()}
    with np.errstate(all="ignore"):
        out, error = call(evaluate, node, env)
        assert error is None
        call(out.sum().backward)
    with np.errstate(all="ignore"):
        d, error = call(cr.derive, "E = sum(" + expr + ")", {n: (3,) for n in env})
    assert error is None or error.kind == "shape"


@pytest.mark.parametrize("text", ["# a comment", "\n\n# only comments\n", "#__import__('os')", "\\\n"])
def test_a_program_of_comments_is_refused(text):
    # bug 6: parse_program returned a Program with no statements and derive then raised IndexError
    _, error = call(parse_program, text)
    assert error is not None and error.kind == "syntax"
    _, error = call(cr.derive, text, {})
    assert error is not None
    assert run_cli(["derive", text])[0] == 2


def test_a_newline_in_a_shape_keeps_the_error_on_one_line():
    # bug 5: "--shape W=\\\n3" printed a two-line error message
    rc, _, stderr = run_cli(["derive", "E = sum(W)", "--shape", "W=\\\n3"])
    assert rc == 2 and stderr.count("\n") == 1 and "W='\\\\\\n3'" in stderr


@pytest.mark.parametrize("text", ["\r0", "a = 1\rb = a * x\rE = sum(b)", "a = x\r\nE = sum(a)", "a = x\rE = open(a)"])
def test_carriage_returns_end_lines_as_python_says(text):
    # bug 7: lines were split at "\n" only, so a column after a lone "\r" raised IndexError
    prog, error = call(parse_program, text)
    if "open" in text:
        assert error is not None and error.column == text.index("open") + 1
    else:
        assert error is None and prog.statements[-1].text == text.replace("\r\n", "\r").split("\r")[-1]


@pytest.mark.parametrize(
    "expr, at, want",
    [
        ("x * exp(2)", "x=1", "df/dx = 7.3891"),
        ("x / 2 ** 2", "x=3", "df/dx = 0.2500"),
        ("-(x + y) * z / 2 ** 2", "x=1", None),
        ("x * exp(1000)", "x=1", "df/dx = inf"),
        ("x * sum(exp(2) * 3)", "x=1", "df/dx = 22.1672"),
    ],
)
def test_constant_subexpressions_are_traced_as_constants(expr, at, want):
    # bug 8: a constant computed as a tensor (exp(2), 2 ** 2) was an input that trace had no label for: KeyError
    names = names_in(parse_expression(expr))
    rc, stdout, _ = run_cli(["explain", expr, "--at", *[f"{n}={at.split('=')[1]}" for n in names]])
    assert rc == 0
    if want:
        assert want in stdout
    x = cr.tensor(1.0, requires_grad=True)
    tr = cr.trace(x * cr.exp(cr.tensor(2.0)))
    assert "7.389" in str(tr) and x.grad.item() == pytest.approx(np.exp(2.0))


@pytest.mark.parametrize("text", ["1if x", "x + 1_", "x*0x1g", "1or x", "x * 2j"])
def test_python_syntax_warnings_stay_quiet(text):
    # bug 9: ast.parse warned "<unknown>:1: SyntaxWarning: invalid decimal literal" on stderr before the error line
    _, error = call(parse_expression, text)
    assert error is not None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rc, _, stderr = run_cli(["explain", text, "--at", "x=1"])
    assert rc == 2 and stderr.count("\n") == 1
    assert not [w for w in caught if issubclass(w.category, SyntaxWarning)]


@pytest.mark.parametrize(
    "text, at", [("é + open(x)", "open"), ("ééé + y.z", "y.z"), ("a = 1\nbé = open(a)", "open"), ("𝑥 * y[0]", "y[0]")]
)
def test_columns_count_characters_not_utf8_bytes(text, at):
    # bug 10: ast's col_offset counts UTF-8 bytes, so columns after a non-ASCII name were too large
    _, error = call(parse_program, text)
    assert error.column == text.index(at) + 1


@pytest.mark.parametrize("fn", [parse_expression, parse_program, parse_value])
@pytest.mark.parametrize("value", [None, 3, b"x + y", ["x"]])
def test_non_text_input_is_a_parse_error(fn, value):
    # bug 11: parse_expression and parse_value called .strip() before the type check (AttributeError)
    _, error = call(fn, value)
    assert error is not None and "expected the expression as a string" in str(error)


@pytest.mark.parametrize("text", ["+", "x +", "é+", "exp(x) *", "x\\"])
def test_syntax_errors_at_the_end_have_a_column_inside_the_text_or_none(text):
    # bug 12: Python reports offset 0 for some errors at the end of input, which became "column 0"
    for fn in (parse_expression, parse_program, parse_value):
        _, error = call(fn, text)
        assert error.column is None or 1 <= error.column <= len(text) + 1


def test_long_assignments_are_not_echoed_in_full():
    # bug 13: a malformed --at item was echoed whole in the message (megabytes for a megabyte argument)
    _, error = call(parse_assignments, ["v;" + "x" * 100_000])
    assert len(str(error)) < 200 and "100002 characters" in str(error)
    _, error = call(parse_assignments, [None])
    assert error is not None and "expected NAME=VALUE text" in str(error)


@pytest.mark.parametrize("program", ["x = sum(x * x)", "a = x; x = a * 2; E = sum(x)", "E = sum(exp(E))"])
def test_a_name_defined_in_terms_of_itself_is_refused(program):
    # bug 14: "x = sum(x * x)" made x both an input and the output, and derive raised KeyError
    _, error = call(parse_program, program)
    assert error is not None and error.kind == "not allowed"
    _, error = call(cr.derive, program, {"x": (3,), "E": ()})
    assert error is not None


@pytest.mark.parametrize("shape", ["²3", "3x²", "3x¹", "3" * 10_000, "0" * 5000 + "1" * 10])
def test_odd_digits_in_a_shape_are_refused(shape):
    # bug 15: "²".isdigit() is True but int("²") raises ValueError, which escaped from chainrule derive
    # bug 16: so did int() of a 10,000-digit dimension (Python's 4300-digit limit)
    rc, _, stderr = run_cli(["derive", "E = sum(W)", "--shape", f"W={shape}"])
    assert rc == 2 and ("write the shape as numbers" in stderr or "between 1 and 1000000" in stderr)
    assert run_cli(["derive", "E = sum(W)", "--shape", "W=" + "0" * 5000 + "3"])[0] == 0


@pytest.mark.parametrize("expr, at, want", [("x", "x=3", "df/dx = 1.0000"), ("+x", "x=[1, 2]", "df/dx = [1., 1.]")])
def test_an_expression_that_is_its_input_has_gradient_one(expr, at, want):
    # bug 17: explain "x" printed "df/dx = 0 (f does not depend on it)": trace did not seed an output that is a leaf
    rc, stdout, _ = run_cli(["explain", expr, "--at", at])
    assert rc == 0 and want in stdout
    x = cr.tensor(3.0, requires_grad=True)
    cr.trace(x)
    assert x.grad.item() == 1.0


@pytest.mark.parametrize("program", ["E = sum(x.T * x)", "E = sum(x * transpose(x))", "E = sum(0 * x + x.T)"])
def test_derive_keeps_the_broadcast_shape_of_a_dropped_factor_of_ones(program):
    # bug 18: simplify turned ones(3, 3) ⊙ xᵀ into xᵀ (shape 1×3), and evaluating dx raised
    # "cannot reshape array of size 1 into shape (3,1)"
    d, error = call(cr.derive, program, {"x": (3, 1)})
    assert error is None and d.ok  # the check (central differences of the forward) passed
    assert run_cli(["derive", program, "--shape", "x=3x1"])[0] == 0
