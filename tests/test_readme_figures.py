"""Every benchmark figure the README quotes is the one in the JSON of the run it cites (issue 27, item 6).

The README's benchmark section names one results file (``bench/results/<stamp>.json``).  Each row of its table
and the speed-ups in its opening paragraph are recomputed here from that file (ratios of medians, ranges of the
per-round ratios, "N× faster").  A figure edited without a run, or a run without the edit, fails here.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
_spec = importlib.util.spec_from_file_location("readme_figures", ROOT / "bench" / "readme_figures.py")
figures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(figures)

SECTION = README.split("## Benchmarks", 1)[1].split("\n## ", 1)[0]


def _cited_run() -> dict:
    cited = re.findall(r"`(bench/results/[\w.-]+\.json)`", SECTION)
    assert len(cited) == 1, f"the Benchmarks section should cite exactly one results file, found {cited}"
    path = ROOT / cited[0]
    assert path.is_file(), f"the README cites {cited[0]}, which is not in the repository"
    return json.loads(path.read_text(encoding="utf-8"))


RUN = _cited_run()


def _table() -> dict[str, list[str]]:
    rows = {}
    for line in SECTION.splitlines():
        if line.startswith("| ") and not line.startswith(("| ---", "| workload")):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_every_table_row_is_mapped_to_a_json_row():
    known = {label for label, *_ in figures.TABLE}
    unmapped = [label for label in _table() if label not in known]
    assert not unmapped, f"README benchmark rows with no JSON row behind them: {unmapped}"


@pytest.mark.parametrize("label,workload,library", [t[:3] for t in figures.TABLE], ids=[t[0] for t in figures.TABLE])
def test_table_row_matches_the_cited_run(label, workload, library):
    table = _table()
    assert label in table, f"the README table has no row {label!r}"
    quoted = tuple(table[label][:2])
    assert quoted == figures.table_cells(RUN, workload, library), f"README row {label!r} disagrees with the cited run"


def test_the_speedups_quoted_in_the_opening_are_the_cited_runs():
    text = " ".join(README.split("\n## ", 1)[0].split())
    for which, pattern in (
        ("eager", r"scalar graphs (\d+)× faster than micrograd \(rounds (\d+)–(\d+)×\)"),
        ("compiled", r"step (\d+)× faster than micrograd \(rounds (\d+)–(\d+)×\)"),
    ):
        m = re.search(pattern, text)
        assert m, f"the opening paragraph should quote the {which} speed-up as 'N× faster than micrograd (rounds a–b×)'"
        assert tuple(int(g) for g in m.groups()) == figures.speedup(RUN, which), which


def test_the_readme_names_the_runs_date_and_commit():
    info = RUN["info"]
    text = " ".join(SECTION.split())
    assert info["git"]["commit"][:7] in text, "the README should name the commit the cited run measured"
    assert info["date_utc"][:10] in text, "the README should name the date of the cited run"


def test_a_stale_figure_fails():
    """Change one figure of the table as a careless edit would: the comparison must see it."""
    label, workload, library = figures.TABLE[0][:3]
    ratio, span = figures.table_cells(RUN, workload, library)
    stale = f"{float(ratio) * 1.1:.3g}"
    assert (stale, span) != figures.table_cells(RUN, workload, library)


def test_the_gc_off_speedup_in_the_opening_is_the_cited_runs():
    text = " ".join(README.split("\n## ", 1)[0].split())
    m = re.search(r"\((\d+\.\d)× with both garbage collectors off\)", text)
    assert m, "the opening paragraph should quote the GC-off speed-up as '(N.N× with both garbage collectors off)'"
    r = figures.row(RUN, "scalar_mlp", "chainrule, GC off / micrograd, GC off")
    assert m.group(1) == f"{1 / r['ratio']:.1f}"


def test_the_training_figures_are_the_cited_runs():
    """'98.6% test accuracy in 4.2 s (median of 5 fresh runs, 3.7–5.1 s ... `bench/results/train-*.json`)'."""
    text = " ".join(README.split())
    m = re.search(
        r"([\d.]+)% test accuracy in ([\d.]+) s \(median of (\d+) fresh runs, ([\d.]+)–([\d.]+) s, .*?"
        r"`(bench/results/train-[\w.-]+\.json)`",
        text,
    )
    assert m, "the README's CNN training figure should cite its bench/train_time.py run"
    accuracy, median, rounds, lo, hi, cited = m.groups()
    run = json.loads((ROOT / cited).read_text(encoding="utf-8"))
    (cnn,) = [r for r in run["rows"] if r["model"] == "cnn"]
    assert [float(accuracy)] == cnn["accuracy_percent"]
    assert (median, int(rounds)) == (f"{cnn['median_s']:.1f}", len(cnn["seconds"]))
    assert (lo, hi) == (f"{min(cnn['seconds']):.1f}", f"{max(cnn['seconds']):.1f}")
