"""Workload 1: micrograd's two-moons demo with every number a scalar graph node.

MLP 2-16-16-1 (ReLU hidden layers, linear output), 100 points, max-margin hinge loss
mean(relu(1 - y * score)) + 1e-4 * sum(p²), one forward / backward / SGD update per
step with micrograd's schedule lr = 1 - 0.9 k / 100.  The same model code runs on
chainrule scalar tensors (Python-float fast path), micrograd ``Value`` and PyTorch 0-d
float64 tensors; the inputs are constant nodes of each library, built once.  All three
start from the same weights, and the first two losses must agree before timing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

TITLE = "scalar MLP (micrograd two-moons, 2-16-16-1, 100 points), seconds per training step"
SIZES = (2, 16, 16, 1)
ALPHA = 1e-4


def two_moons(n: int = 100, noise: float = 0.1, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The two interleaved half circles of sklearn's make_moons, labels -1 / +1."""
    rng = np.random.default_rng(seed)
    n_out = n // 2
    n_in = n - n_out
    t_out = np.linspace(0, math.pi, n_out)
    t_in = np.linspace(0, math.pi, n_in)
    x = np.concatenate([np.c_[np.cos(t_out), np.sin(t_out)], np.c_[1 - np.cos(t_in), 0.5 - np.sin(t_in)]])
    x += rng.normal(scale=noise, size=x.shape)
    y = np.concatenate([-np.ones(n_out), np.ones(n_in)])
    return x, y


def init_weights(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """micrograd's init: weights uniform(-1, 1), biases 0; one (W[out, in], b[out]) per layer."""
    rng = np.random.default_rng(seed)
    return [(rng.uniform(-1, 1, (o, i)), np.zeros(o)) for i, o in zip(SIZES[:-1], SIZES[1:])]


class ScalarMLP:
    """The demo's network over any scalar autodiff type; `make(value, is_param)` builds a node."""

    def __init__(self, make: Callable[[float, bool], Any], weights: list, x: np.ndarray, y: np.ndarray) -> None:
        self.layers = [
            ([[make(float(w), True) for w in row] for row in W], [make(float(v), True) for v in b]) for W, b in weights
        ]
        self.params = [p for W, b in self.layers for row, bias in zip(W, b) for p in (*row, bias)]
        self.inputs = [[make(float(v), False) for v in xi] for xi in x]
        self.labels = [float(v) for v in y]

    def loss(self) -> Any:
        last = len(self.layers) - 1
        scores = []
        for h in self.inputs:
            for k, (W, b) in enumerate(self.layers):
                acts = [sum((wi * hi for wi, hi in zip(row, h)), bias) for row, bias in zip(W, b)]
                h = acts if k == last else [a.relu() for a in acts]
            scores.append(h[0])
        losses = [(1 + -yi * si).relu() for yi, si in zip(self.labels, scores)]
        data_loss = sum(losses) * (1.0 / len(losses))
        reg_loss = ALPHA * sum(p * p for p in self.params)
        return data_loss + reg_loss


# --- one training step per library -------------------------------------------------------
def chainrule_step(model: ScalarMLP, k: int) -> float:
    loss = model.loss()
    loss.backward()
    lr = 1.0 - 0.9 * (k % 100) / 100
    for p in model.params:
        p.data = p.item() - lr * p.grad.item()
        p.grad = None
    return loss.item()


def micrograd_step(model: ScalarMLP, k: int) -> float:
    loss = model.loss()
    for p in model.params:
        p.grad = 0
    loss.backward()
    lr = 1.0 - 0.9 * (k % 100) / 100
    for p in model.params:
        p.data -= lr * p.grad
    return loss.data


def make_torch_step(torch: Any) -> Callable[[ScalarMLP, int], float]:
    def torch_step(model: ScalarMLP, k: int) -> float:
        loss = model.loss()
        loss.backward()
        lr = 1.0 - 0.9 * (k % 100) / 100
        with torch.no_grad():
            for p in model.params:
                p.sub_(p.grad, alpha=lr)
                p.grad = None
        return loss.item()

    return torch_step


def build_chainrule() -> tuple[ScalarMLP, Callable]:
    import chainrule as cr

    x, y = two_moons()
    return ScalarMLP(lambda v, g: cr.tensor(v, requires_grad=g), init_weights(), x, y), chainrule_step


def build(ctx: Any) -> dict[str, tuple[ScalarMLP, Callable]]:
    x, y = two_moons()
    w = init_weights()
    models = {"chainrule": build_chainrule()}
    mg = ctx.peer("micrograd")
    if mg is not None:
        models["micrograd"] = (ScalarMLP(lambda v, g: mg.Value(v), w, x, y), micrograd_step)
    torch = ctx.peer("torch")
    if torch is not None:
        make = lambda v, g: torch.tensor(v, dtype=torch.float64, requires_grad=g)  # noqa: E731
        models["torch 0-d"] = (ScalarMLP(make, w, x, y), make_torch_step(torch))
    return models


def run(ctx: Any) -> list[dict]:
    from common import compare, rows_vs, stats

    models = build(ctx)
    counters = dict.fromkeys(models, 0)

    def stepper(name: str) -> Callable[[], float]:
        model, step = models[name]

        def go() -> float:
            counters[name] += 1
            return step(model, counters[name] - 1)

        return go

    fns = {name: stepper(name) for name in models}
    # Check: from the same weights, the first two losses agree (the second one tests the gradients too).
    first = {name: (fn(), fn()) for name, fn in fns.items()}
    ref = first["chainrule"]
    for name, got in first.items():
        if not all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) for a, b in zip(got, ref)):
            raise AssertionError(f"scalar_mlp: {name} losses {got} differ from chainrule's {ref}")
    warmup, repeat = (0, 3) if ctx.quick else (1, 7)
    cpu: dict[str, list[float]] = {}
    times = compare(fns, warmup, repeat, settle=False, cpu=cpu, timed_collect=True)
    st = {k: stats(v) for k, v in times.items()}
    for k in st:
        st[k]["cpu_median"] = stats(cpu[k])["median"]
    values = {k: s["median"] for k, s in st.items()}
    targets = {"micrograd": 1 / 5, "torch 0-d": 1 / 3}
    st["chainrule"]["check_first_two_losses"] = list(ref)
    return rows_vs("scalar_mlp", values, "s/step", targets, extras=st)
