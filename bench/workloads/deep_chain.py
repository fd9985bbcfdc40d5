"""Workload 5: a deep scalar chain, ``y = y * 1.000001`` a million times, then backward.

Run in a fresh process per library (bench/child.py): forward time, backward time and
peak memory above the baseline.  The gradient must equal 1.000001**N.  PyTorch 0-d
float64 tensors are the peer (micrograd's recursive topological sort cannot go this
deep).  --quick uses 100,000 nodes.
"""

from __future__ import annotations

import math
from typing import Any

TITLE = "deep chain: 1,000,000 scalar multiplies, forward + backward time and peak memory (fresh process each)"


def run(ctx: Any) -> list[dict]:
    from common import rows_vs, run_child

    n = 100_000 if ctx.quick else 1_000_000
    libs = ["chainrule"] + (["torch 0-d"] if ctx.peer("torch") is not None else [])
    results = {lib: run_child(ctx, "deep_chain", lib.split()[0], str(n)) for lib in libs}
    for lib, r in results.items():
        if not math.isclose(r["grad"], r["expected"], rel_tol=1e-6):
            raise AssertionError(f"deep_chain: {lib} gradient {r['grad']} != {r['expected']}")
    w = f"deep_chain n={n:,}"
    rows = []
    rows += rows_vs(
        w, {k: r["forward_s"] + r["backward_s"] for k, r in results.items()}, "s", {}, metric="fwd+bwd", extras=results
    )
    rows += rows_vs(w, {k: r["forward_s"] for k, r in results.items()}, "s", {}, metric="forward")
    rows += rows_vs(w, {k: r["backward_s"] for k, r in results.items()}, "s", {}, metric="backward")
    rows += rows_vs(w, {k: r["peak_mib"] for k, r in results.items()}, "MiB", {}, metric="peak RSS")
    return rows
