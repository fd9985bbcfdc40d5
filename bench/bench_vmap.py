"""cr.vmap and the Jacobians built on it, against torch.func, as ratios from one run.

    python bench/bench_vmap.py [--rounds 7] [--repeats 5] [--out bench/results/vmap.json]

Workloads (float64, one BLAS thread and one torch thread, set before NumPy and torch load):

- ``jacfwd`` of ``tanh(A @ sin(x))``, 1000 -> 10;
- ``jacrev`` of the same map, 10 -> 1000;
- ``hessian`` of the scalar ``sum(tanh(A @ sin(x))**2)`` of 100 inputs (A: 100 x 100);
- per-sample gradients ``vmap(grad(loss), in_dims=(None, None, None, None, 0, 0))`` of a 2-layer MLP
  (784 -> 128 -> 10, tanh, softmax cross-entropy on one-hot targets), batch 64;
- per-sample gradients of a small CNN (conv 1 -> 8, ReLU, 2x2 max pooling, linear), 28 x 28, batch 32.

Each round times every workload once per library (median of ``--repeats`` calls after a warm-up), the
libraries interleaved, so a noisy neighbour slows both sides of a ratio alike.  The report gives, per
workload, the median over rounds of chainrule's time, torch.func's, and the ratio, with the per-round range
of the ratio.  Every result is checked against torch.func's (1e-10) before timing.  Not a test: run on demand.
"""

from __future__ import annotations

import os
import sys

# One BLAS thread, and glibc's trim threshold and top pad pinned (as bench/ab_backend.py's PINNED_MALLOC), so
# page faults from freed large arrays do not depend on where imports left the allocator: both are read when
# the process starts, so the script re-runs itself once with them set.
_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "MALLOC_TRIM_THRESHOLD_": str(256 << 20),
    "MALLOC_TOP_PAD_": str(16 << 20),
}
if any(os.environ.get(k) != v for k, v in _ENV.items()):
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **_ENV})

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

import chainrule as cr  # noqa: E402

torch.set_num_threads(1)
tf = torch.func


