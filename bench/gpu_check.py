"""chainrule on a GPU: the primitive suite on CuPy and torch CUDA arrays, and an MLP step timed against torch.

    python bench/gpu_check.py [--steps 20] [--skip-suite]

1. Runs ``python -m pytest -m gpu tests/test_gpu.py``: every case of tests/cases.py
   (values, gradients, second order, forward mode) on each GPU library present,
   compared with the NumPy results.
2. Times one training step of an MLP 4096-4096-4096-10, batch 1024, float32
   (forward, cross-entropy, backward, SGD), chainrule on torch CUDA tensors against
   torch CUDA eager in the same run (interleaved rounds, synchronized clocks), also
   under ``cr.compile`` (the buffered torch schedule), and on CuPy arrays where CuPy
   is installed.

Exit status: 0 when everything ran and passed, 1 on a failure, 2 when no CUDA
device is present (nothing was checked).  ``--cpu-dry-run`` runs part 2 on torch CPU
tensors with a small MLP, to check the script itself on a machine without a GPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SIZES = (4096, 4096, 4096, 10)
BATCH = 1024


def _cuda_available() -> bool:
    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            return True
    if importlib.util.find_spec("cupy") is not None:
        import cupy

        try:
            return cupy.cuda.runtime.getDeviceCount() > 0
        except cupy.cuda.runtime.CUDARuntimeError:
            return False
    return False


def _params(np, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
        bound = 1.0 / fan_in**0.5
        out.append(
            (
                rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32),
                rng.uniform(-bound, bound, fan_out).astype(np.float32),
            )
        )
    return out


def _chainrule_step(cr, np, params, device, x0, y0):
    layers = []
    for i, (w, b) in enumerate(params):
        lin = cr.nn.Linear(w.shape[1], w.shape[0])
        lin.weight.data = w.copy()  # each model its own weights (a CPU move may share the memory)
        lin.bias.data = b.copy()
        layers.append(lin)
        if i < len(params) - 1:
            layers.append(cr.nn.ReLU())
    model = cr.nn.Sequential(*layers).to(device)
    opt = cr.optim.SGD(model.parameters(), lr=0.01)
    x, y = cr.tensor(x0, device=device), cr.tensor(y0, device=device)

    def step():
        opt.zero_grad()
        loss = cr.nn.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def _torch_step(torch, params, x0, y0, device="cuda"):
    layers = []
    for i, (w, b) in enumerate(params):
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(w))
            lin.bias.copy_(torch.as_tensor(b))
        layers.append(lin)
        if i < len(params) - 1:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.as_tensor(x0, device=device), torch.as_tensor(y0, device=device)

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def _time(step, sync, steps):
    step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return (time.perf_counter() - t0) / steps


def main() -> int:
    p = argparse.ArgumentParser(prog="bench/gpu_check.py")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--skip-suite", action="store_true")
    p.add_argument("--cpu-dry-run", action="store_true", help="part 2 only, on torch CPU, MLP 256-256-256-10")
    args = p.parse_args()
    global SIZES, BATCH
    if args.cpu_dry_run:
        SIZES, BATCH = (256, 256, 256, 10), 128
    elif not _cuda_available():
        print("gpu_check: no CUDA device here (neither torch nor CuPy finds one): nothing was checked")
        return 2
    status = 0
    if not args.skip_suite and not args.cpu_dry_run:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests/test_gpu.py"], cwd=ROOT
        )
        status = 1 if done.returncode not in (0, 5) else 0
    sys.path.insert(0, os.path.join(ROOT, "src"))
    import numpy as np
    import torch

    import chainrule as cr

    params = _params(np)
    rng = np.random.default_rng(1)
    x0 = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    y0 = rng.integers(0, SIZES[-1], BATCH)
    where = "CPU (dry run)" if args.cpu_dry_run else "CUDA"
    if args.cpu_dry_run:

        def sync():
            return None

        device = torch.device("cpu")
        runs = {f"torch {where} eager": (_torch_step(torch, params, x0, y0, "cpu"), sync)}
    else:
        device, sync = "cuda", torch.cuda.synchronize
        runs = {f"torch {where} eager": (_torch_step(torch, params, x0, y0), sync)}
    runs[f"chainrule on torch {where}"] = (_chainrule_step(cr, np, params, device, x0, y0), sync)
    runs[f"chainrule compiled, {where}"] = (cr.compile(_chainrule_step(cr, np, params, device, x0, y0)), sync)
    if importlib.util.find_spec("cupy") is not None and not args.cpu_dry_run:
        import cupy

        sync = cupy.cuda.Device().synchronize
        runs["chainrule on CuPy"] = (_chainrule_step(cr, np, params, cupy.cuda.Device(0), x0, y0), sync)
    first = {name: float(step().item()) for name, (step, _) in runs.items()}
    print("first-step losses (same weights and batch):", {k: round(v, 6) for k, v in first.items()})
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, (step, sync) in runs.items():
            time.sleep(0.3)
            times[name].append(_time(step, sync, args.steps))
    base = statistics.median(times[f"torch {where} eager"])
    print(f"MLP {'-'.join(map(str, SIZES))}, batch {BATCH}, float32, {args.steps} steps x {args.rounds} rounds:")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:<26} {med * 1e3:8.2f} ms/step   {med / base:5.2f}x torch")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
