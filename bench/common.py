"""Shared pieces of the benchmark suite: timing, peers, child processes, the table and the JSON file.

Imported by bench/run.py after the thread variables are set.  Times are medians of
interleaved repeats: every library runs once per round, so a burst of load from
another process on this shared machine hits all of them alike and the ratios hold.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import gc
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, Optional

import numpy as np

PEER_MODULES = {"torch": "torch", "jax": "jax", "autograd": "autograd", "micrograd": "micrograd.engine"}


@dataclasses.dataclass
class Context:
    """What every workload gets: run size and where things are."""

    quick: bool
    threads: int
    repo: str
    bench_dir: str
    skipped: dict = dataclasses.field(default_factory=dict)

    def peer(self, name: str) -> Optional[Any]:
        """The peer's module, or None (with a note kept for the report) when it cannot be imported."""
        try:
            return importlib.import_module(PEER_MODULES[name])
        except Exception as exc:  # ImportError, or a broken install
            self.skipped[name] = f"{type(exc).__name__}: {exc}"
            return None


# --- environment -----------------------------------------------------------------------
def pin_threads(n: int) -> None:
    """Pin torch and every BLAS that threadpoolctl can see to n threads (env vars are set earlier)."""
    try:
        import torch

        torch.set_num_threads(n)
        if torch.get_num_interop_threads() != n:
            try:
                torch.set_num_interop_threads(n)
            except RuntimeError:
                pass  # only settable before the first parallel work; harmless here
    except ImportError:
        pass
    try:
        import threadpoolctl

        threadpoolctl.threadpool_limits(n)
    except ImportError:
        pass


def blas_info() -> list[dict]:
    """threadpoolctl's view of the loaded BLAS / OpenMP libraries (which kernel, how many threads)."""
    try:
        import threadpoolctl
    except ImportError:
        return [{"note": "threadpoolctl not installed"}]
    keep = ("user_api", "internal_api", "version", "architecture", "num_threads", "threading_layer", "filepath")
    return [{k: lib.get(k) for k in keep} for lib in threadpoolctl.threadpool_info()]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(repo: str, *args: str) -> str:
    try:
        out = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def versions(ctx: Context) -> dict:
    import chainrule

    out = {"python": platform.python_version(), "numpy": np.__version__, "chainrule": chainrule.__version__}
    out["chainrule_path"] = os.path.dirname(chainrule.__file__)
    for name in PEER_MODULES:
        mod = ctx.peer(name)
        if mod is None:
            out[name] = None
            continue
        top = sys.modules[name]
        out[name] = getattr(top, "__version__", None)
        if out[name] is None:
            try:
                from importlib.metadata import version

                out[name] = version(name)
            except Exception:
                out[name] = "unknown"
    return out


def environment_info(ctx: Context, env_changes: dict) -> dict:
    ver = versions(ctx)  # imports every peer, so threadpoolctl sees all their BLAS libraries
    pin_threads(ctx.threads)
    return {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cpu": _cpu_model(), "nproc": os.cpu_count(), "platform": platform.platform()},
        "loadavg_before": os.getloadavg(),
        "threads": ctx.threads,
        "quick": ctx.quick,
        "git": {
            "branch": _git(ctx.repo, "rev-parse", "--abbrev-ref", "HEAD"),
            "commit": _git(ctx.repo, "rev-parse", "HEAD"),
        },
        "versions": ver,
        "blas_safety_vars_now": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
        "env_changes": env_changes,
        "threadpoolctl": blas_info(),
        "skipped_peers": ctx.skipped,
    }


def print_header(info: dict) -> None:
    m = info["machine"]
    print(f"chainrule benchmark suite  {info['date_utc']} UTC  ({'quick' if info['quick'] else 'full'} run)")
    print(f"machine: {m['cpu']}, {m['nproc']} cores; load average {tuple(round(x, 2) for x in info['loadavg_before'])}")
    print(f"threads: {info['threads']}   git: {info['git']['branch']} {info['git']['commit'][:10]}")
    v = info["versions"]
    print("versions: " + ", ".join(f"{k} {v[k]}" for k in v if k != "chainrule_path"))
    print(f"chainrule from: {v['chainrule_path']}")
    print(f"OPENBLAS_CORETYPE/L2_SIZE now: {info['blas_safety_vars_now']}; removed: {info['env_changes']}")
    for lib in info["threadpoolctl"]:
        if "internal_api" in lib:
            print(
                f"  {lib['internal_api']} {lib['version']} kernel={lib['architecture']} "
                f"threads={lib['num_threads']} ({os.path.basename(lib['filepath'] or '')})"
            )
    for name, why in info["skipped_peers"].items():
        print(f"  peer {name} SKIPPED: {why}")


def load_workload(name: str) -> Any:
    return importlib.import_module(f"workloads.{name}")


