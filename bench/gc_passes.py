"""The cyclic collector's passes during chainrule's scalar MLP step, with and without chainrule's pause.

Runs bench/workloads/scalar_mlp.py's chainrule step (micrograd's two-moons demo,
65,000 scalar nodes per step) in a fresh process per setting and counts the
collector's passes per generation and their time (``gc.callbacks``), with
``chainrule.collector.PAUSE`` on (the default) and off, and the step time with
the collector switched off for comparison.

    python bench/gc_passes.py [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = r"""
import gc, json, sys, time
sys.path.insert(0, {workloads!r})
import chainrule.collector as collector
from scalar_mlp import build_chainrule
collector.PAUSE = {pause}
model, step = build_chainrule()
for k in range(2):
    step(model, k)
passes = {{0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}}
started = [0.0]
def watch(phase, info):
    if phase == "start":
        started[0] = time.perf_counter()
    else:
        p = passes[info["generation"]]
        p[0] += 1
        p[1] += time.perf_counter() - started[0]
if {gc_off}:
    gc.disable()
gc.callbacks.append(watch)
t = time.perf_counter()
for k in range({steps}):
    step(model, k)
wall = (time.perf_counter() - t) / {steps}
per_step = {{g: [n / {steps}, 1e3 * s / {steps}] for g, (n, s) in passes.items()}}
print(json.dumps({{"step_ms": 1e3 * wall, "passes": per_step}}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    workloads = os.path.join(HERE, "workloads")
    settings = (("pause on (default)", True, False), ("pause off", False, False), ("gc off", True, True))
    for label, pause, gc_off in settings:
        code = CHILD.format(workloads=workloads, pause=pause, gc_off=gc_off, steps=args.steps)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        r = json.loads(out)
        gens = ", ".join(f"gen{g}: {n:.1f} passes {ms:.1f} ms" for g, (n, ms) in r["passes"].items())
        print(f"{label:20s} step {r['step_ms']:6.1f} ms   per step: {gens}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
