"""The CNN step's layers one by one, forward plus backward, chainrule against torch (issue 27).

    python bench/bench_cnn_layers.py [--rounds 7]

Each layer of bench/bench_cnn_step.py's model, on its real input size (batch 32, 28×28,
float32), runs forward and backward with a random upstream gradient; the two libraries take
turns in every round (interleaved), each timed as the mean of two calls; medians over the
rounds are printed with the ratio.  One thread each.  Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ["OPENBLAS_NUM_THREADS"] = "1"

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import chainrule as cr  # noqa: E402

F, TF = cr.nn.functional, torch.nn.functional


def cases() -> dict:
    rng = np.random.default_rng(0)

    def a(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    x0, x1, x2 = a(32, 3, 28, 28), a(32, 16, 28, 28), a(32, 32, 28, 28)
    w1, b1, w2, b2 = a(16, 3, 3, 3), a(16), a(32, 16, 3, 3), a(32)
    g16, g32, gp = a(32, 16, 28, 28), a(32, 32, 28, 28), a(32, 32, 14, 14)
    bn, tbn = cr.nn.BatchNorm2d(32), torch.nn.BatchNorm2d(32)

    def c(*arrays):
        return [cr.tensor(v, requires_grad=True) for v in arrays]

    def t(*arrays):
        return [torch.tensor(v, requires_grad=True) for v in arrays]

    return {
        "conv 3->16": (
            lambda: (lambda w, b: F.conv2d(cr.tensor(x0), w, b, padding=1).backward(g16))(*c(w1, b1)),
            lambda: (lambda w, b: TF.conv2d(torch.tensor(x0), w, b, padding=1).backward(torch.tensor(g16)))(*t(w1, b1)),
        ),
        "conv 16->32": (
            lambda: (lambda x, w, b: F.conv2d(x, w, b, padding=1).backward(g32))(*c(x1, w2, b2)),
            lambda: (lambda x, w, b: TF.conv2d(x, w, b, padding=1).backward(torch.tensor(g32)))(*t(x1, w2, b2)),
        ),
        "BatchNorm2d(32)": (lambda: bn(c(x2)[0]).backward(g32), lambda: tbn(t(x2)[0]).backward(torch.tensor(g32))),
        "ReLU": (lambda: F.relu(c(x2)[0]).backward(g32), lambda: TF.relu(t(x2)[0]).backward(torch.tensor(g32))),
        "max pool 2x2": (
            lambda: F.max_pool2d(c(x2)[0], 2).backward(gp),
            lambda: TF.max_pool2d(t(x2)[0], 2).backward(torch.tensor(gp)),
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    table = cases()
    times = {k: ([], []) for k in table}
    for _ in range(args.rounds):
        for name, pair in table.items():
            for i, fn in enumerate(pair):
                t0 = time.perf_counter()
                fn()
                fn()
                times[name][i].append((time.perf_counter() - t0) / 2 * 1000)
    for name, (ours, theirs) in times.items():
        a, b = statistics.median(ours), statistics.median(theirs)
        print(f"{name:>16}: chainrule {a:6.2f} ms  torch {b:6.2f} ms  {a / b:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
