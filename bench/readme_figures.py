"""The README's benchmark figures, computed from one results file (issue 27, item 6).

    python bench/readme_figures.py bench/results/bench-<stamp>.json

prints the README's benchmark table and the speed-ups its opening paragraph quotes, from that run's JSON:
ratios of medians to three significant figures, per-round ranges to two decimals (two significant figures
below 0.1).  Paste them into README.md with the run's file name, date and commit; tests/test_readme_figures.py
recomputes every quoted figure from the file the README cites, so an edit without a run (or a run without the
edit) fails the tests.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# README table: (label, workload, library in the JSON, target text).  The label is the table's first cell.
TABLE = (
    ("per-op overhead, shape (4,), vs torch eager", "per_op", "chainrule / torch eager", "≤ 0.45"),
    ("per-op overhead, shape (4096,), vs torch eager", "per_op", "chainrule (4096,) / torch (4096,)", "≤ 0.8"),
    (
        "MLP step 784-512-512-10, b256, f32: ops vs torch ops",
        "mlp_step",
        "chainrule ops / torch ops",
        "≤ 1.15",
    ),
    ("same, `-log_softmax` loss vs torch `F.cross_entropy`", "mlp_step", "chainrule ops+CE / torch ops+CE", "≤ 1.15"),
    ("same, `nn.Linear` + `cross_entropy` + `optim.SGD` in both", "mlp_step", "chainrule nn / torch nn", "≤ 1.15"),
    (
        "same, chainrule `cr.compile`d vs torch eager `nn`",
        "mlp_step",
        "chainrule nn compiled / torch nn",
        "≤ 1.0",
    ),
    (
        "same, chainrule on torch CPU tensors, `cr.compile`d, vs torch `nn`",
        "mlp_step",
        "chainrule nn compiled on torch / torch nn",
        "≤ 0.9",
    ),
    ("same, chainrule ops vs hand-written NumPy", "mlp_step", "chainrule ops / NumPy by hand", ""),
    (
        "scalar MLP (micrograd two-moons step) vs micrograd, GC on",
        "scalar_mlp",
        "chainrule, GC default / micrograd, GC default",
        "≤ 0.125",
    ),
    ("same, both with GC off", "scalar_mlp", "chainrule, GC off / micrograd, GC off", "≤ 0.67"),
    (
        "same, chainrule GC on vs micrograd GC off",
        "scalar_mlp",
        "chainrule, GC default / micrograd, GC off",
        "≤ 0.67",
    ),
    (
        "same, `cr.compile`d vs micrograd, GC on",
        "scalar_mlp",
        "chainrule compiled, GC default / micrograd, GC default",
        "≤ 0.02",
    ),
    (
        "same, chainrule vs torch 0-d tensors",
        "scalar_mlp",
        "chainrule, GC default / torch 0-d, GC default",
        "≤ 0.33",
    ),
    ("peak memory, sigmoid + sum backward (100×4096 f32) vs torch", "memory sigmoid", "torch", "≤ 1"),
    ("peak memory, 100 `nn` MLP steps vs torch", "memory mlp nn x100 steps", "torch-nn", "≤ 0.5"),
    (
        "same, `cr.compile`d vs torch",
        "memory mlp nn x100 steps",
        "torch-nn (vs chainrule-nn-compiled)",
        "≤ 0.5",
    ),
)
SPEEDUPS = {
    "eager": "chainrule, GC default / micrograd, GC default",
    "compiled": "chainrule compiled, GC default / micrograd, GC default",
}


def sig(x: float, digits: int) -> str:
    """x to `digits` significant figures, written without an exponent."""
    exponent = int(f"{x:e}".split("e")[1])
    return f"{x:.{max(digits - 1 - exponent, 0)}f}"


def ratio_text(x: float) -> str:
    return sig(x, 3)


def bound_text(x: float) -> str:
    return f"{x:.2f}" if x >= 0.1 else sig(x, 2)


def row(run: dict, workload: str, library: str) -> dict:
    found = [r for r in run["rows"] if r["workload"] == workload and r["library"] == library]
    if len(found) != 1:
        raise KeyError(f"no single row {workload!r} / {library!r} in the run")
    return found[0]


def per_round(r: dict) -> list[float]:
    return r.get("per_round") or (r.get("extra") or {}).get("per_round") or []


def table_cells(run: dict, workload: str, library: str) -> tuple[str, str]:
    """The table's 'ratio of medians' and 'per-round range' cells for one JSON row."""
    r = row(run, workload, library)
    rounds = per_round(r)
    span = f"{bound_text(min(rounds))}–{bound_text(max(rounds))}" if rounds else ""
    return ratio_text(r["ratio"]), span


def speedup(run: dict, which: str) -> tuple[int, int, int]:
    """'N× faster than micrograd (rounds a–b×)': the inverse median ratio and the inverse per-round range."""
    r = row(run, "scalar_mlp", SPEEDUPS[which])
    rounds = per_round(r)
    return round(1 / r["ratio"]), round(1 / max(rounds)), round(1 / min(rounds))


def markdown(run: dict) -> str:
    lines = ["| workload | ratio of medians | per-round range | target |", "| --- | ---: | --- | --- |"]
    for label, workload, library, target in TABLE:
        ratio, span = table_cells(run, workload, library)
        r = row(run, workload, library)
        mark = "" if not target else (" ✓" if r.get("met") else " ✗")
        lines.append(f"| {label} | {ratio} | {span} | {target}{mark if target else ''} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    run = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    print(markdown(run))
    for which in SPEEDUPS:
        n, lo, hi = speedup(run, which)
        print(f"{which}: {n}× faster than micrograd (rounds {lo}–{hi}×)")
    print(f"run: {run['info']['date_utc']} UTC, commit {run['info']['git']['commit'][:7]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
