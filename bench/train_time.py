"""How long `chainrule train` takes, and what it reaches: the figures the README's training section quotes.

    python bench/train_time.py                 # 5 fresh-process rounds of --model mlp and --model cnn
    python bench/train_time.py --rounds 9 --json out.json

Each round runs ``python -m chainrule train --model M --quiet`` in a new process (in a scratch directory, so no
checkpoint is left behind) and reads the final line, ``test accuracy A% (...) in Ts``: the training time the
command itself reports, and the accuracy.  The JSON (default ``bench/results/train-<UTC stamp>.json``) holds
every round, the median, the machine and the commit; tests/test_readme_figures.py checks the README's quoted
figures against the file it cites.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FINAL = re.compile(r"test accuracy ([\d.]+)% .* in ([\d.]+)s")


def one_round(model: str) -> tuple[float, float]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run(
            [sys.executable, "-m", "chainrule", "train", "--model", model, "--quiet"],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    m = FINAL.search(done.stdout)
    if not m:
        raise RuntimeError(f"no final 'test accuracy' line in the output of --model {model}:\n{done.stdout}")
    return float(m.group(1)), float(m.group(2))


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "nproc": os.cpu_count(), "platform": platform.platform()}


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="bench/train_time.py", description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="fresh-process rounds per model (default 5)")
    p.add_argument("--models", default="mlp,cnn", help="comma-separated --model values (default mlp,cnn)")
    p.add_argument("--json", help="results file (default bench/results/train-<UTC stamp>.json)")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    info = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "machine": machine(),
        "loadavg_before": list(os.getloadavg()),
        "git": {"commit": commit()},
        "command": "python bench/train_time.py " + " ".join(argv),
    }
    rows = []
    for model in models:
        results = [one_round(model) for _ in range(args.rounds)]
        seconds = [s for _, s in results]
        accuracy = sorted({a for a, _ in results})
        rows.append(
            {
                "model": model,
                "seconds": seconds,
                "median_s": statistics.median(seconds),
                "accuracy_percent": accuracy,
            }
        )
        print(
            f"{model}: {statistics.median(seconds):.1f} s (rounds {min(seconds):.1f}–{max(seconds):.1f} s), "
            f"test accuracy {', '.join(f'{a}%' for a in accuracy)}"
        )
    info["loadavg_after"] = list(os.getloadavg())
    out = (
        Path(args.json)
        if args.json
        else HERE / "results" / f"train-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"info": info, "rows": rows}, indent=1), encoding="utf-8")
    print(f"wrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
