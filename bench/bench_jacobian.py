"""Forward vs reverse mode: the Jacobian of a wide map (R^n -> R^m, n >> m) and of a tall one (m >> n).

    python bench/bench_jacobian.py [--big 1000] [--small 10] [--repeats 7] [--out bench/results/jacobian.json]

The map is ``f(x) = tanh(A @ sin(x))`` with a fixed random ``A`` of shape (m, n),
in float64.  jacfwd needs one tangent pass per input (n), jacrev one backward
pass per output (m), so each should win on the shape that suits it.  The same
run times chainrule, ``torch.func.jacfwd/jacrev`` and JAX's ``jax.jacfwd/jacrev``
without ``jit`` (eager), reports median wall times, the ratios, and checks that
all Jacobians agree.  Not part of the test suite: run it on demand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import chainrule as cr  # noqa: E402

DEFAULT_OUT = ROOT / "bench" / "results" / "jacobian.json"


class THREADS:
    """torch's intra-op thread count (set from --torch-threads; 1 keeps runs on a shared machine steady)."""

    torch = 1


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def chainrule_jacobians(A: np.ndarray) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    def f(x: Any) -> Any:
        return cr.tanh(cr.matmul(A, cr.sin(x)))

    return {"jacfwd": cr.jacfwd(f), "jacrev": cr.jacrev(f)}


def torch_jacobians(A: np.ndarray) -> Optional[dict[str, Callable[[np.ndarray], np.ndarray]]]:
    try:
        import torch
        from torch.func import jacfwd, jacrev
    except ImportError:
        return None
    torch.set_num_threads(THREADS.torch)
    tA = torch.tensor(A)

    def f(x: Any) -> Any:
        return torch.tanh(tA @ torch.sin(x))

    fwd, rev = jacfwd(f), jacrev(f)
    return {
        "jacfwd": lambda x: fwd(torch.from_numpy(x)).numpy(),
        "jacrev": lambda x: rev(torch.from_numpy(x)).numpy(),
    }


def jax_jacobians(A: np.ndarray) -> Optional[dict[str, Callable[[np.ndarray], np.ndarray]]]:
    try:
        import jax

        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
    except ImportError:
        return None
    jA = jnp.asarray(A)

    def f(x: Any) -> Any:
        return jnp.tanh(jA @ jnp.sin(x))

    fwd, rev = jax.jacfwd(f), jax.jacrev(f)  # no jax.jit: eager, op by op
    return {
        "jacfwd": lambda x: np.asarray(fwd(jnp.asarray(x)).block_until_ready()),
        "jacrev": lambda x: np.asarray(rev(jnp.asarray(x)).block_until_ready()),
    }


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "numpy": np.__version__, "chainrule": cr.__version__}
    for name in ("torch", "jax"):
        try:
            found[name] = __import__(name).__version__
        except ImportError:
            found[name] = "not installed"
    return found


def run(big: int, small: int, repeats: int, libraries: Sequence[str]) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    shapes = {"wide": (big, small), "tall": (small, big)}  # (n inputs, m outputs)
    makers = {"chainrule": chainrule_jacobians, "torch.func": torch_jacobians, "jax (eager)": jax_jacobians}
    rows = []
    missing = []
    for shape_name, (n, m) in shapes.items():
        A = rng.standard_normal((m, n)) / np.sqrt(n)
        x = rng.standard_normal(n)
        reference = None
        for lib in libraries:
            fns = makers[lib](A)
            if fns is None:
                missing.append(lib)
                continue
            for mode, fn in fns.items():
                J = fn(x)
                if reference is None:
                    reference = J
                err = float(np.max(np.abs(J - reference)))
                seconds = median_seconds(lambda fn=fn, x=x: fn(x), repeats)
                row = {"map": shape_name, "n": n, "m": m, "library": lib, "mode": mode}
                rows.append({**row, "median_s": seconds, "max_diff": err})
    return {
        "function": "f(x) = tanh(A @ sin(x)), A of shape (m, n), float64",
        "repeats": repeats,
        "versions": versions(),
        "missing": sorted(set(missing)),
        "rows": rows,
        "ratios": ratios(rows),
    }


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """jacfwd / jacrev per library and map, and chainrule's time over each other library's."""
    t = {(r["map"], r["library"], r["mode"]): r["median_s"] for r in rows}
    out = []
    for (map_name, lib, mode), seconds in t.items():
        if mode == "jacfwd" and (map_name, lib, "jacrev") in t:
            ratio = seconds / t[map_name, lib, "jacrev"]
            out.append({"map": map_name, "library": lib, "what": "jacfwd / jacrev", "ratio": ratio})
    for (map_name, lib, mode), seconds in t.items():
        if lib != "chainrule" and (map_name, "chainrule", mode) in t:
            out.append(
                {
                    "map": map_name,
                    "library": lib,
                    "what": f"chainrule / {lib} ({mode})",
                    "ratio": t[map_name, "chainrule", mode] / seconds,
                }
            )
    return out


def table(result: dict[str, Any]) -> str:
    lines = [f"{result['function']}; median of {result['repeats']} runs", ""]
    lines.append(f"{'map':<6} {'n -> m':<12} {'library':<12} {'mode':<7} {'median':>11} {'max |diff|':>11}")
    for r in result["rows"]:
        lines.append(
            f"{r['map']:<6} {str(r['n']) + ' -> ' + str(r['m']):<12} {r['library']:<12} {r['mode']:<7} "
            f"{r['median_s'] * 1e3:>8.2f} ms {r['max_diff']:>11.1e}"
        )
    lines.append("")
    for q in result["ratios"]:
        lines.append(f"{q['map']:<6} {q['library']:<12} {q['what']:<32} {q['ratio']:>9.3g}x")
    if result["missing"]:
        lines.append(f"not measured (not installed): {', '.join(result['missing'])}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--big", type=int, default=1000, help="the long side (default 1000)")
    parser.add_argument("--small", type=int, default=10, help="the short side (default 10)")
    parser.add_argument("--repeats", type=int, default=11, help="timed runs per measurement (default 11)")
    parser.add_argument(
        "--libraries",
        default="chainrule,torch.func,jax (eager)",
        help="comma-separated subset of: chainrule, torch.func, jax (eager)",
    )
    parser.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    libraries = [s.strip() for s in args.libraries.split(",") if s.strip()]
    unknown = [lib for lib in libraries if lib not in ("chainrule", "torch.func", "jax (eager)")]
    if unknown or args.big < 1 or args.small < 1 or args.repeats < 1:
        parser.error(f"bad arguments: unknown libraries {unknown}" if unknown else "sizes and repeats must be >= 1")
    THREADS.torch = max(1, args.torch_threads)
    result = run(args.big, args.small, args.repeats, libraries)
    result["threads"] = {
        "torch": THREADS.torch,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
        "cpus": os.cpu_count(),
    }
    print(table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
