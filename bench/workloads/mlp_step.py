"""Workload 3: one MLP training step, 784-512-512-10, ReLU, softmax cross-entropy, batch 256, float32, SGD.

Each library gets the same float32 weights and the same batch.  Variants, each timed
in the same interleaved rounds (issue 15: tuned code beside the code users write):

* ``chainrule ops`` / ``torch ops``: ``relu(x @ W + b)`` with W[in, out], loss
  ``-log_softmax(logits)[arange(B), y].mean()``, update ``p -= 0.01 * grad``;
* ``chainrule ops+CE`` / ``torch ops+CE``: the same with ``cr.nn.cross_entropy`` /
  ``torch.nn.functional.cross_entropy``;
* ``chainrule nn`` / ``torch nn``: the PyTorch tutorial's way, ``nn.Sequential`` of
  ``nn.Linear`` and ``nn.ReLU``, ``cross_entropy``, ``optim.SGD`` with ``zero_grad()``;
* ``chainrule nn compiled``: the ``chainrule nn`` step under ``cr.compile``;
* ``chainrule nn on torch`` / ``chainrule nn compiled on torch``: the same chainrule code with
  the model moved to torch CPU tensors (``model.to(torch.device("cpu"))``): torch's kernels;
* JAX with ``jit`` (the whole step, update included) and without, and the
  hand-written NumPy step (numpy_mlp.py).

Achieved GFLOP/s counts 6 * B * sum(in * out) flops per step (2 for the forward GEMMs, 4
for the two backward GEMMs each).  The machine's NumPy float32 GEMM rate at 1024 and 2048
is reported as the arithmetic limit.  All losses must agree on the first two steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

TITLE = "MLP training step 784-512-512-10, batch 256, float32, SGD: ms per step and GFLOP/s"
SIZES = (784, 512, 512, 10)
BATCH = 256
LR = 0.01
FLOPS = 6 * BATCH * sum(i * o for i, o in zip(SIZES[:-1], SIZES[1:]))


def init_params(sizes: tuple[int, ...] = SIZES, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """He-uniform float32 weights W[in, out] and small biases, the same for every library."""
    rng = np.random.default_rng(seed)
    out = []
    for i, o in zip(sizes[:-1], sizes[1:]):
        bound = np.sqrt(6.0 / i)
        out.append(
            (rng.uniform(-bound, bound, (i, o)).astype(np.float32), rng.uniform(-0.1, 0.1, o).astype(np.float32))
        )
    return out


def make_batch(sizes: tuple[int, ...] = SIZES, batch: int = BATCH, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], batch)
    return x, y


# --- one step per library: each builder returns a zero-argument step that returns the loss ----------
def chainrule_step(params: list, x0: np.ndarray, y: np.ndarray) -> Callable[[], float]:
    import chainrule as cr

    ps = [(cr.tensor(W, requires_grad=True), cr.tensor(b, requires_grad=True)) for W, b in params]
    flat = [p for pair in ps for p in pair]
    x = cr.tensor(x0)
    rows = np.arange(x0.shape[0])
    lr = np.float32(LR)

    def step() -> float:
        h = x
        for k, (W, b) in enumerate(ps):
            h = h @ W + b
            if k < len(ps) - 1:
                h = cr.relu(h)
        loss = -cr.log_softmax(h, axis=1)[rows, y].mean()
        loss.backward()
        for p in flat:
            p.data -= lr * p.grad.data
            p.grad = None
        return loss.item()

    return step


def torch_step(torch: Any, params: list, x0: np.ndarray, y0: np.ndarray) -> Callable[[], float]:
    ps = [(torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True)) for W, b in params]
    flat = [p for pair in ps for p in pair]
    x = torch.tensor(x0)
    y = torch.tensor(y0)
    rows = torch.arange(x0.shape[0])

    def step() -> float:
        h = x
        for k, (W, b) in enumerate(ps):
            h = h @ W + b
            if k < len(ps) - 1:
                h = torch.relu(h)
        loss = -torch.log_softmax(h, dim=1)[rows, y].mean()
        loss.backward()
        with torch.no_grad():
            for p in flat:
                p.sub_(p.grad, alpha=LR)
                p.grad = None
        return loss.item()

    return step


def chainrule_ce_step(params: list, x0: np.ndarray, y: np.ndarray) -> Callable[[], float]:
    import chainrule as cr

    ps = [(cr.tensor(W, requires_grad=True), cr.tensor(b, requires_grad=True)) for W, b in params]
    flat = [p for pair in ps for p in pair]
    x = cr.tensor(x0)
    lr = np.float32(LR)

    def step() -> float:
        h = x
        for k, (W, b) in enumerate(ps):
            h = h @ W + b
            if k < len(ps) - 1:
                h = cr.relu(h)
        loss = cr.nn.cross_entropy(h, y)
        loss.backward()
        for p in flat:
            p.data -= lr * p.grad.data
            p.grad = None
        return loss.item()

    return step


def torch_ce_step(torch: Any, params: list, x0: np.ndarray, y0: np.ndarray) -> Callable[[], float]:
    ps = [(torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True)) for W, b in params]
    flat = [p for pair in ps for p in pair]
    x = torch.tensor(x0)
    y = torch.tensor(y0)
    F = torch.nn.functional

    def step() -> float:
        h = x
        for k, (W, b) in enumerate(ps):
            h = h @ W + b
            if k < len(ps) - 1:
                h = torch.relu(h)
        loss = F.cross_entropy(h, y)
        loss.backward()
        with torch.no_grad():
            for p in flat:
                p.sub_(p.grad, alpha=LR)
                p.grad = None
        return loss.item()

    return step


def chainrule_nn_model(params: list) -> Any:
    """``nn.Sequential(Linear, ReLU, Linear, ReLU, Linear)`` holding the shared weights (W[out, in] layout)."""
    import chainrule as cr

    layers: list = []
    for k, (W, b) in enumerate(params):
        lin = cr.nn.Linear(W.shape[0], W.shape[1])
        lin.weight.data = np.ascontiguousarray(W.T)
        lin.bias.data = b.copy()
        layers.append(lin)
        if k < len(params) - 1:
            layers.append(cr.nn.ReLU())
    return cr.nn.Sequential(*layers)


def chainrule_nn_train_step(params: list) -> tuple[Callable[[Any, Any], Any], Any]:
    """The tutorial step as a function of (x, y) returning the loss tensor (what cr.compile takes)."""
    import chainrule as cr

    model = chainrule_nn_model(params)
    opt = cr.optim.SGD(model.parameters(), lr=LR)

    def train_step(x: Any, y: Any) -> Any:
        opt.zero_grad()
        loss = cr.nn.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return train_step, model


def chainrule_nn_step(
    params: list, x0: np.ndarray, y0: np.ndarray, compiled: bool = False, torch: Any = None
) -> Callable[[], float]:
    """The tutorial step; with ``torch``, the same chainrule code on torch CPU tensors (torch's kernels)."""
    import chainrule as cr

    train_step, model = chainrule_nn_train_step(params)
    if torch is not None:
        model.to(torch.device("cpu"))
        x, y = cr.tensor(torch.tensor(x0)), cr.tensor(torch.tensor(y0))
    else:
        x, y = cr.tensor(x0), cr.tensor(y0)
    if compiled:
        train_step = cr.compile(train_step)
    return lambda: train_step(x, y).item()


def torch_nn_step(torch: Any, params: list, x0: np.ndarray, y0: np.ndarray) -> Callable[[], float]:
    nn = torch.nn
    layers: list = []
    for k, (W, b) in enumerate(params):
        lin = nn.Linear(W.shape[0], W.shape[1])
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(W.T))
            lin.bias.copy_(torch.tensor(b))
        layers.append(lin)
        if k < len(params) - 1:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    x, y = torch.tensor(x0), torch.tensor(y0)
    F = torch.nn.functional

    def step() -> float:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def jax_steps(params: list, x0: np.ndarray, y0: np.ndarray) -> dict[str, Callable[[], float]]:
    import jax
    import jax.numpy as jnp

    def loss_fn(ps: list, x: Any, y: Any) -> Any:
        h = x
        for k, (W, b) in enumerate(ps):
            h = h @ W + b
            if k < len(ps) - 1:
                h = jax.nn.relu(h)
        return -jnp.mean(jax.nn.log_softmax(h, axis=1)[jnp.arange(h.shape[0]), y])

    def update(ps: list, x: Any, y: Any) -> tuple[list, Any]:
        loss, grads = jax.value_and_grad(loss_fn)(ps, x, y)
        return jax.tree_util.tree_map(lambda p, g: p - LR * g, ps, grads), loss

    x, y = jnp.asarray(x0), jnp.asarray(y0)
    out = {}
    for name, fn in (("JAX jit", jax.jit(update)), ("JAX eager", update)):
        state = {"ps": [(jnp.asarray(W), jnp.asarray(b)) for W, b in params]}

        def step(fn: Callable = fn, state: dict = state) -> float:
            state["ps"], loss = fn(state["ps"], x, y)
            return float(loss.block_until_ready())

        out[name] = step
    return out


