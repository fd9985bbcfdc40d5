"""A/B of the two first-order backward walks on the scalar two-moons step, interleaved in one process.

    python bench/ab_backward.py [--steps 40] [--gc]

``slots`` is the default walk (gradients in the tensors' ``_bg`` slots, a creation-number
cursor); ``heap`` is the dictionary-and-heap walk that other cases still take
(``chainrule.autodiff.FAST_PATH = False``).  Both walks alternate step by step on the same
model, so the interpreter, the allocator and any other load on the machine are shared;
the table gives the medians of each walk's backward time (CPU time of this process) and
of the per-pair ratios.  The collector is off unless ``--gc``.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    p = argparse.ArgumentParser(prog="bench/ab_backward.py")
    p.add_argument("--steps", type=int, default=40, help="steps per walk (after 2 untimed ones)")
    p.add_argument("--gc", action="store_true", help="leave the cyclic GC on")
    args = p.parse_args()
    sys.path[:0] = [os.path.join(os.path.dirname(HERE), "src"), HERE]
    import chainrule.autodiff as ad
    from workloads import scalar_mlp as w

    model, step = w.build_chainrule()
    for k in range(2):
        step(model, k)
    if not args.gc:
        gc.collect()
        gc.disable()
    times: dict[str, list[float]] = {"slots": [], "heap": []}
    losses: dict[str, list[float]] = {"slots": [], "heap": []}
    for k in range(2 * args.steps):
        name = "slots" if k % 2 == 0 else "heap"
        ad.FAST_PATH = name == "slots"
        loss = model.loss()
        t0 = time.process_time()
        loss.backward()
        times[name].append(time.process_time() - t0)
        losses[name].append(loss.item())
        lr = 1.0 - 0.9 * (k % 100) / 100
        for prm in model.params:
            prm.data = prm.item() - lr * prm.grad.item()
            prm.grad = None
        del loss
    ad.FAST_PATH = True
    gc.enable()
    ratios = [a / b for a, b in zip(times["slots"], times["heap"])]
    print(f"scalar two-moons backward, {args.steps} steps per walk, GC {'on' if args.gc else 'off'}")
    for name, ts in times.items():
        print(f"  {name:5s}: median {statistics.median(ts) * 1e3:6.1f} ms, best {min(ts) * 1e3:6.1f} ms")
    q = statistics.quantiles(ratios, n=4)
    print(f"  slots / heap per pair: median {statistics.median(ratios):.3f} (quartiles {q[0]:.3f}-{q[2]:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