# --- timing ----------------------------------------------------------------------------
def compare(
    fns: dict[str, Callable[[], Any]],
    warmup: int,
    repeat: int,
    block: int = 1,
    settle: bool = True,
    cpu: Optional[dict[str, list[float]]] = None,
    timed_collect: bool = False,
    rounds: Optional[dict[str, list[list[float]]]] = None,
    freeze: bool = True,
) -> dict[str, list[float]]:
    """Seconds per call of each function, `repeat` timed calls each.

    Every function is warmed up, then the libraries take turns in rounds of `block`
    timed calls each.  Rounds spread slow drifts of machine load over all libraries.
    With `settle` (for multi-threaded work), each turn starts with a pause of
    SETTLE_S (0.3 s) and one untimed call, so that one library's idle BLAS / OpenMP /
    Eigen worker threads do not steal the cores from the next library's timed calls.
    0.3 s because that is measured, not guessed: after a NumPy GEMM an OpenBLAS worker
    keeps spinning for about 124 ms of CPU; with the 20 ms pause this suite used
    before, torch shared its cores with that thread and chainrule/torch on the MLP
    step read 0.91-1.31 where a 0.3 s pause reads 1.34-1.38 (issue 15).

    `rounds`, if given, receives each library's samples grouped by round, so that
    ratios can be taken round by round (see `compare_rows`): a ratio of two
    libraries timed seconds apart is not disturbed by a load change minutes later.
    With `freeze=False` nothing is hidden from the garbage collector: the natural
    cost a user pays (their imports included).

    Before timing, every object alive (the imported libraries, the models) is moved
    out of the garbage collector's sight with gc.freeze(): otherwise each full
    collection walks torch's and JAX's module objects too, which made chainrule's and
    micrograd's scalar steps up to ~2x slower than in a process that imports neither.
    Garbage made by the timed calls themselves is still collected as usual, and a
    gc.collect() (untimed) at every switch of library keeps one library's cyclic
    garbage (micrograd's graphs are cycles) from being collected on the next one's
    clock.  With `timed_collect`, a gc.collect() after each call is timed as part of
    the call, so each library pays for all of its own garbage in its own time.

    If `cpu` is given, it receives each call's process CPU time (all threads): for
    single-threaded work, CPU time well below wall time means other processes held
    the core.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    per_round: dict[str, list[list[float]]] = rounds if rounds is not None else {}
    per_round.update({k: [] for k in fns})
    gc.collect()
    if freeze:
        gc.freeze()
    try:
        _rounds(fns, repeat, block, settle, times, cpu, timed_collect, per_round)
    finally:
        if freeze:
            gc.unfreeze()
    return times


SETTLE_S = 0.3


def _rounds(
    fns: dict[str, Callable[[], Any]],
    repeat: int,
    block: int,
    settle: bool,
    times: dict[str, list[float]],
    cpu: Optional[dict[str, list[float]]],
    timed_collect: bool,
    per_round: dict[str, list[list[float]]],
) -> None:
    while any(len(t) < repeat for t in times.values()):
        for name, fn in fns.items():
            gc.collect()  # the previous library's cyclic garbage is not this one's to collect
            if settle:
                time.sleep(SETTLE_S)
                fn()
            start = len(times[name])
            for _ in range(min(block, repeat - len(times[name]))):
                c0 = time.process_time()
                t0 = time.perf_counter()
                fn()
                if timed_collect:
                    gc.collect()
                times[name].append(time.perf_counter() - t0)
                if cpu is not None:
                    cpu.setdefault(name, []).append(time.process_time() - c0)
            per_round[name].append(times[name][start:])


def stats(ts: list[float], scale: float = 1.0) -> dict:
    """Median, min, quartiles and every sample, each multiplied by `scale` (to ms, us per op...)."""
    ts = [t * scale for t in ts]
    q = statistics.quantiles(ts, n=4) if len(ts) >= 2 else [ts[0]] * 3
    return {"median": statistics.median(ts), "min": min(ts), "q1": q[0], "q3": q[2], "n": len(ts), "samples": ts}


def run_child(ctx: Context, *args: str, timeout: float = 600) -> dict:
    """Run `python bench/child.py ARGS` in a fresh process and return the JSON it prints last."""
    cmd = [sys.executable, os.path.join(ctx.bench_dir, "child.py"), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=os.environ.copy())
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"child {' '.join(args)} exited {proc.returncode}: {' | '.join(tail)}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- rows, table, JSON -----------------------------------------------------------------
def row(
    workload: str,
    library: str,
    value: Optional[float],
    unit: str,
    *,
    metric: str = "time",
    ratio: Optional[float] = None,
    target: Optional[float] = None,
    extra: Optional[dict] = None,
    note: str = "",
) -> dict:
    """One line of the table: `ratio` is chainrule / this library (lower is better for chainrule)."""
    met = None if (ratio is None or target is None) else bool(ratio <= target)
    return {
        "workload": workload,
        "library": library,
        "metric": metric,
        "value": value,
        "best": (extra or {}).get("min"),
        "unit": unit,
        "ratio": ratio,
        "target": target,
        "met": met,
        "extra": extra or {},
        "note": note,
    }


def rows_vs(
    workload: str, values: dict[str, Optional[float]], unit: str, targets: dict[str, float], **kw: Any
) -> list[dict]:
    """Rows for chainrule and each peer, with ratios chainrule/peer and the targets that apply."""
    extras = kw.pop("extras", {})
    notes = kw.pop("notes", {})
    base = values.get("chainrule")
    out = []
    for lib, v in values.items():
        ratio = None
        peer = not lib.startswith("chainrule")  # chainrule's own variants get no ratio
        if peer and base is not None and v:
            ratio = base / v
        ex = extras.get(lib) or {}
        base_best = (extras.get("chainrule") or {}).get("min")
        ratio_best = base_best / ex["min"] if peer and base_best and ex.get("min") else None
        if ex.get("cpu_median") and ex.get("median"):
            cpu_note = f"cpu {ex['cpu_median'] / ex['median']:.0%}"  # below 100% single-threaded: core was shared
            notes = {**notes, lib: f"{notes[lib]}, {cpu_note}" if notes.get(lib) else cpu_note}
        out.append(
            row(
                workload,
                lib,
                v,
                unit,
                ratio=ratio,
                target=targets.get(lib),
                extra=extras.get(lib),
                note=notes.get(lib, ""),
                **kw,
            )
        )
        out[-1]["ratio_best"] = ratio_best
    return out


def compare_rows(
    workload: str,
    rounds: dict[str, list[list[float]]],
    pairs: list[tuple[str, str, Optional[float]]],
) -> list[dict]:
    """One row per (chainrule variant, peer, target): the ratio of medians, the ratio of
    bests, and the range of the per-round ratios (median of the variant's samples in a
    round over the peer's in the same round).  Lower is better for chainrule."""
    out = []
    for subject, peer, target in pairs:
        if subject not in rounds or peer not in rounds:
            continue
        a = [t for r in rounds[subject] for t in r]
        b = [t for r in rounds[peer] for t in r]
        per = [statistics.median(x) / statistics.median(y) for x, y in zip(rounds[subject], rounds[peer]) if x and y]
        ratio = statistics.median(a) / statistics.median(b)
        r = row(workload, f"{subject} / {peer}", None, "", metric="ratio", ratio=ratio, target=target)
        r["ratio_best"] = min(a) / min(b)
        r["per_round"] = per
        r["extra"] = {"per_round": per}
        out.append(r)
    return out


def _fmt_value(v: Optional[float], unit: str) -> str:
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:.0f} {unit}"
    if abs(v) >= 10:
        return f"{v:.1f} {unit}"
    return f"{v:.3g} {unit}"


