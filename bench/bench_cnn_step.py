"""The CNN training step against torch eager, with the NumPy floor: issue 27's conv workload.

    python bench/bench_cnn_step.py [--rounds 15] [--inner 3] [--out bench/results/cnn_step.json]

The step: ``conv 3→16 (3×3, padding 1) → BatchNorm2d → ReLU → conv 16→32 → BatchNorm2d →
ReLU → max_pool 2 → flatten → Linear(32·14·14 → 10) → cross_entropy``, then ``zero_grad``,
``backward`` and a plain ``SGD`` step, on a batch of 32 images of 3×28×28, float32.  Both
libraries start from the same weights and take the same batches; after the timing, the
parameters and running statistics of chainrule (eager and compiled) and torch are compared
(to 1e-4 relative: float32, different summation orders).

Timed, once per round in turn (interleaved, so a burst of load on this shared machine hits
all of them alike): chainrule eager, chainrule under ``cr.compile``, torch eager, and **the
NumPy floor**: the same step's GEMMs alone on ready-made arrays in the im2col layout that
chainrule uses (per conv: the forward product, the weight gradient and, for the second conv,
the input gradient; plus the linear layer's three), with no im2col, no elementwise work and
no Python graph.  One thread each: ``OPENBLAS_NUM_THREADS=1`` before NumPy loads and
``torch.set_num_threads(1)``.  Reported: each one's median over the rounds (each round the
mean of ``--inner`` steps) and the per-round range, and the ratios of medians.  Not part of
the test suite.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import chainrule as cr  # noqa: E402

N, C_IN, C1, C2, SIDE, CLASSES, LR = 32, 3, 16, 32, 28, 10, 0.01


def _cr_model(seed: int) -> cr.nn.Module:
    nn = cr.nn
    return nn.Sequential(
        nn.Conv2d(C_IN, C1, 3, padding=1, rng=seed),
        nn.BatchNorm2d(C1),
        nn.ReLU(),
        nn.Conv2d(C1, C2, 3, padding=1, rng=seed + 1),
        nn.BatchNorm2d(C2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(C2 * (SIDE // 2) ** 2, CLASSES, rng=seed + 2),
    )


def _torch_model(ours: cr.nn.Module) -> torch.nn.Module:
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(C_IN, C1, 3, padding=1),
        nn.BatchNorm2d(C1),
        nn.ReLU(),
        nn.Conv2d(C1, C2, 3, padding=1),
        nn.BatchNorm2d(C2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(C2 * (SIDE // 2) ** 2, CLASSES),
    )
    with torch.no_grad():
        for p, q in zip(model.parameters(), ours.parameters()):
            p.copy_(torch.from_numpy(np.array(q.data)))
    return model


def _batches(count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [
        (
            rng.standard_normal((N, C_IN, SIDE, SIDE)).astype(np.float32),
            rng.integers(0, CLASSES, N).astype(np.int64),
        )
        for _ in range(count)
    ]


def _state(model: cr.nn.Module) -> dict:
    return {k: np.array(v.data if hasattr(v, "data") else v) for k, v in model.state_dict().items()}


def _compare(theirs: torch.nn.Module, models: list, atol: float) -> float:
    """Every parameter and buffer of ``models`` against torch's (to ``atol``); returns the largest difference."""
    ref = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    worst = 0.0
    for model in models:
        mine = _state(model)
        for key, want in ref.items():
            got = mine[key]
            np.testing.assert_allclose(got, want, rtol=atol * 10, atol=atol, err_msg=key)
            if want.dtype.kind == "f":
                worst = max(worst, float(np.max(np.abs(got - want))))
    return worst


