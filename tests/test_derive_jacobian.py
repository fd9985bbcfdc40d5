"""derive's Jacobian notes against Jacobians built explicitly (central differences of the forward), small instances."""

import math

import numpy as np
import pytest

import chainrule as cr
from chainrule.explain.parse import evaluate, parse_expression

ZERO = 1e-7


def explicit(fwd, operand_values, role, h=1e-6):
    """∂fwd/∂(operand role) by central differences, as a (out.size × in.size) matrix."""
    x = np.array(operand_values[role], dtype=np.float64)
    out0 = np.asarray(fwd(operand_values))
    cols = []
    for j in range(x.size):
        plus, minus = x.copy().reshape(-1), x.copy().reshape(-1)
        plus[j] += h
        minus[j] -= h
        vp = list(operand_values)
        vm = list(operand_values)
        vp[role] = plus.reshape(x.shape)
        vm[role] = minus.reshape(x.shape)
        cols.append(((np.asarray(fwd(vp)) - np.asarray(fwd(vm))) / (2 * h)).reshape(-1))
    return np.stack(cols, axis=1).reshape(out0.size, x.size)


def holds(kind, J, note, values):
    """The claim ``kind`` about ``J``, tested from its definition (independently of derive's code)."""
    nz = np.abs(J) > ZERO
    if kind == "identity":
        return J.shape[0] == J.shape[1] and np.allclose(J, np.eye(J.shape[0]), atol=1e-6)
    if kind == "negated identity":
        return J.shape[0] == J.shape[1] and np.allclose(J, -np.eye(J.shape[0]), atol=1e-6)
    if kind == "diagonal":
        return J.shape[0] == J.shape[1] and not np.any(nz & ~np.eye(J.shape[0], dtype=bool))
    if kind == "stack of identities":
        one = np.allclose(np.abs(J[nz]), 1.0, atol=1e-6)
        return one and np.all(nz.sum(axis=1) == 1) and J.shape[0] > J.shape[1]
    if kind == "stack of diagonals":
        return np.all(nz.sum(axis=1) <= 1) and J.shape[0] > J.shape[1]
    if kind == "row of ones":
        return J.shape[0] == 1 and np.allclose(J, J[0, 0], atol=1e-6)
    if kind == "rows of ones per slice":
        return np.all(nz.sum(axis=0) == 1)  # each input entry feeds exactly one output (its slice)
    if kind == "block-diagonal per slice":
        return np.array_equal(nz, _blocks(note))
    if kind == "selection":
        return np.all(nz.sum(axis=1) <= 1) and np.allclose(J[nz], np.round(J[nz] * 2) / 2, atol=1e-6)
    if kind == "permutation":
        return np.all(nz.sum(axis=0) == 1) and np.all(nz.sum(axis=1) == 1) and np.allclose(J[nz], 1.0)
    if kind == "Kronecker product with an identity":
        return _kron_ok(J, note, values)
    if kind == "dense":
        if note.primitive.name == "matmul":
            return _kron_ok(J, note, values)
        return np.all(nz)
    raise AssertionError(f"unknown structure {kind!r}")


def _blocks(note):
    """The block pattern of softmax over its axes, built by brute force from which entries share a slice."""
    shape = note.operands[note.role][1]
    axes = note.params[0]
    axes = tuple(range(len(shape))) if axes is None else axes
    idx = list(np.ndindex(*shape))
    key = [tuple(i for a, i in enumerate(ix) if a not in axes) for ix in idx]
    return np.array([[key[r] == key[c] for c in range(len(idx))] for r in range(len(idx))])


def _kron_ok(J, note, values):
    """matmul: wrt x the Jacobian is I ⊗ yᵀ, wrt y it is x ⊗ I (2-D operands; 1-D are columns/rows)."""
    x, y = (np.asarray(v, dtype=np.float64) for v in values)
    if x.ndim > 2 or y.ndim > 2:
        return True  # batched: only the nonzero count is compared
    x2 = x.reshape(1, -1) if x.ndim == 1 else x
    y2 = y.reshape(-1, 1) if y.ndim == 1 else y
    if note.role == 0:
        built = np.kron(np.eye(x2.shape[0]), y2.T)
    else:
        built = np.kron(x2, np.eye(y2.shape[1]))
    return np.allclose(J, built, atol=1e-6)


