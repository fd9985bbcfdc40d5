"""The audit: many programs, each exported backward() against central differences at two sizes, each note rebuilt.

For every program: the NumPy module generated from the printed equations agrees with
float64 central differences of the forward program at two values of the symbolic size
(the check derive itself prints), and every local-Jacobian note agrees with the
Jacobian built explicitly on a small instance (tests/test_derive_jacobian.py).
"""

import pytest

import chainrule as cr

from .test_derive_jacobian import check_derivation

B = "B"
PROGRAMS = [
    # dense layers, both layouts
    ("z = W @ a + b; h = sigmoid(z); E = sum(h)", {"W": (4, 3), "a": (3, 1), "b": (4, 1)}, ()),
    ("z = W @ a + b; h = sigmoid(z); E = sum(h)", {"W": (4, 3), "a": (3, B), "b": (4, 1)}, ()),
    ("z = a @ W.T + b; h = sigmoid(z); E = sum(h)", {"a": (B, 3), "W": (4, 3), "b": (4,)}, ()),
    ("z = x @ W + b; h = tanh(z); E = sum(h)", {"x": (B, 3), "W": (3, 4), "b": (4,)}, ()),
    ("z = W @ x; E = sum(relu(z))", {"W": (4, 3), "x": (3,)}, ()),
    ("z = W @ a", {"W": (3, 2), "a": (2, 1)}, ()),
    ("z = a @ W.T + b", {"a": (B, 2), "W": (3, 2), "b": (3,)}, ()),
    # MLPs and losses
    (
        "z1 = W1 @ x + b1; h = relu(z1); s = W2 @ h + b2; p = softmax(s, axis=0); L = -sum(y * log(p))",
        {"W1": (5, 3), "x": (3, 1), "b1": (5, 1), "W2": (4, 5), "b2": (4, 1), "y": (4, 1)},
        ("y",),
    ),
    (
        "h = tanh(x @ W1 + b1); s = h @ W2 + b2; L = -mean(sum(y * log_softmax(s, axis=1), axis=1))",
        {"x": (B, 3), "W1": (3, 5), "b1": (5,), "W2": (5, 4), "b2": (4,), "y": (B, 4)},
        ("y",),
    ),
    ("p = softmax(z, axis=1); L = -mean(sum(y * log(p), axis=1))", {"z": (B, 4), "y": (B, 4)}, ("y",)),
    ("L = mean(sum(logsumexp(s, axis=1)) - sum(y * s))", {"s": (B, 4), "y": (B, 4)}, ("y",)),
    ("h = sigmoid(x @ w + c); L = mean((h - y) ** 2)", {"x": (B, 3), "w": (3, 1), "c": (1,), "y": (B, 1)}, ("y",)),
    (
        "p = sigmoid(x @ w); L = -mean(y * log(p) + (1 - y) * log(1 - p))",
        {"x": (B, 3), "w": (3,), "y": (B,)},
        ("y",),
    ),
    ("r = x @ w - y; L = sum(r * r) / 2", {"x": (B, 3), "w": (3,), "y": (B,)}, ("y",)),
    ("z = x @ W; L = sum(maximum(0, 1 - y * z))", {"x": (B, 3), "W": (3, 2), "y": (B, 2)}, ("y",)),
    # layer norm and friends
    (
        "m = mean(x, axis=1, keepdims=True); v = mean((x - m) ** 2, axis=1, keepdims=True); "
        "y = (x - m) / sqrt(v + 0.00001); L = sum(y * w)",
        {"x": (B, 6), "w": (6,)},
        (),
    ),
    (
        "m = mean(x, axis=1, keepdims=True); c = x - m; v = mean(c * c, axis=1, keepdims=True); "
        "y = c / sqrt(v + 0.001) * g + b; L = sum(y * y)",
        {"x": (B, 4), "g": (4,), "b": (4,)},
        (),
    ),
    ("n = sqrt(sum(x * x, axis=1, keepdims=True)); L = sum(x / n * w)", {"x": (B, 3), "w": (3,)}, ()),
    # attention
    (
        "s = q @ k.T / 2; a = softmax(s, axis=1); o = a @ v; L = sum(o * o)",
        {"q": (B, 3), "k": (4, 3), "v": (4, 2)},
        (),
    ),
    (
        "q = x @ Wq; k = x @ Wk; v = x @ Wv; a = softmax(q @ k.T, axis=1); L = sum(a @ v)",
        {"x": (B, 3), "Wq": (3, 2), "Wk": (3, 2), "Wv": (3, 2)},
        (),
    ),
    # residuals and shared weights
    ("h = x + tanh(x @ W); L = sum(h * h)", {"x": (B, 3), "W": (3, 3)}, ()),
    ("h1 = relu(x @ W); h2 = h1 + relu(h1 @ W); L = sum(h2)", {"x": (B, 3), "W": (3, 3)}, ()),
    ("z = W @ (W @ x); E = sum(z * z)", {"W": (3, 3), "x": (3, 1)}, ()),
    ("a = tanh(W @ x); b = tanh(W @ a); E = sum(a * b)", {"W": (3, 3), "x": (3, B)}, ()),
    ("E = sum(x @ W @ W.T)", {"x": (B, 3), "W": (3, 2)}, ()),
    # reductions
    ("E = sum(max(x, axis=1))", {"x": (B, 4)}, ()),
    ("E = sum(min(x, axis=0) * w)", {"x": (B, 4), "w": (4,)}, ()),
    ("E = sum(mean(x, axis=0) ** 2)", {"x": (B, 3)}, ()),
    ("E = sum(logsumexp(x, axis=0))", {"x": (B, 3)}, ()),
    ("E = mean(x)", {"x": (B, 3)}, ()),
    ("s = sum(x, axis=1, keepdims=True); E = sum(x / s)", {"x": (B, 3)}, ()),
    ("E = sum(sum(x, axis=0) * sum(x, axis=1, keepdims=True))", {"x": (B, 3)}, ()),
    # broadcasting
    ("E = sum((x + b) * c)", {"x": (B, 3), "b": (3,), "c": (B, 1)}, ()),
    ("E = sum(x * y)", {"x": (B, 1), "y": (1, 3)}, ()),
    ("E = sum(exp(x - max(x, axis=1, keepdims=True)))", {"x": (B, 3)}, ()),
    ("E = sum((x - mean(x, axis=0)) ** 2)", {"x": (B, 3)}, ()),
    # scalar graphs
    ("f = (x + y) * z", {"x": (), "y": (), "z": ()}, ()),
    ("q = x * y + z; f = sigmoid(q) * q", {"x": (), "y": (), "z": ()}, ()),
    ("f = log(x) + x * y - sin(y)", {"x": (), "y": ()}, ()),
    ("a = x * x; f = a + a + exp(-a)", {"x": ()}, ()),
    ("f = sqrt(x * x + y * y)", {"x": (), "y": ()}, ()),
    # CS231n-style
    ("q = W @ x; f = sum(q * q)", {"W": (2, 2), "x": (2,)}, ()),
    ("E = sum(softmax(softmax(softmax(x, axis=1), axis=1), axis=1) * w)", {"x": (B, 3), "w": (3,)}, ()),
    ("E = sum(abs(x) * y) + sum(minimum(x, y))", {"x": (B, 3), "y": (B, 3)}, ()),
]


