"""Run chainrule's side-by-side benchmark suite (issue 7).

    python bench/run.py                     # every workload, full size
    python bench/run.py --quick             # smaller sizes and fewer repeats (a smoke run)
    python bench/run.py --only mlp_step     # one workload (repeatable: --only a --only b)
    python bench/run.py --threads 2         # BLAS / torch / JAX thread count (default: all cores)
    python bench/run.py --json out.json     # where to write the results (default: bench/results/<stamp>.json)
    python bench/run.py --native-blas       # unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for this run only

Workloads: scalar_mlp, per_op, mlp_step, memory, deep_chain (see docs/bench.md).

Thread pinning happens here, before NumPy, torch or JAX is imported: OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS, MKL_NUM_THREADS and friends are set to ``--threads``, XLA_FLAGS
gets single-threaded Eigen when ``--threads 1``, and later torch.set_num_threads and
threadpoolctl pin again.  Child processes (memory, deep chain) inherit the environment.

``--native-blas``: some machines set OPENBLAS_CORETYPE (and OPENBLAS_L2_SIZE) because
older OpenBLAS builds misbehave on their processors; a current NumPy then runs a
slower, generic kernel.  This option removes both variables from this process's
environment before NumPy loads (re-executing Python if NumPy was somehow already
imported), so only the benchmark run is affected, never tests or CI.  The kernel that
actually ran (threadpoolctl's ``architecture``) is printed and saved in the JSON.

The chainrule measured is the one in ``<repo>/src`` next to this file, so a run measures
the branch it is run on.
"""

from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
WORKLOADS = ("scalar_mlp", "per_op", "mlp_step", "memory", "deep_chain")
BLAS_SAFETY_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.py", description="chainrule vs its peers, side by side.")
    p.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats (a smoke run, not for numbers)")
    p.add_argument("--only", action="append", choices=WORKLOADS, metavar="WORKLOAD", help=f"one of {WORKLOADS}")
    threads_help = f"threads for BLAS, torch and JAX (default: all cores, {os.cpu_count()} here)"
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help=threads_help)
    p.add_argument("--json", metavar="PATH", help="results file (default bench/results/bench-<UTC stamp>.json)")
    p.add_argument(
        "--native-blas",
        action="store_true",
        help="unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for this run so OpenBLAS picks its native kernel",
    )
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads must be at least 1")
    return args


def prepare_environment(args: argparse.Namespace) -> dict:
    """Set thread and BLAS variables before any numerical library loads; returns what was changed."""
    removed = {}
    if args.native_blas:
        removed = {k: os.environ[k] for k in BLAS_SAFETY_VARS if k in os.environ}
        if removed and any(m in sys.modules for m in ("numpy", "torch", "jax")):
            # OpenBLAS reads these when it loads: start over in a clean interpreter.
            env = {k: v for k, v in os.environ.items() if k not in BLAS_SAFETY_VARS}
            os.execve(sys.executable, [sys.executable, *sys.argv], env)
        for k in BLAS_SAFETY_VARS:
            os.environ.pop(k, None)
    n = str(args.threads)
    for k in THREAD_VARS:
        os.environ[k] = n
    if args.threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        extra = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = f"{flags} {extra}".strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["CHAINRULE_BENCH_SRC"] = os.path.join(REPO, "src")
    return {"removed_blas_safety_vars": removed}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    env_changes = prepare_environment(args)
    sys.path[:0] = [os.path.join(REPO, "src"), HERE]

    import common  # noqa: E402  (after the environment is set)

    ctx = common.Context(quick=args.quick, threads=args.threads, repo=REPO, bench_dir=HERE)
    common.pin_threads(args.threads)
    info = common.environment_info(ctx, env_changes)
    common.print_header(info)

    rows: list[dict] = []
    info["loadavg_per_workload"] = {}
    for name in args.only or WORKLOADS:
        module = common.load_workload(name)
        load = os.getloadavg()
        info["loadavg_per_workload"][name] = load
        print(f"\n== {name}: {module.TITLE}  (load average {load[0]:.2f})", flush=True)
        try:
            new_rows = module.run(ctx)
        except Exception as exc:  # one broken workload must not hide the others' numbers
            print(f"   workload {name} failed: {type(exc).__name__}: {exc}", flush=True)
            new_rows = [common.row(name, "chainrule", None, "", note=f"failed: {type(exc).__name__}: {exc}")]
        for r in new_rows:
            print("   " + common.format_row(r), flush=True)
        rows.extend(new_rows)

    for peer, why in ctx.skipped.items():  # a missing peer must show in the table, not vanish from it
        rows.append(common.row("(all)", peer, None, "", note=f"SKIPPED, not importable: {why}"))
    info["loadavg_after"] = os.getloadavg()
    print()
    print(common.table(rows))
    path = common.write_json(args.json, info, rows, ctx)
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