def _fmt_range(r: dict) -> str:
    per = r.get("per_round")
    return f"{min(per):.3g}–{max(per):.3g} ({len(per)} rounds)" if per else ""


def format_row(r: dict) -> str:
    ratio = "" if r["ratio"] is None else f"ratio {r['ratio']:.3g}"
    if r.get("per_round"):
        ratio += f" per round {_fmt_range(r)}"
    target = "" if r["target"] is None else f"target <= {r['target']:.3g} -> {'MET' if r['met'] else 'not met'}"
    return (
        f"{r['library']:<16} {r['metric']:<12} {_fmt_value(r['value'], r['unit']):>14}  {ratio}  {target}  {r['note']}"
    )


def table(rows: list[dict]) -> str:
    """A Markdown table (it reads as plain text too): one line per workload, library and metric.

    `median` is what the ratio and the target use; `best` (the fastest repeat) and the
    ratio of bests show what the libraries do when the shared machine leaves them alone.
    """
    head = "| workload | library | metric | median | best | chainrule / peer | per-round | (best) | target | met? |"
    lines = [head, "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.3g}"
        target = "" if r["target"] is None else f"<= {r['target']:.3g}"
        met = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
        value = _fmt_value(r["value"], r["unit"])
        if r["note"]:
            value = f"{value} ({r['note']})"
        best = "" if r.get("best") is None else _fmt_value(r["best"], r["unit"])
        ratio_best = "" if r.get("ratio_best") is None else f"{r['ratio_best']:.3g}"
        cells = (r["workload"], r["library"], r["metric"], value, best, ratio, _fmt_range(r), ratio_best, target, met)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_json(path: Optional[str], info: dict, rows: list[dict], ctx: Context) -> str:
    if path is None:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        path = os.path.join(ctx.bench_dir, "results", f"bench-{stamp}{'-quick' if ctx.quick else ''}.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    info["skipped_peers"] = ctx.skipped
    with open(path, "w") as f:
        json.dump({"info": info, "rows": rows}, f, indent=1, default=str)
    return path
