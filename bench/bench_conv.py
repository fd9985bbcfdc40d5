"""Convolution and pooling speed: chainrule's im2col conv against torch's, forward plus backward.

    python bench/bench_conv.py [--repeats 20] [--out bench/results/conv.json]

Each case runs ``sum(max_pool2d(relu(conv2d(x, w, b, padding=1)), 2))`` and its
backward (gradients for ``x``, ``w`` and ``b``) in float32, with the same
inputs in both libraries, and reports the median wall time per step.  torch is
held to one thread and OpenBLAS too (``OPENBLAS_NUM_THREADS=1`` is set before
NumPy loads), so the numbers are steady on a shared machine.  The gradients are
compared, so a fast wrong answer cannot pass.  Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import chainrule as cr  # noqa: E402

F = cr.nn.functional
TF = torch.nn.functional

# (batch, in channels, out channels, image side): the digits CNN's two layers, and a small MNIST-sized one
CASES = [(64, 1, 16, 8), (64, 16, 32, 8), (32, 3, 16, 28)]


def median_ms(step, repeats: int) -> float:
    step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def one_case(n: int, c: int, o: int, side: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, side, side)).astype(np.float32)
    w = rng.standard_normal((o, c, 3, 3)).astype(np.float32) * 0.3
    b = rng.standard_normal(o).astype(np.float32)
    grads = {}

    def ours() -> None:
        xs = [cr.tensor(a, requires_grad=True) for a in (x, w, b)]
        cr.sum(F.max_pool2d(F.relu(F.conv2d(*xs, padding=1)), 2)).backward()
        grads["ours"] = [t.grad.data for t in xs]

    def theirs() -> None:
        ts = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
        TF.max_pool2d(TF.relu(TF.conv2d(*ts, padding=1)), 2).sum().backward()
        grads["torch"] = [t.grad.numpy() for t in ts]

    result = {"shape": [n, c, o, side], "chainrule_ms": median_ms(ours, repeats)}
    result["torch_ms"] = median_ms(theirs, repeats)
    for mine, ref in zip(grads["ours"], grads["torch"]):
        np.testing.assert_allclose(mine, ref, rtol=1e-3, atol=1e-3)
    result["ratio"] = result["chainrule_ms"] / result["torch_ms"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = [one_case(*case, args.repeats) for case in CASES]
    for r in rows:
        n, c, o, side = r["shape"]
        print(
            f"batch {n:>3}, {c:>2} -> {o:>2} channels, {side:>2}x{side:<2}  chainrule {r['chainrule_ms']:7.2f} ms  "
            f"torch {r['torch_ms']:6.2f} ms  ({r['ratio']:.1f}x)"
        )
    if args.out:
        meta = {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"meta": meta, "cases": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
