"""Entry point of the suite's fresh child processes (memory and deep-chain workloads).

    python bench/child.py memory sigmoid chainrule|torch
    python bench/child.py memory mlp chainrule|torch|chainrule-nn|chainrule-nn-compiled|torch-nn STEPS
    python bench/child.py deep_chain chainrule|torch N
    python bench/child.py scalar_mlp chainrule|chainrule-compiled|micrograd|torch default|off STEPS

Prints one JSON line.  The parent (bench/run.py) has already set the thread variables
in the environment this process inherits; chainrule is imported from <repo>/src.

Peak memory: after imports and setup, the baseline is taken, then the work runs.
Two numbers are reported, in MiB above the baseline:
  * ``maxrss``: getrusage's ru_maxrss after the work minus ru_maxrss at the baseline.
    This undercounts when the process's peak so far (e.g. during imports) was above its
    resident size at the baseline.
  * ``hwm``: Linux's VmHWM (peak resident size) after the work, minus VmRSS at the
    baseline, where the peak was reset at the baseline by writing 5 to
    /proc/self/clear_refs.  Exact when the reset works; the suite uses it when it can.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.environ.get("CHAINRULE_BENCH_SRC", os.path.join(os.path.dirname(HERE), "src")), HERE]


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


class Peak:
    """Peak resident memory above a baseline taken at construction."""

    def __init__(self) -> None:
        gc.collect()
        self.base_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset VmHWM to the current resident size
            self.base_rss = _status_kib("VmRSS")
            self.reset = True
        except (OSError, KeyError):
            self.base_rss = None
            self.reset = False

    def result(self) -> dict:
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = {"maxrss_mib": (maxrss - self.base_maxrss) / 1024, "hwm_reset": self.reset}
        if self.reset:
            out["hwm_mib"] = (_status_kib("VmHWM") - self.base_rss) / 1024
        out["peak_mib"] = out["hwm_mib"] if self.reset else out["maxrss_mib"]
        out["method"] = "VmHWM after clear_refs reset" if self.reset else "ru_maxrss delta"
        return out


def _threads() -> None:
    n = int(os.environ.get("OMP_NUM_THREADS", "1"))
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass


def memory_sigmoid(lib: str) -> dict:
    """sigmoid(x).sum() and backward on a (100, 4096) float32 input that requires grad."""
    import numpy as np

    x0 = np.random.default_rng(0).standard_normal((100, 4096), dtype=np.float32)
    if lib == "chainrule":
        import chainrule as cr

        def work() -> Any:
            x = cr.tensor(x0, requires_grad=True)
            cr.sigmoid(x).sum().backward()
            return x.grad
    else:
        import torch

        def work() -> Any:
            x = torch.tensor(x0, requires_grad=True)
            torch.sigmoid(x).sum().backward()
            return x.grad

    _threads()
    peak = Peak()
    g = work()
    res = peak.result()
    res["grad_sum"] = float(np.asarray(g).sum())
    return res


def memory_mlp(lib: str, steps: int) -> dict:
    """`steps` training steps of the mlp_step workload's model (784-512-512-10, batch 256, float32)."""
    import numpy as np

    from workloads import mlp_step as m

    params = m.init_params()
    x, y = m.make_batch()
    if lib == "chainrule":
        step: Callable[[], float] = m.chainrule_step(params, x, y)
    elif lib == "chainrule-nn":
        step = m.chainrule_nn_step(params, x, y)
    elif lib == "chainrule-nn-compiled":
        step = m.chainrule_nn_step(params, x, y, compiled=True)
        step()  # the trace happens here, before the baseline: the peak is that of the replayed steps
    elif lib == "torch-nn":
        import torch

        step = m.torch_nn_step(torch, params, x, y)
    else:
        import torch

        step = m.torch_step(torch, params, x, y)
    _threads()
    peak = Peak()
    losses = [step() for _ in range(steps)]
    res = peak.result()
    res["loss_first_last"] = [losses[0], losses[-1]]
    res["finite"] = bool(np.isfinite(losses).all())
    return res


def deep_chain(lib: str, n: int) -> dict:
    """y = x; n times y = y * 1.000001; then backward: times and peak memory."""
    if lib == "chainrule":
        import chainrule as cr

        x = cr.tensor(1.0, requires_grad=True)
    else:
        import torch

        x = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    _threads()
    peak = Peak()
    t0 = time.perf_counter()
    y = x
    for _ in range(n):
        y = y * 1.000001
    t1 = time.perf_counter()
    y.backward()
    t2 = time.perf_counter()
    res = peak.result()
    res.update(forward_s=t1 - t0, backward_s=t2 - t1, grad=float(x.grad.item()), expected=1.000001**n)
    return res


def scalar_steps(lib: str, gc_mode: str, steps: int) -> dict:
    """`steps` timed two-moons training steps (after one untimed), in a process that imports only `lib`.

    gc_mode "default": the collector runs as it does for any user (nothing frozen, nothing
    forced); "off": gc.disable() for the timed steps (the engine's own cost).
    """
    from workloads import scalar_mlp as w

    model, step = w.build_for(lib)
    losses = [step(model, 0)]
    if gc_mode == "off":
        gc.collect()
        gc.disable()
    times = []
    gc0 = sum(s["collections"] for s in gc.get_stats())
    for k in range(1, steps + 1):
        t0 = time.perf_counter()
        losses.append(step(model, k))
        times.append(time.perf_counter() - t0)
    collections = sum(s["collections"] for s in gc.get_stats()) - gc0
    gc.enable()
    return {"times": times, "losses": losses, "gc_collections": collections}


def main(argv: list[str]) -> int:
    kind = argv[0]
    if kind == "scalar_mlp":
        out = scalar_steps(argv[1], argv[2], int(argv[3]))
    elif kind == "memory" and argv[1] == "sigmoid":
        out = memory_sigmoid(argv[2])
    elif kind == "memory" and argv[1] == "mlp":
        out = memory_mlp(argv[2], int(argv[3]))
    elif kind == "deep_chain":
        out = deep_chain(argv[1], int(argv[2]))
    else:
        print(f"child.py: unknown case {argv}", file=sys.stderr)
        return 2
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
