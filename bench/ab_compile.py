"""A/B of ``cr.compile``'s replays on the MLP ``nn`` step.

    python bench/ab_compile.py [--rounds 10] [--threads N]
    python bench/ab_compile.py --base /path/to/old/checkout [--rounds 8] [--threads 1]

Without ``--base``, interleaved in one process: variants of the tutorial step
(784-512-512-10, batch 256, float32, SGD), each with its own copy of the same weights:
``buffered`` (``cr.compile`` as it is: the primitives' formulas written with ``out=`` into
preallocated buffers), ``allocating`` (``cr.compile`` with ``BUFFERS = False``: each formula
allocates its results), ``eager`` (the same step uncompiled) and ``torch`` (``torch.nn``, if
importable).  Each turn starts with a 0.3 s pause and one untimed call, then times 5 calls;
the table gives medians over rounds and per-round ratios to ``buffered``.

With ``--base``, this checkout against an older one: each round runs each checkout in its
own fresh process (alternating which goes first, 0.3 s settle before each), timing the
compiled step on NumPy arrays and on torch CPU tensors (the fastest of 9 calls after the
trace and one untimed replay; on a shared machine slower repeats measure the neighbours)
and the trace itself; the table gives, per workload, the median of the per-round ratios
new/old and their range.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = r"""
import json, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from workloads import mlp_step as m

def fastest(fn, reps):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)

params = m.init_params()
x, y = m.make_batch()
out = {}
libs = [("numpy", None)]
try:
    import torch
    torch.set_num_threads(int(sys.argv[3]))
    libs.append(("torch", torch))
except ImportError:
    pass
for name, torch in libs:
    t0 = time.perf_counter()
    step = m.chainrule_nn_step(params, x, y, compiled=True, torch=torch)
    step()  # the trace
    out[f"trace {name} ms"] = (time.perf_counter() - t0) * 1e3
    step()
    out[f"compiled {name} ms"] = fastest(step, 9) * 1e3
print(json.dumps(out))
"""


def run_child(src: str, threads: int) -> dict:
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(threads)
    env.pop("PYTHONPATH", None)
    time.sleep(0.3)
    cmd = [sys.executable, "-c", CHILD, src, HERE, str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def against_base(base: str, rounds: int, threads: int) -> int:
    new_src = os.path.join(os.path.dirname(HERE), "src")
    old_src = os.path.join(os.path.abspath(base), "src")
    ratios: dict[str, list[float]] = {}
    times: dict[str, dict[str, list[float]]] = {"new": {}, "old": {}}
    for r in range(rounds):
        order = [("new", new_src), ("old", old_src)] if r % 2 == 0 else [("old", old_src), ("new", new_src)]
        got = {name: run_child(src, threads) for name, src in order}
        for key in got["new"]:
            ratios.setdefault(key, []).append(got["new"][key] / got["old"][key])
            for name in ("new", "old"):
                times[name].setdefault(key, []).append(got[name][key])
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in ratios.items()), flush=True)
    print(f"\nnew/old, median of {rounds} rounds (range), {threads} BLAS thread(s), load {os.getloadavg()[0]:.2f}:")
    for key, vals in ratios.items():
        new, old = statistics.median(times["new"][key]), statistics.median(times["old"][key])
        print(
            f"  {key:<20} {statistics.median(vals):.3f}  ({min(vals):.3f}-{max(vals):.3f})"
            f"   new {new:.2f}, old {old:.2f} (medians)"
        )
    return 0


def main() -> int:
    p = argparse.ArgumentParser(prog="bench/ab_compile.py")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--base", help="an older checkout (its src/ is used) to compare this one with")
    args = p.parse_args()
    if args.base:
        return against_base(args.base, args.rounds or 8, args.threads or 1)
    args.rounds = args.rounds or 10
    args.threads = args.threads or os.cpu_count() or 1
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