def numpy_step(params: list, x: np.ndarray, y: np.ndarray) -> Callable[[], float]:
    from workloads.numpy_mlp import NumpyMLP

    model = NumpyMLP(params, x.shape[0])
    return lambda: model.step(x, y, LR)


def gemm_rate(n: int, repeat: int) -> float:
    """NumPy float32 GEMM GFLOP/s at n x n x n (median of repeats, after one warm-up)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), np.float32)
    np.matmul(a, b, out=c)
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        ts.append(time.perf_counter() - t0)
    return 2 * n**3 / float(np.median(ts)) / 1e9


def build(ctx: Any) -> dict[str, Callable[[], float]]:
    import chainrule as cr

    params = init_params()
    x, y = make_batch()
    torch = ctx.peer("torch")
    fns = {"chainrule ops": chainrule_step(params, x, y)}
    if torch is not None:
        fns["torch ops"] = torch_step(torch, params, x, y)
    fns["chainrule ops+CE"] = chainrule_ce_step(params, x, y)
    if torch is not None:
        fns["torch ops+CE"] = torch_ce_step(torch, params, x, y)
    fns["chainrule nn"] = chainrule_nn_step(params, x, y)
    if hasattr(cr, "compile"):
        fns["chainrule nn compiled"] = chainrule_nn_step(params, x, y, compiled=True)
    if torch is not None:
        fns["torch nn"] = torch_nn_step(torch, params, x, y)
        fns["chainrule nn on torch"] = chainrule_nn_step(params, x, y, torch=torch)
        fns["chainrule nn compiled on torch"] = chainrule_nn_step(params, x, y, compiled=True, torch=torch)
    if ctx.peer("jax") is not None:
        fns.update(jax_steps(params, x, y))
    fns["NumPy by hand"] = numpy_step(params, x, y)
    return fns


PAIRS = [
    ("chainrule ops", "torch ops", 1.15),
    ("chainrule ops+CE", "torch ops+CE", 1.15),
    ("chainrule nn", "torch nn", 1.15),
    ("chainrule nn compiled", "torch nn", 1.0),
    ("chainrule nn on torch", "torch nn", None),
    ("chainrule nn compiled on torch", "torch nn", 0.9),
    ("chainrule nn compiled", "torch ops", None),
    ("chainrule nn compiled", "chainrule nn", None),
    ("chainrule ops", "NumPy by hand", None),
    ("chainrule nn compiled", "NumPy by hand", None),
    ("chainrule ops", "JAX jit", None),
]


def run(ctx: Any) -> list[dict]:
    from common import compare, compare_rows, row, rows_vs, stats

    fns = build(ctx)
    first, failed = {}, []
    for name, fn in list(fns.items()):
        try:
            first[name] = (fn(), fn())
        except Exception as exc:  # one variant that cannot run (e.g. a CompileError) must not hide the others
            failed.append(row("mlp_step", name, None, "", note=f"failed: {type(exc).__name__}: {exc}"))
            del fns[name]
    ref = first["chainrule ops"]
    for name, got in first.items():
        if not np.allclose(got, ref, rtol=1e-4, atol=1e-5):
            raise AssertionError(f"mlp_step: {name} losses {got} differ from chainrule's {ref}")
    warmup, repeat = (2, 10) if ctx.quick else (5, 40)
    cpu: dict[str, list[float]] = {}
    rounds: dict[str, list[list[float]]] = {}
    times = compare(fns, warmup, repeat, block=5, cpu=cpu, rounds=rounds)
    st = {}
    for k, v in times.items():
        s = stats(v, 1e3)
        s["gflops"] = FLOPS / (s["median"] / 1e3) / 1e9
        s["cpu_median"] = stats(cpu[k], 1e3)["median"]  # all threads: up to threads x wall
        st[k] = s
    st["chainrule ops"]["check_first_two_losses"] = list(ref)
    values = {k: s["median"] for k, s in st.items()}
    notes = {k: f"{s['gflops']:.0f} GFLOP/s" for k, s in st.items()}
    rows = rows_vs("mlp_step", values, "ms/step", {}, extras=st, notes=notes)
    for r in rows:
        r["ratio"] = r["ratio_best"] = None  # ratios are the pairs below, each against its own counterpart
    rows += compare_rows("mlp_step", rounds, PAIRS) + failed
    reps = 3 if ctx.quick else 10
    for n in (1024, 2048):
        rows.append(row("mlp_step", f"NumPy GEMM {n}", gemm_rate(n, reps), "GFLOP/s", metric="gemm f32"))
    return rows
