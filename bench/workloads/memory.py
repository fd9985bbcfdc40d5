"""Workload 4: peak memory, each case in a fresh process (bench/child.py).

* sigmoid: ``sigmoid(x).sum()`` and backward, x a (100, 4096) float32 tensor (1.6 MiB)
  that requires grad; the tensor is made after the baseline, so it counts.
* mlp: 100 training steps of the mlp_step workload's model (784-512-512-10, batch 256,
  float32, SGD; 20 steps with --quick); weights and batch exist before the baseline,
  so the peak is gradients, activations, saved values and temporaries.

Peak = resident memory high-water mark above a baseline taken after imports and setup
(see child.py for the two methods).  Target: chainrule <= PyTorch on both.
"""

from __future__ import annotations

from typing import Any

TITLE = "peak memory above baseline (fresh process each): sigmoid+sum backward on (100, 4096) f32, MLP steps"


def run(ctx: Any) -> list[dict]:
    from common import rows_vs, run_child

    torch = ctx.peer("torch") is not None
    steps = 20 if ctx.quick else 100
    rows = []
    cases = [
        ("sigmoid", "sigmoid", (), ["chainrule"] + (["torch"] if torch else [])),
        (f"mlp x{steps} steps", "mlp", (str(steps),), ["chainrule"] + (["torch"] if torch else [])),
        (
            f"mlp nn x{steps} steps",
            "mlp",
            (str(steps),),
            ["chainrule-nn", "chainrule-nn-compiled"] + (["torch-nn"] if torch else []),
        ),
    ]
    for title, case, args, libs in cases:
        results = {lib: run_child(ctx, "memory", case, lib, *args) for lib in libs}
        values = {lib: r["peak_mib"] for lib, r in results.items()}
        if "torch-nn" in values:  # each chainrule variant against torch's nn step
            for lib in ("chainrule-nn", "chainrule-nn-compiled"):
                sub = {"chainrule": values[lib], "torch-nn": values["torch-nn"]}
                r = rows_vs(f"memory {title}", sub, "MiB", {"torch-nn": 0.5}, metric="peak RSS", extras=results)
                r[0]["library"] = lib
                rows += r if lib == "chainrule-nn" else r[:1] + [dict(r[1], library=f"torch-nn (vs {lib})")]
            continue
        target = 1.0 if case == "sigmoid" else 0.5  # issue 7's target for one backward, issue 15's for training
        rows += rows_vs(f"memory {title}", values, "MiB", {"torch": target}, metric="peak RSS", extras=results)
    return rows
