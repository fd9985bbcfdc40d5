"""No view crops a number: step tables wrap inside their columns, or go vertical when the console is narrow (issue 23).

The check reads the rendered table back: the text of each column, top to bottom with the wrapping removed, must
be exactly that column's cells, in order.  A cropped column (the old failure: piped `chainrule explain` on tensors
lost its last column, "grad to input") fails it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from chainrule.explain.command import explain_expression
from chainrule.format import Table

EXPRESSION = "sum(tanh(W @ x + b))"
AT = ["W=[[1,2,3],[4,5,6]]", "x=[0.1,0.2,0.3]", "b=[0.5,-0.5]"]


def _squash(text: str) -> str:
    return "".join(text.split())


def assert_nothing_cropped(table: Table, rendered: str) -> None:
    lines = rendered.splitlines()
    if any(line.startswith("│") for line in lines):
        columns = ["" for _ in table.headers]
        for line in lines:
            if line.startswith("│"):
                cells = line.strip().strip("│").split("│")
                assert len(cells) == len(table.headers), f"a table line lost columns: {line!r}"
                for k, c in enumerate(cells):
                    columns[k] += _squash(c)
        for k, header in enumerate(table.headers):
            assert columns[k] == _squash("".join(r[k] for r in table.rows)), f"column {header!r} was cropped"
    else:  # vertical: every non-empty cell on a line of its own, after its header
        shown = [line.strip() for line in lines]
        for r in table.rows:
            for h, c in zip(table.headers, r):
                if c:
                    assert f"{h}: {c}" in shown, f"{h}: {c} is missing from the vertical table"


@pytest.fixture(scope="module")
def steps_table() -> Table:
    return explain_expression(EXPRESSION, AT).trace.tables()[0]


@pytest.mark.parametrize("width", [30, 60, 79, 80, 100, 110, 120, 140, 200, 260])
def test_the_step_table_keeps_every_cell_at_any_width(steps_table, width):
    rendered = steps_table.text(width)
    assert_nothing_cropped(steps_table, rendered)
    if steps_table.fits(width):  # side by side, no line is wider than the console (vertical lines may wrap)
        assert max(len(line) for line in rendered.splitlines()) <= max(width, len(steps_table.title))


def test_the_check_sees_a_cropped_table(steps_table):
    """Plant the old failure (a column cut off at the right edge): the reader must notice it."""
    rendered = steps_table.text(200)
    cropped = "\n".join(line[:-12] for line in rendered.splitlines())
    with pytest.raises(AssertionError):
        assert_nothing_cropped(steps_table, cropped)


@pytest.mark.parametrize("columns", [None, "50", "120"])
def test_piped_explain_shows_every_gradient(columns, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns:
        env["COLUMNS"] = columns
    done = subprocess.run(
        [sys.executable, "-m", "chainrule", "explain", EXPRESSION, "--at", *AT],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    steps, leaves = explain_expression(EXPRESSION, AT).trace.tables()
    body = done.stdout.split(steps.title, 1)[1].split(leaves.title, 1)[0]
    assert_nothing_cropped(steps, steps.title + body)
    assert "grad to input" in _squash(body) or "gradtoinput" in _squash(body)