def _median_time(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def workloads(rng: np.random.Generator) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    """name -> (chainrule call, torch.func call), each returning the result as NumPy."""
    out: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {}

    def tanh_map(A: np.ndarray) -> tuple[Callable, Callable]:
        tA = torch.tensor(A)
        return (lambda x: cr.tanh(A @ cr.sin(x))), (lambda x: torch.tanh(tA @ torch.sin(x)))

    A = rng.standard_normal((10, 1000)) / 30
    x = rng.standard_normal(1000)
    f, g = tanh_map(A)
    tx = torch.tensor(x)
    out["jacfwd 1000->10"] = (lambda: cr.jacfwd(f)(x), lambda: tf.jacfwd(g)(tx).numpy())

    A2 = rng.standard_normal((1000, 10)) / 3
    x2 = rng.standard_normal(10)
    f2, g2 = tanh_map(A2)
    tx2 = torch.tensor(x2)
    out["jacrev 10->1000"] = (lambda: cr.jacrev(f2)(x2), lambda: tf.jacrev(g2)(tx2).numpy())

    A3 = rng.standard_normal((100, 100)) / 10
    x3 = rng.standard_normal(100)
    f3, g3 = tanh_map(A3)
    tx3 = torch.tensor(x3)
    out["hessian 100 inputs"] = (
        lambda: cr.hessian(lambda x: (f3(x) ** 2).sum())(x3),
        lambda: tf.hessian(lambda x: (g3(x) ** 2).sum())(tx3).numpy(),
    )

    params = [rng.standard_normal(s) * 0.05 for s in ((128, 784), (128,), (10, 128), (10,))]
    X = rng.standard_normal((64, 784))
    Y = np.eye(10)[rng.integers(0, 10, 64)]

    def loss(W1, b1, W2, b2, x, y):
        logits = W2 @ cr.tanh(W1 @ x + b1) + b2
        return -(y * cr.log_softmax(logits, axis=-1)).sum()

    def tloss(W1, b1, W2, b2, x, y):
        logits = W2 @ torch.tanh(W1 @ x + b1) + b2
        return -(y * torch.log_softmax(logits, dim=-1)).sum()

    dims = (None, None, None, None, 0, 0)
    tp = [torch.tensor(p) for p in params] + [torch.tensor(X), torch.tensor(Y)]
    out["per-sample grads MLP b64"] = (
        lambda: cr.vmap(cr.grad(loss, argnums=(0, 1, 2, 3)), in_dims=dims)(*params, X, Y),
        lambda: [t.numpy() for t in tf.vmap(tf.grad(tloss, argnums=(0, 1, 2, 3)), in_dims=dims)(*tp)],
    )
    # per-sample gradients of a small CNN (conv 3x3, 1 -> 8 channels, ReLU, 2x2 max pooling, linear to 10),
    # 28 x 28 images, batch 32
    F = cr.nn.functional
    tF = torch.nn.functional
    cnn = [rng.standard_normal(s) * 0.1 for s in ((8, 1, 3, 3), (8,), (10, 8 * 13 * 13), (10,))]
    Xc = rng.standard_normal((32, 1, 28, 28))
    Yc = np.eye(10)[rng.integers(0, 10, 32)]

    def closs(w, b, W, c, x, y):
        h = F.max_pool2d(F.relu(F.conv2d(x[None], w, b)), 2)
        return -(y * cr.log_softmax(W @ h.reshape(-1) + c, axis=-1)).sum()

    def tcloss(w, b, W, c, x, y):
        h = tF.max_pool2d(tF.relu(tF.conv2d(x[None], w, b)), 2)
        return -(y * torch.log_softmax(W @ h.reshape(-1) + c, dim=-1)).sum()

    tc = [torch.tensor(p) for p in cnn] + [torch.tensor(Xc), torch.tensor(Yc)]
    out["per-sample grads CNN b32"] = (
        lambda: cr.vmap(cr.grad(closs, argnums=(0, 1, 2, 3)), in_dims=dims)(*cnn, Xc, Yc),
        lambda: [t.numpy() for t in tf.vmap(tf.grad(tcloss, argnums=(0, 1, 2, 3)), in_dims=dims)(*tc)],
    )
    return out


def _check(name: str, ours: Any, theirs: Any) -> None:
    ours = ours if isinstance(ours, (tuple, list)) else [ours]
    theirs = theirs if isinstance(theirs, (tuple, list)) else [theirs]
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "vmap.json"))
    args = parser.parse_args()
    work = workloads(np.random.default_rng(0))
    for name, (ours, theirs) in work.items():
        _check(name, ours(), theirs())  # (also the warm-up)
    times: dict[str, dict[str, list[float]]] = {n: {"chainrule": [], "torch.func": []} for n in work}
    for _ in range(args.rounds):
        for name, (ours, theirs) in work.items():
            times[name]["chainrule"].append(_median_time(ours, args.repeats))
            times[name]["torch.func"].append(_median_time(theirs, args.repeats))
    rows = []
    print(f"{'workload':28s} {'chainrule':>11s} {'torch.func':>11s} {'ratio':>7s}  ratio range over rounds")
    for name, t in times.items():
        ratios = [a / b for a, b in zip(t["chainrule"], t["torch.func"])]
        row = {
            "workload": name,
            "chainrule_s": statistics.median(t["chainrule"]),
            "torch_func_s": statistics.median(t["torch.func"]),
            "ratio": statistics.median(ratios),
            "ratio_range": [min(ratios), max(ratios)],
            "rounds": args.rounds,
            "repeats": args.repeats,
        }
        rows.append(row)
        print(
            f"{name:28s} {row['chainrule_s'] * 1e3:9.2f}ms {row['torch_func_s'] * 1e3:9.2f}ms "
            f"{row['ratio']:6.2f}×  {min(ratios):.2f}–{max(ratios):.2f}"
        )
    info = {
        "command": "python bench/bench_vmap.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus".strip(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "threads": {"blas": 1, "torch": torch.get_num_threads()},
        "env": _ENV,
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(info, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
