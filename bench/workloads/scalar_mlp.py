"""Workload 1: micrograd's two-moons demo with every number a scalar graph node.

MLP 2-16-16-1 (ReLU hidden layers, linear output), 100 points, max-margin hinge loss
mean(relu(1 - y * score)) + 1e-4 * sum(p²), one forward / backward / SGD update per
step with micrograd's schedule lr = 1 - 0.9 k / 100.  The same model code runs on
chainrule scalar tensors (Python-float fast path), micrograd ``Value`` and PyTorch 0-d
float64 tensors; the inputs are constant nodes of each library, built once.  All
start from the same weights, and the first two losses must agree before timing.

Each library runs in a fresh process per round that imports only that library
(bench/child.py), so no library's garbage or imports are collected on another's
clock; rounds are interleaved.  Two GC modes: ``default`` (the collector as any user
has it: what micrograd-style code costs) and ``off`` (the engines' own work).
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


def build_chainrule_compiled() -> tuple[ScalarMLP, Callable]:
    """The same model; forward and backward under ``cr.compile``, the update as in the eager step."""
    import chainrule as cr

    model, _ = build_chainrule()

    @cr.compile
    def loss_and_grads() -> Any:
        loss = model.loss()
        loss.backward()
        return loss

    def step(model: ScalarMLP, k: int) -> float:
        loss = loss_and_grads()
        lr = 1.0 - 0.9 * (k % 100) / 100
        for p in model.params:
            p.data = p.item() - lr * p.grad.item()
            p.grad = None
        return loss.item()

    return model, step


def build_for(lib: str) -> tuple[ScalarMLP, Callable]:
    """The model and step of one library (each child process builds only its own)."""
    x, y = two_moons()
    w = init_weights()
    if lib == "chainrule":
        return build_chainrule()
    if lib == "chainrule-compiled":
        return build_chainrule_compiled()
    if lib == "micrograd":
        from micrograd.engine import Value

        return ScalarMLP(lambda v, g: Value(v), w, x, y), micrograd_step
    if lib == "torch":
        import torch

        make = lambda v, g: torch.tensor(v, dtype=torch.float64, requires_grad=g)  # noqa: E731
        return ScalarMLP(make, w, x, y), make_torch_step(torch)
    raise ValueError(f"scalar_mlp: unknown library {lib!r}")


LIBS = {"chainrule": "chainrule", "chainrule compiled": "chainrule-compiled", "micrograd": "micrograd"}
PAIRS = [
    ("chainrule, GC default", "micrograd, GC default", 1 / 8),
    ("chainrule, GC off", "micrograd, GC off", 1 / 1.5),
    ("chainrule, GC default", "micrograd, GC off", 1 / 1.5),
    ("chainrule compiled, GC default", "micrograd, GC default", 1 / 50),
    ("chainrule compiled, GC default", "chainrule, GC default", None),
    ("chainrule, GC default", "torch 0-d, GC default", 1 / 3),
]


def run(ctx: Any) -> list[dict]:
    """Each library in its own fresh process per round (it imports only itself), rounds interleaved."""
    import chainrule as cr
    from common import compare_rows, row, rows_vs, run_child, stats

    libs = dict(LIBS)
    if not hasattr(cr, "compile"):
        libs.pop("chainrule compiled")
    if ctx.peer("micrograd") is None:
        libs.pop("micrograd")
    if ctx.peer("torch") is not None:
        libs["torch 0-d"] = "torch"
    rounds_n, steps = (2, 1) if ctx.quick else (4, 3)
    rounds: dict[str, list[list[float]]] = {}
    first: dict[str, list[float]] = {}
    info: dict[str, dict] = {}
    failed: dict[str, dict] = {}
    for _ in range(rounds_n):
        for gc_mode in ("default", "off"):
            for label, lib in libs.items():
                if lib == "torch" and gc_mode == "off":
                    continue
                name = f"{label}, GC {gc_mode}"
                if name in failed:
                    continue
                try:
                    out = run_child(ctx, "scalar_mlp", lib, gc_mode, str(steps))
                except RuntimeError as exc:  # one library that cannot run must not hide the others
                    failed[name] = row("scalar_mlp", name, None, "", note=f"failed: {exc}")
                    continue
                rounds.setdefault(name, []).append(out["times"])
                first.setdefault(name, out["losses"][:2])
                info.setdefault(name, {"gc_collections": []})["gc_collections"].append(out["gc_collections"])
    ref = first["chainrule, GC default"]
    for name, got in first.items():  # same weights: the first two losses agree (the second tests gradients)
        if not all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) for a, b in zip(got, ref)):
            raise AssertionError(f"scalar_mlp: {name} losses {got} differ from chainrule's {ref}")
    st = {k: {**stats([t for r in v for t in r]), **info[k]} for k, v in rounds.items()}
    st["chainrule, GC default"]["check_first_two_losses"] = list(ref)
    rows = rows_vs("scalar_mlp", {k: s["median"] for k, s in st.items()}, "s/step", {}, extras=st)
    for r in rows:
        r["ratio"] = r["ratio_best"] = None
    return rows + compare_rows("scalar_mlp", rounds, PAIRS) + list(failed.values())
