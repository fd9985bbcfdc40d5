"""docs/check_my_backprop.md: each Python block runs as pasted and prints exactly what the page shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "check_my_backprop.md"
EXAMPLES = re.findall(r"```python\n(.*?)```\n\nprints \(a real run\)\n\n```\n(.*?)```", DOC.read_text("utf-8"), re.S)


def test_the_page_has_its_examples():
    assert len(EXAMPLES) >= 4
    assert "that factor is step a = sigmoid(z)" in EXAMPLES[0][1]
    assert "local       ∂a/∂z = σ(z)·(1 - σ(z)) = 0.1966" in EXAMPLES[0][1]


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_each_block_prints_what_the_page_shows(index, capsys):
    code, shown = EXAMPLES[index]
    assert "import chainrule as cr" in code  # runs on its own, imports included
    exec(compile(code, f"{DOC.name} block {index}", "exec"), {"__name__": "__doc__"})  # the project's own docs
    assert capsys.readouterr().out == shown
