"""Where ``cr.compile``'s CNN training step spends its time: every line of the schedule timed.

    python bench/profile_compiled_lines.py [--steps 20] [--top 30] [--src /path/to/checkout/src]

Builds issue 27's CNN step (bench/bench_cnn_step.py's model, batch and SGD) under ``cr.compile``, then
re-executes the generated schedule's source with a ``time.process_time`` accumulator around each statement,
and prints the CPU time per step of the costliest lines.  The timing adds a little per line, so the total is
slightly above an untimed replay's.  Not part of the test suite.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from typing import Any

for _k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_k] = "1"

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--src", default=os.path.join(HERE, "..", "src"), help="the checkout's src/ to import")
    args = parser.parse_args()
    sys.path.insert(0, os.path.abspath(args.src))
    # chainrule first, from --src: bench_cnn_step puts this checkout's src/ on the path too
    cr = importlib.import_module("chainrule")
    B = importlib.import_module("bench_cnn_step")

    model = B._cr_model(0)
    opt = cr.optim.SGD(model.parameters(), lr=B.LR)
    batches = [(cr.tensor(x), cr.tensor(y)) for x, y in B._batches(4)]

    @cr.compile
    def step(x: Any, y: Any) -> Any:
        opt.zero_grad()
        loss = cr.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    for i in range(3):
        step(*batches[i % 4])
    entry = next(iter(step.cache.values()))
    ns = entry.replay.__globals__
    lines, labels = [], []
    for line in entry.source.split("\n"):
        s = line.strip()
        if line.startswith("    ") and s and not s.startswith(("#", "del ", "return")):
            k = len(labels)
            labels.append(s[:120])
            lines.append(f"    _t = _pc()\n{line}\n    _T[{k}] += _pc() - _t")
        else:
            lines.append(line)
    acc = [0.0] * len(labels)
    ns["_T"], ns["_pc"] = acc, time.process_time
    exec(compile("\n".join(lines), "<timed schedule>", "exec"), ns)  # the schedule's own source, re-timed
    entry.replay = ns["replay"]
    for i in range(3):
        step(*batches[i % 4])
    acc[:] = [0.0] * len(acc)
    for i in range(args.steps):
        step(*batches[i % 4])
    print(f"chainrule from {os.path.dirname(cr.__file__)}")
    print(f"timed lines: {1e3 * sum(acc) / args.steps:.2f} ms of CPU a step ({len(labels)} lines)")
    for i in sorted(range(len(acc)), key=lambda i: -acc[i])[: args.top]:
        print(f"{1e3 * acc[i] / args.steps:7.2f} ms  {labels[i]}")


if __name__ == "__main__":
    main()
