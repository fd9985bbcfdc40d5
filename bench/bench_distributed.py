"""Data-parallel training with chainrule.distributed: measured here at 1 and 2 workers, modelled for N machines.

    python bench/bench_distributed.py              # both models, 1 and 2 workers, then the cost model
    python bench/bench_distributed.py --quick      # fewer steps (a smoke run, not for numbers)
    python bench/bench_distributed.py --json PATH  # where to write the numbers (default bench/results/)

Models: the digits MLP (64-64-10, global batch 64, as ``chainrule train``) and a
784-512-512-10 MLP (global batch 256, as the mlp_step workload), float32, ReLU,
cross-entropy, SGD.  Every worker is pinned to one BLAS thread, so two workers
use the two cores of this machine and one worker uses one.

Measured per step (medians over repeats): the whole data-parallel step, the
``all_reduce_gradients`` call inside it (which includes waiting for the slower
rank), a bare allreduce of the same buckets with the ranks in lockstep, and, on
one worker, the compute time of a step at the per-worker batch that 8 and 64
workers would each get (global batch / N).  The cost model (docs/distributed.md)
is evaluated from those numbers:

    t_step(N) = t_compute(B / N) + t_allreduce(N)
    t_allreduce(N) = 2 (N - 1) / N * bytes / bandwidth + 2 (N - 1) * latency     (ring allreduce)
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SRC = os.path.join(REPO, "src")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")
MODELS = {"digits 64-64-10": ((64, 64, 10), 64), "784-512-512-10": ((784, 512, 512, 10), 256)}
WORKERS = (1, 8, 64)
LINKS_GBIT = (10, 100)
# Per-message latency of one ring step: TCP over 10 Gb/s Ethernet, RDMA (InfiniBand/RoCE) at 100 Gb/s.
LATENCY_S = {10: 25e-6, 100: 3e-6}


# --- worker: runs under mpiexec ----------------------------------------------------------------
def measure(name: str, sizes: tuple[int, ...], batch: int, steps: int, repeats: int) -> dict:
    """One model's numbers on this rank (see the module docstring)."""
    import numpy as np

    import chainrule as cr
    from chainrule import distributed as dist
    from chainrule import nn, optim

    world = dist.get_world_size()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch * 8, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], batch * 8)
    model = nn.MLP(list(sizes), activation="relu", rng=0)
    ddp = dist.DistributedDataParallel(model)
    opt = optim.SGD(model.parameters(), lr=0.01)
    n_params = sum(p.data.size for p in model.parameters())

    def step(b: int, local: int, sync: bool) -> None:
        idx = np.arange(b * local, (b + 1) * local) % len(x)
        mine = dist.shard(idx) if sync else idx
        loss = nn.cross_entropy(model(cr.Tensor(x[mine])), y[mine])
        opt.zero_grad()
        loss.backward()
        if sync:
            ddp.all_reduce_gradients(num_samples=len(mine))
        opt.step()

    for b in range(3):
        step(b, batch, True)
    step_times, reduce_times, bare = [], [], []
    for _ in range(repeats):
        dist.barrier()
        ddp.allreduce_seconds = 0.0
        t0 = time.perf_counter()
        for b in range(steps):
            step(b, batch, True)
        step_times.append((time.perf_counter() - t0) / steps)
        reduce_times.append(ddp.allreduce_seconds / steps)
    for _ in range(repeats):
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(steps):
            ddp.all_reduce_gradients()
        bare.append((time.perf_counter() - t0) / steps)
    row = {
        "model": name,
        "workers": world,
        "global_batch": batch,
        "params": int(n_params),
        "gradient_bytes": int(n_params * 4),
        "step_s": statistics.median(step_times),
        "allreduce_in_step_s": statistics.median(reduce_times),
        "bare_allreduce_s": statistics.median(bare),
        "bare_allreduce_min_s": min(bare),
    }
    if world == 1:  # compute-only steps at the per-worker batch of N workers
        compute = {}
        for n in WORKERS:
            local = max(1, batch // n)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                for b in range(steps):
                    step(b, local, False)
                times.append((time.perf_counter() - t0) / steps)
            compute[str(n)] = {"local_batch": local, "step_s": statistics.median(times)}
        row["compute_at_local_batch"] = compute
    return row


def worker(quick: bool) -> None:
    sys.path.insert(0, SRC)
    from chainrule import distributed as dist

    dist.init_process_group(timeout=120)
    steps, repeats = (10, 3) if quick else (40, 7)
    results = [measure(name, sizes, batch, steps, repeats) for name, (sizes, batch) in MODELS.items()]
    if dist.get_rank() == 0:
        print("RESULT " + json.dumps(results), flush=True)


# --- driver ---------------------------------------------------------------------------------------
def ring_allreduce_s(nbytes: float, n: int, gbit: float) -> float:
    if n == 1:
        return 0.0
    return 2 * (n - 1) / n * nbytes / (gbit * 1e9 / 8) + 2 * (n - 1) * LATENCY_S[gbit]


def run_workers(n: int, quick: bool) -> list[dict]:
    from chainrule.distributed import INSTALL_HINT

    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if not os.path.exists(mpiexec):
        import shutil

        mpiexec = shutil.which("mpiexec") or sys.exit(f"no mpiexec found: {INSTALL_HINT}")
    env = {**os.environ, "PYTHONPATH": SRC, **{v: "1" for v in THREAD_VARS}}
    cmd = [mpiexec, "-n", str(n), sys.executable, os.path.abspath(__file__), "--worker"]
    if quick:
        cmd.append("--quick")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        sys.exit(f"workers failed ({proc.returncode}):\n{proc.stderr}")
    line = next(s for s in proc.stdout.splitlines() if s.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="bench/bench_distributed.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer steps: a smoke run, not for numbers")
    p.add_argument("--json", metavar="PATH", help="results file (default bench/results/distributed-<UTC stamp>.json)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args.quick)
        return 0
    sys.path.insert(0, SRC)
    load_before = os.getloadavg()[0]
    measured = {n: run_workers(n, args.quick) for n in (1, 2)}
    load_after = os.getloadavg()[0]
    print(f"{os.cpu_count()} cores; 1-minute load average {load_before:.1f} before, {load_after:.1f} after")

    print("measured here (1 BLAS thread per worker; ms per step, medians)")
    print(
        f"{'model':<16} {'workers':>7} {'step':>8} {'steps/s':>8} {'allreduce':>9} {'share':>6} "
        f"{'bare AR':>8} {'min':>7}"
    )
    for n, rows in measured.items():
        for r in rows:
            share = r["allreduce_in_step_s"] / r["step_s"]
            print(
                f"{r['model']:<16} {n:>7} {1e3 * r['step_s']:>8.3f} {1 / r['step_s']:>8.0f} "
                f"{1e3 * r['allreduce_in_step_s']:>9.3f} {100 * share:>5.1f}% {1e3 * r['bare_allreduce_s']:>8.3f} "
                f"{1e3 * r['bare_allreduce_min_s']:>7.3f}"
            )
    model_rows = []
    print("\ncost model: expected step time (ms) and speedup over 1 worker, global batch fixed")
    header = f"{'model':<16} {'link':>8} " + " ".join(f"{f'N={n}':>22}" for n in WORKERS)
    print(header)
    for r in measured[1]:
        base = r["compute_at_local_batch"]["1"]["step_s"]
        nbytes = r["gradient_bytes"]
        for gbit in LINKS_GBIT:
            cells = []
            for n in WORKERS:
                comp = r["compute_at_local_batch"][str(n)]["step_s"]
                comm = ring_allreduce_s(nbytes, n, gbit)
                t = comp + comm
                model_rows.append(
                    {
                        "model": r["model"],
                        "gbit": gbit,
                        "workers": n,
                        "local_batch": r["compute_at_local_batch"][str(n)]["local_batch"],
                        "compute_s": comp,
                        "allreduce_s": comm,
                        "step_s": t,
                        "speedup": base / t,
                    }
                )
                cells.append(f"{1e3 * t:7.3f} ({base / t:4.1f}x, {100 * comm / t:3.0f}% AR)")
            print(f"{r['model']:<16} {gbit:>5}Gb/s " + " ".join(f"{c:>22}" for c in cells))
    path = args.json or os.path.join(
        HERE, "results", f"distributed-{_dt.datetime.now(_dt.timezone.utc).strftime('%Y%m%dT%H%M%SZ')}.json"
    )
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        record = {"measured": measured, "model": model_rows, "latency_s": LATENCY_S, "load": [load_before, load_after]}
        json.dump(record, f, indent=1)
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