def test_the_audit_has_forty_programs():
    assert len(PROGRAMS) >= 40


@pytest.mark.parametrize("program, shapes, constants", PROGRAMS, ids=[p[0][:40] for p in PROGRAMS])
def test_every_program(program, shapes, constants):
    d = cr.derive(program, shapes, constants=constants)
    assert d.check.status == "passed", d.check.text()
    symbolic = any(dim == B for shape in shapes.values() for dim in shape)
    assert len(d.check.sizes) == (2 if symbolic else 1)
    checked = {name for name in d.check.errors}
    inputs = {n for n in shapes if n not in constants}
    assert {"d" + n for n in inputs} <= checked  # every input's gradient was compared
    assert check_derivation(d) == []


# what each notation looks like when printed -> a fragment its legend line must contain
NOTATION = {
    "⊙": "a ⊙ b",
    " · ": "A · B",
    "ᵀ": "Aᵀ",
    "⊗": "u ⊗ v",
    "Σ_rows": "Σ_rows",
    "Σ_cols": "Σ_cols",
    "Σ_axis": "Σ_axis",
    "keepdims": "keepdims=True",
    "[": "[a > b]",
    "ones(": "ones(m×n)",
    "broadcast(": "broadcast(x, m×n)",
    "reshape(": "reshape(x, m×n)",
    "σ(": "σ(x)",
    "relu(": "relu(x)",
    "softmax(": "softmax(x, axis=k)",
    "log_softmax(": "log_softmax(x, axis=k)",
    "logsumexp(": "logsumexp(x, axis=k)",
    "√(": "√(x)",
    "/B": "symbolic sizes",
    "where(": "where(c, a, b)",
}


def test_every_notation_printed_is_in_the_legend():
    missing = []
    for program, shapes, constants in PROGRAMS:
        d = cr.derive(program, shapes, constants=constants, check=False)
        printed = "\n".join(d._block(d.forward) + d._block(d.backward))
        legend = "\n".join(d.legend())
        for mark, entry in NOTATION.items():
            if mark in printed and entry not in legend:
                missing.append((program, mark))
    assert missing == []