def _floor_step() -> tuple:
    """The step's GEMMs on ready arrays, in chainrule's im2col layout: (N, C·9, L) columns."""
    rng = np.random.default_rng(1)
    f32 = np.float32
    L = SIDE * SIDE
    cols1 = rng.standard_normal((N, C_IN * 9, L)).astype(f32)
    cols2 = rng.standard_normal((N, C1 * 9, L)).astype(f32)
    w1 = rng.standard_normal((C1, C_IN * 9)).astype(f32)
    w2 = rng.standard_normal((C2, C1 * 9)).astype(f32)
    g1 = rng.standard_normal((N, C1, L)).astype(f32)
    g2 = rng.standard_normal((N, C2, L)).astype(f32)
    flat = rng.standard_normal((N, C2 * L // 4)).astype(f32)
    wl = rng.standard_normal((CLASSES, C2 * L // 4)).astype(f32)
    gl = rng.standard_normal((N, CLASSES)).astype(f32)

    def step() -> None:
        np.matmul(w1, cols1)  # conv 1 forward
        np.matmul(w2, cols2)  # conv 2 forward
        flat @ wl.T  # linear forward
        gl.T @ flat  # linear weight gradient
        gl @ wl  # linear input gradient
        np.matmul(w2.T, g2)  # conv 2 input-column gradient
        np.einsum("nol,nkl->ok", g2, cols2, optimize=True)  # conv 2 weight gradient
        np.einsum("nol,nkl->ok", g1, cols1, optimize=True)  # conv 1 weight gradient

    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--inner", type=int, default=3, help="steps per round and contender (their mean is timed)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--no-compile", action="store_true", help="leave out the cr.compile contender")
    parser.add_argument(
        "--reuse-freed-memory",
        action="store_true",
        help="call cr.utils.memory.reuse_freed_memory() first (glibc keeps freed large blocks; applies to torch too)",
    )
    args = parser.parse_args(argv)
    malloc = "glibc defaults"
    if args.reuse_freed_memory:
        malloc = "reuse_freed_memory()" if cr.utils.memory.reuse_freed_memory() else "reuse_freed_memory() refused"
    torch.set_num_threads(1)
    batches = _batches(4)
    ours = _cr_model(0)
    theirs = _torch_model(ours)
    compiled_model = _cr_model(0)
    opt_e = cr.optim.SGD(ours.parameters(), lr=LR)
    opt_c = cr.optim.SGD(compiled_model.parameters(), lr=LR)
    opt_t = torch.optim.SGD(theirs.parameters(), lr=LR)
    cr_batches = [(cr.tensor(x), cr.tensor(y)) for x, y in batches]
    t_batches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]

    def eager_step(x: cr.Tensor, y: cr.Tensor) -> cr.Tensor:
        opt_e.zero_grad()
        loss = cr.nn.functional.cross_entropy(ours(x), y)
        loss.backward()
        opt_e.step()
        return loss

    @cr.compile
    def compiled_step(x: cr.Tensor, y: cr.Tensor) -> cr.Tensor:
        opt_c.zero_grad()
        loss = cr.nn.functional.cross_entropy(compiled_model(x), y)
        loss.backward()
        opt_c.step()
        return loss

    def torch_step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        opt_t.zero_grad()
        loss = torch.nn.functional.cross_entropy(theirs(x), y)
        loss.backward()
        opt_t.step()
        return loss

    floor = _floor_step()
    contenders = {"chainrule": (eager_step, cr_batches), "torch": (torch_step, t_batches)}
    if not args.no_compile:
        contenders["chainrule_compiled"] = (compiled_step, cr_batches)
    contenders["numpy_floor"] = (lambda *_: floor(), cr_batches)
    # warm-up and the check: every contender takes the same first batches
    losses: dict[str, list[float]] = {k: [] for k in contenders}
    for i in range(2):
        for name, (fn, bs) in contenders.items():
            out = fn(*bs[i])
            if out is not None:
                losses[name].append(float(out.item()))
    # after the two warm-up steps on the same batches, every contender holds torch's weights (float32 rounding apart)
    worst = _compare(theirs, [ours] + ([compiled_model] if not args.no_compile else []), 1e-4)
    times: dict[str, list[float]] = {k: [] for k in contenders}
    k = 0
    for _ in range(args.rounds):
        for name, (fn, bs) in contenders.items():
            t0 = time.perf_counter()
            for j in range(args.inner):
                fn(*bs[(k + j) % len(bs)])
            times[name].append(1000 * (time.perf_counter() - t0) / args.inner)
        k += args.inner
    # many SGD steps later float32 rounding has drifted (ReLU kinks amplify it): a loose check, and the figure
    drift = _compare(theirs, [ours] + ([compiled_model] if not args.no_compile else []), 1e-2)
    if not args.no_compile:
        for key, a in _state(ours).items():
            assert np.array_equal(a, _state(compiled_model)[key]), f"compiled differs from eager in {key}"
    rows = {}
    for name, ts in times.items():
        rows[name] = {"median_ms": statistics.median(ts), "min_ms": min(ts), "max_ms": max(ts), "rounds_ms": ts}
    base = rows["torch"]["median_ms"]
    for name, r in rows.items():
        r["ratio_to_torch"] = r["median_ms"] / base
        per_round = [a / b for a, b in zip(times[name], times["torch"])]
        r["ratio_rounds"] = [min(per_round), max(per_round)]
        print(
            f"{name:>20}: {r['median_ms']:7.2f} ms  (rounds {r['min_ms']:.2f}-{r['max_ms']:.2f})  "
            f"{r['ratio_to_torch']:.2f}x torch (per round {min(per_round):.2f}-{max(per_round):.2f})"
        )
    print(f"malloc: {malloc}")
    print(
        f"largest parameter or buffer difference from torch after 2 steps: {worst:.2e}, after "
        f"{2 + args.rounds * args.inner} steps: {drift:.2e}"
    )
    if args.out:
        meta = {
            "command": "python bench/bench_cnn_step.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "when": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared with other jobs: ratios are noisy)",
            "load_average": os.getloadavg(),
            "threads": 1,
            "malloc": malloc,
            "rounds": args.rounds,
            "inner": args.inner,
            "max_abs_state_diff_vs_torch_after_2_steps": worst,
            "max_abs_state_diff_vs_torch_at_end": drift,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
