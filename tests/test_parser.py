"""The safe expression parser: what it accepts, what it refuses, and that nothing is ever evaluated by Python."""

import builtins
import os

import numpy as np
import numpy.testing  # noqa: F401  (imported before the eval guard: NumPy loads it lazily with exec)
import pytest

import chainrule as cr
from chainrule.explain.parse import (
    MAX_LENGTH,
    ParseError,
    evaluate,
    parse_assignments,
    parse_expression,
    parse_program,
    parse_value,
    precedence_notes,
    to_text,
)


@pytest.fixture(autouse=True)
def no_eval(monkeypatch):
    """Fail loudly if anything reaches Python's eval/exec (ast.parse itself only builds a syntax tree)."""

    def refuse(*a, **k):
        raise AssertionError("eval/exec must never be called")

    for name in ("eval", "exec"):
        monkeypatch.setattr(builtins, name, refuse)


def run(text, **values):
    env = {k: cr.tensor(v, requires_grad=True) for k, v in values.items()}
    return evaluate(parse_expression(text), env)


def test_arithmetic_and_functions_match_numpy():
    x, y, z = -2.0, 5.0, -4.0
    got = run("-(x + y) * z / 2 ** 2 - sigmoid(x) + exp(log(y)) + x ** 3", x=x, y=y, z=z).item()
    want = -(x + y) * z / 4 - 1 / (1 + np.exp(-x)) + y + x**3
    assert got == pytest.approx(want, rel=1e-14)


def test_matrix_expressions_keywords_and_transpose():
    W = np.arange(6.0).reshape(2, 3)
    v = np.array([1.0, -1.0, 2.0])
    got = run("sum(softmax(W @ v, axis=0)) + max(W @ v) + sum(sum(W.T, axis=1, keepdims=True))", W=W, v=v)
    assert got.item() == pytest.approx(1.0 + (W @ v).max() + W.sum())


def test_program_statements_and_inputs():
    prog = parse_program("z = W @ a + b; h = sigmoid(z)\nE = sum(h)")
    assert [s.target for s in prog.statements] == ["z", "h", "E"]
    assert prog.inputs == ["W", "a", "b"]
    assert prog.output == "E"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("x.__class__", "attribute access (.__class__) is not allowed"),
        ("(1).real", "attribute access (.real)"),
        ("__import__('os').system('touch /tmp/chainrule_pwned')", "calling attribute access"),
        ("open('f')", "unknown function 'open'"),
        ("eval('1')", "unknown function 'eval'"),
        ("getattr(x, 'y')", "unknown function 'getattr'"),
        ("(lambda: 1)()", "calling a lambda"),
        ("lambda x: x", "a lambda is not allowed"),
        ("[x for x in y]", "a comprehension is not allowed"),
        ("sum(x for x in y)", "a comprehension is not allowed"),
        ("x[0]", "indexing is not allowed"),
        ("'abc'", "the constant 'abc' is not allowed"),
        ("x if y else z", "an if-expression is not allowed"),
        ("x < y", "a comparison is not allowed"),
        ("x // y", "the operator FloorDiv is not allowed"),
        ("~x", "the unary operator Invert is not allowed"),
        ("(y := 2)", "the walrus operator"),
        ("x ** 1000", "the exponent 1000 is too large"),
        ("x ** -1000", "the exponent -1000 is too large"),
        ("2 ** 10 ** 10", "is too large"),
        ("1e999 * x", "is not finite"),
        ("sum(x, axis=os)", "axis must be a small integer"),
        ("exp(x, y)", "exp() takes 1 argument(s), got 2"),
        ("sum(x, dtype=1)", "does not take the keyword dtype"),
        ("exp", "'exp' is a function"),
        ("_x + 1", "may not start with '_'"),
        ("x +", "invalid syntax"),
        ("", "empty"),
    ],
)
def test_refused_with_a_clear_one_line_message(text, fragment):
    with pytest.raises(ParseError) as info:
        parse_expression(text)
    msg = str(info.value)
    assert fragment in msg
    assert "\n" not in msg
    if info.value.kind in ("not allowed", "syntax") and text:
        assert "allowed" in msg or "takes" in msg or "function" in msg or "start" in msg or "axis" in msg
    assert not os.path.exists("/tmp/chainrule_pwned")


def test_positions_are_reported():
    with pytest.raises(ParseError) as info:
        parse_expression("x + y.z")
    assert info.value.column == 5 and str(info.value).startswith("column 5:")
    with pytest.raises(ParseError) as info:
        parse_program("a = x; b = open(a)")
    assert info.value.column == 12


