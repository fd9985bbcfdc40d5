"""The torch.nn example in docs/training.md runs and prints what the page says it prints."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "training.md"


def test_torch_nn_example_in_training_md_prints_what_it_shows():
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("### The `torch.nn` parts") :]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    expected = [line[2:] for line in code.splitlines() if line.startswith("# [")]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOC), "exec"), {"__name__": "__doc_example__"})  # noqa: S102  (our own doc)
    assert out.getvalue().splitlines() == expected


def test_convolution_example_in_training_md_prints_what_it_shows():
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("How the convolution runs (issue 27)") :]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    expected = section.split("prints\n\n```\n", 1)[1].split("```", 1)[0].splitlines()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOC), "exec"), {"__name__": "__doc_example__"})  # noqa: S102  (our own doc)
    assert out.getvalue().splitlines() == expected
