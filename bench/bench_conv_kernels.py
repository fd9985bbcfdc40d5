"""The fused conv and pool kernels on NumPy, against the GEMM floor: CPU time of each, on issue 27's CNN shapes.

    python bench/bench_conv_kernels.py [--src /path/to/checkout/src] [--out kernels.json]

Times (``time.process_time``, the fastest of 7 repeats of 5 calls: CPU time is steadier than wall time on a
shared machine) the NumPy forms of ``conv2d``, ``conv2d_weight`` and ``conv2d_input`` for the step's two
convolutions (float32, batch 32, 3x3, padding 1: 3->16 and 16->32 channels on 28x28), the 2x2 max pool's
``pick`` and ``unpool``, eager ``F.max_pool2d`` forward plus backward, and the floor: the 16->32 layer's three
GEMMs on a ready im2col array (the products ``bench_cnn_step.py``'s floor times).  ``--src`` picks the
checkout whose ``src/`` is imported, so two checkouts can be compared run by run (alternate them).  One
BLAS thread.  Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import timeit

os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    sys.path.insert(0, os.path.abspath(args.src))
    import numpy as np

    import chainrule as cr
    from chainrule.primitives import conv as C
    from chainrule.primitives import nn as NN
    from chainrule.primitives import pool as PL

    F = cr.nn.functional
    rng = np.random.default_rng(0)
    f = np.float32
    x = rng.standard_normal((32, 16, 28, 28)).astype(f)
    w = rng.standard_normal((32, 16, 3, 3)).astype(f)
    g = rng.standard_normal((32, 32, 28, 28)).astype(f)
    x1 = rng.standard_normal((32, 3, 28, 28)).astype(f)
    w1 = rng.standard_normal((16, 3, 3, 3)).astype(f)
    g1 = rng.standard_normal((32, 16, 28, 28)).astype(f)
    a = rng.standard_normal((32, 32, 28, 28)).astype(f)
    gp = rng.standard_normal((32, 32, 14, 14)).astype(f)
    spatial = ((1, 1), (1, 1), (1, 1))
    cols = NN._unfold_numpy(x, (3, 3), (1, 1), (1, 1), (1, 1))
    xt = cr.tensor(a, requires_grad=True)

    def eager_pool() -> None:
        out = F.max_pool2d(xt, 2)
        cr.sum(out * gp).backward()
        xt.grad = None

    items = {
        "conv 16->32 forward": lambda: C._conv_numpy(x, w, *spatial),
        "conv 16->32 weight gradient": lambda: C._conv_weight_numpy(x, g, (3, 3), *spatial),
        "conv 16->32 input gradient": lambda: C._conv_input_numpy(g, w, (28, 28), *spatial),
        "conv 3->16 forward": lambda: C._conv_numpy(x1, w1, *spatial),
        "conv 3->16 weight gradient": lambda: C._conv_weight_numpy(x1, g1, (3, 3), *spatial),
        "max pool 2x2 pick": lambda: PL._pick_numpy(a, a, (2, 2)),
        "max pool 2x2 unpool": lambda: PL._unpool_numpy(gp, a, (2, 2)),
        "eager max_pool2d forward+backward": eager_pool,
        "floor: GEMM 16->32 forward": lambda: np.matmul(w.reshape(32, 144), cols),
        "floor: GEMM 16->32 weight": lambda: np.matmul(g.reshape(32, 32, 784), cols.transpose(0, 2, 1)),
        "floor: GEMM 16->32 input": lambda: np.matmul(w.reshape(32, 144).T, g.reshape(32, 32, 784)),
    }
    times = {}
    for name, fn in items.items():
        times[name] = 1e3 * min(timeit.Timer(fn, timer=time.process_time).repeat(number=5, repeat=7)) / 5
        print(f"{name:36s} {times[name]:7.2f} ms")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"src": os.path.abspath(args.src), "cpu_ms": times}, fh, indent=2)


if __name__ == "__main__":
    main()