def test_limits():
    with pytest.raises(ParseError, match="characters long"):
        parse_expression("x+" * MAX_LENGTH + "x")
    with pytest.raises(ParseError, match="nested too deeply"):
        parse_expression("(" * 100 + "x" + ")" * 100)
    with pytest.raises(ParseError, match="nested too deeply"):
        parse_expression("exp(" * 70 + "x" + ")" * 70)
    with pytest.raises(ParseError, match="nested too deeply"):
        parse_expression("-" * 500 + "x")
    with pytest.raises(ParseError) as info:
        parse_expression("x" + "+x" * 300)
    assert info.value.kind == "limit"


def test_programs_refuse_other_statements():
    for text, fragment in [
        ("import os", "Import is not allowed"),
        ("x.y = 1", "assign to one plain name"),
        ("a = 1; a = 2", "assigned twice"),
        ("a = 1; del a", "Delete is not allowed"),
        ("exp = x", "cannot be assigned"),
        ("a, b = x", "assign to one plain name"),
    ]:
        with pytest.raises(ParseError, match=fragment):
            parse_program(text)


def test_missing_value_and_wrong_shapes_have_their_own_messages():
    with pytest.raises(ParseError) as info:
        evaluate(parse_expression("x + q"), {"x": cr.tensor(1.0)})
    assert info.value.kind == "missing value" and "no value for 'q'" in str(info.value)
    with pytest.raises(ParseError) as info:
        run("W @ v", W=np.ones((2, 3)), v=np.ones(2))
    assert info.value.kind == "shape" and "matmul" in str(info.value) and "(2, 3)" in str(info.value)
    assert info.value.column == 1


def test_values():
    assert parse_value("-2") == -2.0
    np.testing.assert_array_equal(parse_value("[[1, 2], [3, -4.5]]"), [[1, 2], [3, -4.5]])
    for bad, fragment in [("[1, [2]]", "ragged"), ("x", "expected a number"), ("'a'", "expected a number")]:
        with pytest.raises(ParseError, match=fragment):
            parse_value(bad)
    assert parse_assignments(["x=-2", "y= 5"]) == {"x": "-2", "y": " 5"}
    with pytest.raises(ParseError, match="NAME=VALUE"):
        parse_assignments(["x"])
    with pytest.raises(ParseError, match="given twice"):
        parse_assignments(["x=1", "x=2"])


def test_parse_error_is_exported_and_is_a_value_error():
    assert cr.ParseError is ParseError
    assert issubclass(ParseError, ValueError)


# --- max(x, y), the parsed form, precedence notes ---------------------------------------------------


def test_max_and_min_of_two_arguments_are_elementwise():
    x, y = cr.tensor([1.0, 5.0], requires_grad=True), cr.tensor([3.0, 2.0], requires_grad=True)
    env = {"x": x, "y": y}
    np.testing.assert_array_equal(evaluate(parse_expression("max(x, y)"), env).data, [3.0, 5.0])
    np.testing.assert_array_equal(evaluate(parse_expression("min(x, y)"), env).data, [1.0, 2.0])
    assert evaluate(parse_expression("max(x)"), env).data == 5.0  # one argument: still the reduction
    with pytest.raises(ParseError, match="max\\(\\) takes 1 argument"):
        parse_expression("max(x, y, x)")


@pytest.mark.parametrize(
    "typed, parsed",
    [
        ("1 / 1 + exp(-p)", "(1 / 1) + exp(-p)"),
        ("1 / (1 + exp(-p))", "1 / (1 + exp(-p))"),
        ("w0*x0 + w1*x1 + w2", "(w0 * x0) + (w1 * x1) + w2"),
        ("-x**2", "-(x ** 2)"),
        ("a - (b - c)", "a - (b - c)"),
        ("x ** -2", "x ** (-2)"),
        ("max(z, w) * 2", "maximum(z, w) * 2"),
        ("sum(W @ a, axis=0).T", "sum(W @ a, axis=0).T"),
    ],
)
def test_parsed_form_reads_back_with_its_parentheses(typed, parsed):
    assert to_text(parse_expression(typed)) == parsed
    # and it means the same: parsing the parsed form gives the same tree (columns aside)
    assert to_text(parse_expression(parsed)) == parsed


def test_precedence_notes_catch_the_division_slip():
    assert precedence_notes("1 / 1 + exp(-p)") == [
        "1 / 1 is evaluated first: / binds tighter than +; to divide by the whole sum write 1 / (...)"
    ]
    assert precedence_notes("1 / (1 + exp(-p))") == []
    assert precedence_notes("(1 / 1) + exp(-p)") == []  # written with parentheses: the learner meant it
    assert "** binds tighter than unary -" in precedence_notes("-x ** 2")[0]
