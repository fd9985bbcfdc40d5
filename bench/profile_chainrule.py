"""Profile chainrule's side of one workload with cProfile (stdlib), to see where its time goes.

    python bench/profile_chainrule.py scalar_mlp            # 3 training steps
    python bench/profile_chainrule.py per_op --calls 50
    python bench/profile_chainrule.py mlp_step --calls 50 --sort cumulative --top 30
    python bench/profile_chainrule.py scalar_mlp --no-gc   # how much of the time is the cyclic GC

Runs the same function the suite times (after one warm-up call), with the same
thread pinning, and prints the top functions.  cProfile adds overhead to every Python
call, so it inflates the share of small functions: use it to rank, not to time.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import sys
import time
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
CHOICES = ("scalar_mlp", "per_op", "mlp_step")


def chainrule_callable(name: str) -> Callable[[], object]:
    import numpy as np

    if name == "scalar_mlp":
        from workloads import scalar_mlp as w

        model, step = w.build_chainrule()
        counter = iter(range(10**9))
        return lambda: step(model, next(counter))
    if name == "per_op":
        from workloads import per_op as w

        return w.chainrule_fn(np.array([0.1, -0.5, 0.9, 2.0], dtype=np.float32))
    from workloads import mlp_step as w

    x, y = w.make_batch()
    return w.chainrule_step(w.init_params(), x, y)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/profile_chainrule.py", description="cProfile chainrule on one workload.")
    p.add_argument("workload", choices=CHOICES)
    p.add_argument("--calls", type=int, default=None, help="calls to profile (default: 3 for scalar_mlp, 50 otherwise)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--sort", default="tottime", help="pstats sort key: tottime, cumulative, ncalls ...")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--no-gc", action="store_true", help="disable the cyclic garbage collector (to see its share)")
    args = p.parse_args(argv)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[k] = str(args.threads)
    sys.path[:0] = [os.path.join(os.path.dirname(HERE), "src"), HERE]
    calls = args.calls or (3 if args.workload == "scalar_mlp" else 50)

    fn = chainrule_callable(args.workload)
    fn()
    gc.collect()
    gc.freeze()  # as in the suite: the imported modules are not the workload's garbage
    if args.no_gc:
        gc.disable()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    plain = (time.perf_counter() - t0) / calls
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    gc_state = "gc off" if args.no_gc else "gc on"
    print(f"{args.workload}: {plain * 1e3:.3f} ms per call unprofiled ({gc_state}), {calls} calls profiled")
    pstats.Stats(prof).strip_dirs().sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
