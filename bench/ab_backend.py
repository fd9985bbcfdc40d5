"""A/B of issue 16 (Array API backends) on the NumPy path: this checkout against an older one.

    python bench/ab_backend.py --base /path/to/old/checkout [--rounds 8] [--threads 1]

The backends change the engine's hot paths (a type check before each NumPy forward,
forwards bound to NumPy through the namespace), so the question is whether NumPy
programs got slower.  Each round runs each checkout in its own fresh process (two
versions of one package cannot share a process), alternating which goes first, with a
0.3 s settle before each.  A child times the workloads of ``bench/workloads``: the
per-op chain at shapes (4,) and (4096,), the scalar chain, and the MLP step
(784-512-512-10, batch 256, float32, ops and ``nn`` variants), each the median of
several repeats (the fastest, since slower repeats on a shared machine measure the
neighbours), and prints them as JSON.  The table gives, per workload, the median
of the per-round ratios new/old and their range.
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
import json, statistics, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import numpy as np
from workloads import mlp_step as m, per_op as p

def med(fn, reps, inner=1):
    # the fastest of the repeats: on a shared machine the slower ones measure the neighbours
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return min(times)

out = {}
rng = np.random.default_rng(0)
out["per_op (4,) us"] = med(p.chainrule_fn(rng.standard_normal(4).astype(np.float32)), 15) / p.OPS * 1e6
out["per_op (4096,) us"] = med(p.chainrule_fn(rng.standard_normal(4096).astype(np.float32)), 9) / p.OPS * 1e6
out["per_op scalar us"] = med(p.chainrule_scalar_fn(0.3), 15) / p.OPS * 1e6
params = m.init_params()
x, y = m.make_batch()
out["mlp ops ms"] = med(m.chainrule_step(params, x, y), 9) * 1e3
out["mlp nn ms"] = med(m.chainrule_nn_step(params, x, y), 9) * 1e3
print(json.dumps(out))
"""


# glibc's heap gives memory back to the system once the free space at its top passes a threshold that it
# moves as the process runs (its "dynamic" mmap and trim thresholds).  The (4096,) chain allocates and frees
# about 16 MB per call, so its page faults (and time) depend on where the imports happened to leave those
# thresholds: 400 to 1,100 faults per call across builds that differ only in how modules are split.  Pinning
# the thresholds the same way for both builds takes the allocator's state out of the comparison.
PINNED_MALLOC = {"MALLOC_TRIM_THRESHOLD_": str(256 << 20), "MALLOC_TOP_PAD_": str(16 << 20)}


def run_child(src: str, threads: int, pin_malloc: bool = False) -> dict:
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(threads)
    env.pop("PYTHONPATH", None)
    for k in PINNED_MALLOC:
        env.pop(k, None)
    if pin_malloc:
        env.update(PINNED_MALLOC)
    time.sleep(0.3)
    done = subprocess.run([sys.executable, "-c", CHILD, src, HERE], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(prog="bench/ab_backend.py")
    p.add_argument("--base", required=True, help="the older checkout (its src/ is used)")
    p.add_argument("--new", default=os.path.dirname(HERE), help="the newer checkout (default: this one)")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--pin-malloc",
        action="store_true",
        help="pin glibc's trim threshold and top pad in both builds' processes (see PINNED_MALLOC)",
    )
    args = p.parse_args()
    new_src = os.path.join(os.path.abspath(args.new), "src")
    old_src = os.path.join(os.path.abspath(args.base), "src")
    ratios: dict[str, list[float]] = {}
    for r in range(args.rounds):
        order = [("new", new_src), ("old", old_src)] if r % 2 == 0 else [("old", old_src), ("new", new_src)]
        got = {name: run_child(src, args.threads, args.pin_malloc) for name, src in order}
        for key in got["new"]:
            ratios.setdefault(key, []).append(got["new"][key] / got["old"][key])
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in ratios.items()), flush=True)
    pinned = ", glibc's thresholds pinned" if args.pin_malloc else ""
    print(f"\nnew/old, median of {args.rounds} rounds (range), {args.threads} BLAS thread(s){pinned}:")
    for key, vals in ratios.items():
        print(f"  {key:<20} {statistics.median(vals):.3f}  ({min(vals):.3f}-{max(vals):.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
