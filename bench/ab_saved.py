"""A/B of releasing arrays no backward rule reads (chainrule.saved), in one process.

    python bench/ab_saved.py [--rounds 5] [--sizes 4 1024 2048 4096 16384]

Three settings, interleaved round by round:

* ``release``: the default (saved inputs a rule does not read are dropped; results
  nobody holds are released below 128 KiB);
* ``keep``: everything recorded inside ``cr.keep_values()`` (the engine before the change);
* ``no cap``: release results of any size (``MAX_RESULT_BYTES`` lifted), to show why
  the cap is there.

Workloads: workload 2's chain ``h = tanh(h * 1.0001 + 0.0001)`` x 333 (forward and
backward, us per op) at several float32 sizes, and workload 3's ``ops`` MLP step
(784-512-512-10, batch 256, float32; ms per step and minor page faults per step).
Each number is the fastest of several repeats in a round; the table gives the
median over rounds.  1 BLAS thread unless ``--threads``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sizes", type=int, nargs="+", default=[4, 1024, 2048, 4096, 16384])
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    sys.path[:0] = [os.path.join(HERE, "..", "src"), HERE]
    import numpy as np

    import chainrule as cr
    from chainrule import saved
    from workloads import mlp_step

    tensor_module = sys.modules["chainrule.tensor"]
    cap = tensor_module._MAX_RESULT_BYTES

    def chain(x):
        x.grad = None
        h = x
        for _ in range(333):
            h = cr.tanh(h * 1.0001 + 0.0001)
        h.sum().backward()

    params = mlp_step.init_params()
    x0, y0 = mlp_step.make_batch()
    step = mlp_step.chainrule_step(params, x0, y0)

    def timed(fn, reps):
        fn()
        best = float("inf")
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / reps
        return best, faults

    def run(setting, fn, reps):
        tensor_module._MAX_RESULT_BYTES = 1 << 62 if setting == "no cap" else cap
        try:
            if setting == "keep":
                with saved.keep_values():
                    return timed(fn, reps)
            return timed(fn, reps)
        finally:
            tensor_module._MAX_RESULT_BYTES = cap

    settings = ("release", "keep", "no cap")
    workloads = [(f"chain ({n},) us/op", n) for n in args.sizes] + [("MLP ops step ms", None)]
    results: dict = {(w, s): [] for w, _ in workloads for s in settings}
    faults: dict = {(w, s): [] for w, _ in workloads for s in settings}
    for r in range(args.rounds):
        for name, n in workloads:
            if n is None:
                fn, reps, scale = step, 8, 1e3
            else:
                x = cr.tensor(np.random.default_rng(0).standard_normal(n).astype(np.float32), requires_grad=True)
                fn, reps, scale = (lambda x=x: chain(x)), 5, 1e6 / 999
            for s in settings:
                t, f = run(s, fn, reps)
                results[(name, s)].append(t * scale)
                faults[(name, s)].append(f)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    print(f"median of {args.rounds} rounds (fastest repeat per round), {args.threads} BLAS thread(s)")
    print(f"{'workload':24s}" + "".join(f"{s:>20s}" for s in settings) + "   release/keep")
    for name, _ in workloads:
        meds = [statistics.median(results[(name, s)]) for s in settings]
        fl = [statistics.median(faults[(name, s)]) for s in settings]
        cells = "".join(f"{m:10.2f} ({f:6.0f} pf)" for m, f in zip(meds, fl))
        print(f"{name:24s}{cells}   {meds[0] / meds[1]:.3f}")
    print("(pf: minor page faults per call)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