def check_note(note, rng):
    """Rebuild the note's Jacobian from the primitive's forward on random operands; return the failures found."""
    prim = note.primitive
    values = []
    for kind, v in note.operands:
        if kind == "tensor":
            values.append(rng.uniform(0.3, 1.5, v) * rng.choice([-1.0, 1.0], v) if v else float(rng.uniform(0.3, 1.5)))
        else:
            values.append(v)
    if prim.name in ("log", "sqrt", "pow"):  # keep inside the domain
        values = [np.abs(v) if isinstance(v, np.ndarray) else v for v in values]
    J = explicit(lambda vals: prim.fwd(*vals, *note.params), values, note.role)
    problems = []
    if J.shape != (note.rows, note.cols):
        problems.append(f"size {J.shape} vs {(note.rows, note.cols)}")
    count = int(np.sum(np.abs(J) > ZERO))
    if count > note.structure.nonzeros or (note.structure.exact and count != note.structure.nonzeros):
        problems.append(f"nonzeros {count} vs {note.structure.nonzeros}")
    tensor_values = [v for (kind, _), v in zip(note.operands, values) if kind == "tensor"]
    if not holds(note.structure.kind, J, note, tensor_values):
        problems.append(f"structure {note.structure.kind!r} does not hold")
    return problems


def check_derivation(d, seed=0):
    rng = np.random.default_rng(seed)
    failures = []
    for note in d.jacobians:
        problems = check_note(note, rng)
        if problems:
            failures.append((note.operation, note.input, problems))
    return failures


def test_dense_layer_notes_are_true():
    d = cr.derive("z = W @ a + b; h = sigmoid(z); E = sum(h)", {"W": (5, 3), "a": (3, 1), "b": (5, 1)})
    notes = {(j.operation, j.input): j.structure.kind for j in d.jacobians}
    assert notes[("W @ a", "a")] == "dense"  # it is W (the issue's seed question)
    assert notes[("W @ a", "W")] == "Kronecker product with an identity"
    assert notes[("sigmoid(z)", "z")] == "diagonal"
    assert notes[("sum(h)", "h")] == "row of ones"
    assert check_derivation(d) == []


def test_structures_of_the_issue():
    d = cr.derive(
        "l = log_softmax(x, axis=1); s = softmax(x, axis=1); r = sum(x, axis=1); q = x + c; "
        "E = sum(l * s) + sum(r) + sum(q)",
        {"x": (3, 4), "c": (4,)},
    )
    kinds = {(j.operation, j.input): j for j in d.jacobians}
    assert kinds[("log_softmax(x, axis=1)", "x")].structure.kind == "block-diagonal per slice"
    assert "I − 1 pᵀ" in kinds[("log_softmax(x, axis=1)", "x")].structure.description
    assert "diag(p) − p pᵀ" in kinds[("softmax(x, axis=1)", "x")].structure.description
    assert kinds[("sum(x, axis=1)", "x")].structure.kind == "rows of ones per slice"
    assert kinds[("x + c", "c")].structure.kind == "stack of identities"
    assert check_derivation(d) == []


def test_a_false_note_is_caught():
    """The checker itself: a note claiming 'diagonal' for a matmul, or a wrong count, is reported."""
    d = cr.derive("z = W @ a; E = sum(z)", {"W": (3, 2), "a": (2, 1)})
    note = next(j for j in d.jacobians if j.input == "a")
    note.structure.kind = "diagonal"
    assert any("structure" in p for p in check_note(note, np.random.default_rng(0)))
    note.structure.kind = "dense"
    note.structure.nonzeros += 1
    assert any("nonzeros" in p for p in check_note(note, np.random.default_rng(0)))


