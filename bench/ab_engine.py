"""A/B of issue 15's eager-engine changes on the MLP ``nn`` step, interleaved in one process.

    python bench/ab_engine.py [--rounds 8] [--threads 1]

Variants of the same tutorial-style step (784-512-512-10, batch 256, float32):
``new`` (fused ``linear`` primitive, in-place SGD), ``old linear`` (``Linear.forward``
as ``matmul(x, W.T) + b``, whose weight gradient is a transposed view copied into
``.grad``), ``old SGD`` (the allocating update), ``old both``.  Each turn starts
with a 0.3 s pause and one untimed call; the table gives per-round ratios to ``new``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    p = argparse.ArgumentParser(prog="bench/ab_engine.py")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[k] = str(args.threads)
    sys.path[:0] = [os.path.join(os.path.dirname(HERE), "src"), HERE]
    import numpy as np

    import chainrule as cr
    from chainrule import ops
    from chainrule.nn.layers import Linear
    from chainrule.optim import SGD
    from workloads import mlp_step as m

    fused_forward, inplace_update = Linear.forward, SGD._update

    def old_forward(self, x):  # the code before issue 15
        y = ops.matmul(x, self.weight.T)
        return y + self.bias if self.bias is not None else y

    variants = {
        "new": (fused_forward, inplace_update),
        "old linear": (old_forward, inplace_update),
        "old SGD": (fused_forward, SGD._update_allocating),
        "old both": (old_forward, SGD._update_allocating),
    }
    params = m.init_params()
    x0, y0 = m.make_batch()
    x, y = cr.tensor(x0), cr.tensor(y0)
    steps = {}
    for name in variants:
        train_step, _ = m.chainrule_nn_train_step(params)
        steps[name] = train_step

    def run(name):
        Linear.forward, SGD._update = variants[name]
        try:
            return steps[name](x, y).item()
        finally:
            Linear.forward, SGD._update = fused_forward, inplace_update

    first = {name: [run(name) for _ in range(3)] for name in variants}
    for name, losses in first.items():
        if not np.allclose(losses, first["new"], rtol=1e-5):
            raise AssertionError(f"{name}: losses {losses} differ from {first['new']}")
    print("memory traffic (tracemalloc peaks, independent of machine load):")
    import tracemalloc

    def peak_of(fn):
        tracemalloc.start()
        fn()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak / 2**20

    for label, forward in (("fused linear", fused_forward), ("old linear", old_forward)):
        Linear.forward = forward
        try:
            _, model = m.chainrule_nn_train_step(params)
            for _ in range(2):
                loss = cr.nn.cross_entropy(model(x), y)
                mib = peak_of(loss.backward)
                model.zero_grad()
        finally:
            Linear.forward = fused_forward
        print(f"  {label:<12} backward peak {mib:6.2f} MiB")
    for label, update in (("in-place SGD", inplace_update), ("old SGD", SGD._update_allocating)):
        SGD._update = update
        try:
            _, model = m.chainrule_nn_train_step(params)
            opt = cr.optim.SGD(model.parameters(), lr=m.LR)
            for _ in range(2):
                cr.nn.cross_entropy(model(x), y).backward()
                mib = peak_of(opt.step)
                opt.zero_grad()
        finally:
            SGD._update = inplace_update
        print(f"  {label:<12} SGD.step peak {mib:6.3f} MiB")
    per_round = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name in variants:
            time.sleep(0.3)
            run(name)
            ts = []
            for _ in range(5):
                t0 = time.perf_counter()
                run(name)
                ts.append(time.perf_counter() - t0)
            per_round[name].append(statistics.median(ts))
    print(f"threads {args.threads}, {args.rounds} rounds, load average {os.getloadavg()[0]:.2f}")
    for name, ts in per_round.items():
        ratios = [a / b for a, b in zip(ts, per_round["new"])]
        print(
            f"{name:<11} {statistics.median(ts) * 1e3:7.2f} ms   / new: median {statistics.median(ratios):.3f}, "
            f"per round {min(ratios):.3f}-{max(ratios):.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
