"""The scalar MLP step (micrograd's two-moons, bench/workloads/scalar_mlp.py) of two checkouts and micrograd,
side by side in fresh processes, with the cyclic GC on and off.

    python bench/ab_scalar.py --base OLD_CHECKOUT [--rounds 2] [--steps 4]

Each line is one fresh process: the fastest of ``--steps`` training steps after one
untimed step.  Used to tell a change in the code from a change in the machine when
bench/run.py's scalar ratios move between sessions.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = r"""
import gc, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from workloads import scalar_mlp as s
model, step = s.build_for(sys.argv[3])
step(model, 0)
if sys.argv[4] == "off":
    gc.disable()
times = []
for k in range(int(sys.argv[5])):
    t0 = time.perf_counter()
    step(model, k)
    times.append(time.perf_counter() - t0)
print(min(times))
"""


def main() -> int:
    p = argparse.ArgumentParser(prog="bench/ab_scalar.py")
    p.add_argument("--base", required=True, help="the older checkout (its src/ is used)")
    p.add_argument("--new", default=os.path.dirname(HERE), help="the newer checkout (default: this one)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steps", type=int, default=4)
    args = p.parse_args()
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    runs = [("old chainrule", args.base, "chainrule"), ("new chainrule", args.new, "chainrule")]
    runs.append(("micrograd", args.new, "micrograd"))
    for gc_mode in ("on", "off"):
        for _ in range(args.rounds):
            for label, root, lib in runs:
                src = os.path.join(os.path.abspath(root), "src")
                cmd = [sys.executable, "-c", CHILD, src, HERE, lib, gc_mode, str(args.steps)]
                out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout.strip()
                print(f"GC {gc_mode:<3} {label:<14} {float(out):.4f} s/step", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