def test_rebuilt_from_the_program_syntax():
    """of_expr is the program's own syntax: evaluate it with the forward values and differentiate numerically."""
    program = "z = W @ a + b; h = tanh(z); E = sum(h * h)"
    shapes = {"W": (3, 2), "a": (2, 2), "b": (3, 1)}
    d = cr.derive(program, shapes)
    rng = np.random.default_rng(1)
    env = {k: rng.standard_normal(v) for k, v in shapes.items()}
    env["z"] = env["W"] @ env["a"] + env["b"]
    env["h"] = np.tanh(env["z"])
    checked = 0
    for note in d.jacobians:
        if not note.input.isidentifier():
            continue
        node = parse_expression(note.operation)

        def f(vals, node=node, name=note.input):
            scope = {k: cr.tensor(v) for k, v in env.items()}
            scope[name] = cr.tensor(vals[0])
            return evaluate(node, scope).data

        J = explicit(f, [env[note.input]], 0)
        assert J.shape == (note.rows, note.cols)
        assert int(np.sum(np.abs(J) > ZERO)) == note.structure.nonzeros, note.operation
        checked += 1
    assert checked >= 4


@pytest.mark.parametrize(
    "program, shapes",
    [
        ("E = sum(W @ x)", {"W": (3, 4), "x": (4,)}),
        ("E = sum(x @ W)", {"W": (4, 3), "x": (4,)}),
        ("E = sum(x @ W)", {"W": (4, 3), "x": (1, 4)}),
        ("E = sum(x @ y)", {"x": (4,), "y": (4,)}),
        ("E = sum(X @ Y)", {"X": (2, 3, 4), "Y": (2, 4, 2)}),
        ("E = sum(max(x, axis=0)) + sum(logsumexp(x, axis=1))", {"x": (3, 4)}),
        ("E = sum(mean(x, axis=0, keepdims=True) * x.T.T)", {"x": (3, 2)}),
        ("E = sum(relu(x) * y / (y * y + 1))", {"x": (3, 2), "y": (2,)}),
    ],
)
def test_more_structures(program, shapes):
    d = cr.derive(program, shapes)
    assert d.jacobians and check_derivation(d) == []
    assert math.isfinite(d.max_relative_error) and d.ok


def _jacobian(f, x: np.ndarray, order: str) -> np.ndarray:
    """∂f(x)/∂x of a linear map, with inputs and outputs numbered in ``order`` ("C": by rows, "F": by columns)."""
    cols = []
    for k in range(x.size):
        e = np.zeros(x.size)
        e[k] = 1.0
        cols.append(f(e.reshape(x.shape, order=order)).ravel(order=order))
    return np.array(cols).T


def test_the_kronecker_notes_hold_in_both_numberings(capsys):
    """The matmul notes name the row-by-row form (NumPy's) and the by-columns one (vec()): both built explicitly."""
    from chainrule.cli import main

    assert main(["derive", "z = W @ a; E = sum(z)", "--shape", "W=3x2", "a=2x4"]) == 0
    out = capsys.readouterr().out
    assert "I_3 ⊗ aᵀ" in out and "it is aᵀ ⊗ I_3" in out
    assert "W ⊗ I_4" in out and "it is I_4 ⊗ W" in out
    rng = np.random.default_rng(5)
    W, a = rng.standard_normal((3, 2)), rng.standard_normal((2, 4))
    np.testing.assert_allclose(_jacobian(lambda w: w @ a, W, "C"), np.kron(np.eye(3), a.T))
    np.testing.assert_allclose(_jacobian(lambda w: w @ a, W, "F"), np.kron(a.T, np.eye(3)))
    np.testing.assert_allclose(_jacobian(lambda v: W @ v, a, "C"), np.kron(W, np.eye(4)))
    np.testing.assert_allclose(_jacobian(lambda v: W @ v, a, "F"), np.kron(np.eye(4), W))
