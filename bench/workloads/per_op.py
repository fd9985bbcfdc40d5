"""Workload 2: per-operation overhead.

A chain of 333 iterations of ``h = tanh(h * 1.0001 + 0.0001)`` (999 small elementwise
ops) on a float32 shape-(4,) input, then ``sum`` and a backward pass to the input.
Reported: microseconds per op = (forward + backward time) / (3 * iterations).  With
four elements the arithmetic is nothing, so this is the framework's own cost per op.

Peers: PyTorch eager, HIPS autograd, and JAX eager (``jax.grad`` without ``jit``: every
primitive is dispatched one by one).  The same chain on a shape-(4096,) input, for
chainrule and PyTorch, shows the cost of memory traffic and of the saved values each
node keeps alive.  All gradients must agree before timing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

TITLE = "per-op overhead: 999-op chain tanh(h * 1.0001 + 0.0001) on shape (4,), forward + backward, us per op"
ITERS = 333
OPS = 3 * ITERS


def chainrule_fn(x0: np.ndarray) -> Callable[[], np.ndarray]:
    import chainrule as cr

    x = cr.tensor(x0, requires_grad=True)

    def go() -> np.ndarray:
        x.grad = None
        h = x
        for _ in range(ITERS):
            h = cr.tanh(h * 1.0001 + 0.0001)
        h.sum().backward()
        return x.grad.data

    return go


def chainrule_scalar_fn(x0: float) -> Callable[[], float]:
    """The same chain on a Python float: chainrule's scalar fast path (math-module rules)."""
    import chainrule as cr

    x = cr.tensor(x0, requires_grad=True)

    def go() -> float:
        x.grad = None
        h = x
        for _ in range(ITERS):
            h = cr.tanh(h * 1.0001 + 0.0001)
        h.backward()
        return x.grad.item()

    return go


def torch_fn(torch: Any, x0: np.ndarray) -> Callable[[], np.ndarray]:
    x = torch.tensor(x0, requires_grad=True)

    def go() -> np.ndarray:
        x.grad = None
        h = x
        for _ in range(ITERS):
            h = torch.tanh(h * 1.0001 + 0.0001)
        h.sum().backward()
        return x.grad.numpy()

    return go


def autograd_fn(x0: np.ndarray) -> Callable[[], np.ndarray]:
    import autograd
    import autograd.numpy as anp

    def f(x: Any) -> Any:
        h = x
        for _ in range(ITERS):
            h = anp.tanh(h * 1.0001 + 0.0001)
        return anp.sum(h)

    g = autograd.grad(f)
    return lambda: g(x0)


def jax_fn(x0: np.ndarray) -> Callable[[], np.ndarray]:
    import jax
    import jax.numpy as jnp

    def f(x: Any) -> Any:
        h = x
        for _ in range(ITERS):
            h = jnp.tanh(h * 1.0001 + 0.0001)
        return jnp.sum(h)

    g = jax.grad(f)  # no jit: eager dispatch of every op
    x = jnp.asarray(x0)
    return lambda: np.asarray(g(x).block_until_ready())


PAIRS = [
    ("chainrule", "torch eager", 0.45),
    ("chainrule (4096,)", "torch (4096,)", 0.8),
    ("chainrule", "HIPS autograd", None),
    ("chainrule", "JAX eager", None),
]


def run(ctx: Any) -> list[dict]:
    from common import compare, compare_rows, rows_vs, stats

    x0 = np.array([0.1, -0.5, 0.9, 2.0], dtype=np.float32)
    big = np.random.default_rng(0).uniform(-2, 2, 4096).astype(np.float32)
    fns = {"chainrule": chainrule_fn(x0)}
    torch = ctx.peer("torch")
    if torch is not None:
        fns["torch eager"] = torch_fn(torch, x0)
    if ctx.peer("autograd") is not None:
        fns["HIPS autograd"] = autograd_fn(x0)
    if ctx.peer("jax") is not None:
        fns["JAX eager"] = jax_fn(x0)
    ref = fns["chainrule"]()
    fns["chainrule (4096,)"] = chainrule_fn(big)
    if torch is not None:
        fns["torch (4096,)"] = torch_fn(torch, big)
        np.testing.assert_allclose(fns["chainrule (4096,)"](), fns["torch (4096,)"](), rtol=1e-4, atol=1e-6)
    # informational: no ratio is taken against chainrule's own scalar path
    fns["chainrule (Python float)"] = scalar = chainrule_scalar_fn(float(x0[0]))
    if not np.isclose(scalar(), ref[0], rtol=1e-4):
        raise AssertionError("per_op: chainrule's scalar path disagrees with its array path")
    for name, fn in fns.items():
        if name in ("chainrule (Python float)", "chainrule (4096,)", "torch (4096,)"):
            continue
        got = fn()
        if not np.allclose(got, ref, rtol=1e-4, atol=1e-6):
            raise AssertionError(f"per_op: {name} gradient {got} differs from chainrule's {ref}")
    warmup, repeat = (2, 10) if ctx.quick else (5, 40)
    cpu: dict[str, list[float]] = {}
    rounds: dict[str, list[list[float]]] = {}
    times = compare(fns, warmup, repeat, block=5, cpu=cpu, rounds=rounds)
    st = {k: stats(v, 1e6 / OPS) for k, v in times.items()}
    for k in st:
        st[k]["cpu_median"] = stats(cpu[k], 1e6 / OPS)["median"]
    values = {k: s["median"] for k, s in st.items()}
    rows = rows_vs("per_op", values, "us/op", {}, extras=st)
    for r in rows:
        r["ratio"] = r["ratio_best"] = None
    return rows + compare_rows("per_op", rounds, PAIRS)
