"""A/B of issue 15's buffered array schedule in ``cr.compile`` on the MLP ``nn`` step, interleaved in one process.

    python bench/ab_compile.py [--rounds 10] [--threads N]

Variants of the tutorial step (784-512-512-10, batch 256, float32, SGD), each with its
own copy of the same weights: ``buffered`` (``cr.compile`` as it is: ``out=`` GEMMs into
preallocated buffers, in-place ReLU, fused softmax-cross-entropy backward), ``allocating``
(``cr.compile`` with ``BUFFERS = False``: each primitive's forward and VJP rule allocate
their results), ``eager`` (the same step uncompiled) and ``torch`` (``torch.nn``, if
importable).  Each turn starts with a 0.3 s pause and one untimed call, then times 5 calls;
the table gives medians over rounds and per-round ratios to ``buffered``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    p = argparse.ArgumentParser(prog="bench/ab_compile.py")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = p.parse_args()
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[k] = str(args.threads)
    sys.path[:0] = [os.path.join(os.path.dirname(HERE), "src"), HERE]
    import numpy as np

    import chainrule as cr

    C = sys.modules["chainrule.compile"]  # the module (cr.compile is the function)
    from workloads import mlp_step as m

    params = m.init_params()
    x0, y0 = m.make_batch()
    x, y = cr.tensor(x0), cr.tensor(y0)
    steps = {}
    for name, buffers in (("buffered", True), ("allocating", False)):
        C.BUFFERS = buffers
        train_step, _ = m.chainrule_nn_train_step(params)
        compiled = cr.compile(train_step)
        compiled(x, y)  # the trace: the schedule is written with this BUFFERS setting
        assert ("out=b0" in compiled.code()) == buffers
        steps[name] = lambda c=compiled: c(x, y).item()
    C.BUFFERS = True
    eager, _ = m.chainrule_nn_train_step(params)
    steps["eager"] = lambda: eager(x, y).item()
    try:
        import torch

        torch.set_num_threads(args.threads)
        steps["torch"] = m.torch_nn_step(torch, params, x0, y0)
    except ImportError:
        pass
    for name in ("eager", "torch"):  # one step each, as the traces took for the compiled ones
        if name in steps:
            steps[name]()
    first = {name: [f() for _ in range(3)] for name, f in steps.items()}
    for name, losses in first.items():
        if not np.allclose(losses, first["buffered"], rtol=1e-5):
            raise AssertionError(f"{name}: losses {losses} differ from {first['buffered']}")
    import tracemalloc

    print("NumPy allocations in one step (tracemalloc, independent of machine load):")
    for name in ("buffered", "allocating", "eager"):
        tracemalloc.start()
        steps[name]()
        size, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"  {name:<11} peak {peak / 2**20:6.2f} MiB above the step's start")
    per_round = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, f in steps.items():
            time.sleep(0.3)
            f()
            ts = []
            for _ in range(5):
                t0 = time.perf_counter()
                f()
                ts.append(time.perf_counter() - t0)
            per_round[name].append(statistics.median(ts))
    print(f"threads {args.threads}, {args.rounds} rounds, load average {os.getloadavg()[0]:.2f}")
    for name, ts in per_round.items():
        ratios = [a / b for a, b in zip(ts, per_round["buffered"])]
        print(
            f"{name:<11} {statistics.median(ts) * 1e3:7.2f} ms (rounds {min(ts) * 1e3:.2f}-{max(ts) * 1e3:.2f})"
            f"   / buffered: median {statistics.median(ratios):.3f}, per round {min(ratios):.3f}-{max(ratios):.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
