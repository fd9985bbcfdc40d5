"""The README's and docs' interactive examples print what they show (doctest)."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr

ROOT = Path(__file__).resolve().parent.parent


def interactive_examples(path: Path) -> str:
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)
    return "\n".join(b for b in blocks if b.lstrip().startswith(">>>"))


@pytest.mark.parametrize("name", ["README.md", "docs/forward.md"])
def test_examples_print_what_they_show(name):
    source = interactive_examples(ROOT / name)
    assert source.count(">>>") >= 5, f"{name} lost its examples"
    test = doctest.DocTestParser().get_doctest(source, {"np": np, "cr": cr}, name, name, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0, f"{runner.failures} example(s) in {name} print something else"


def script_examples(path: Path) -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)
    return [b for b in blocks if not b.lstrip().startswith(">>>") and "import chainrule" in b]


@pytest.mark.parametrize("index", range(len(script_examples(ROOT / "README.md"))))
def test_readme_scripts_run_as_pasted(index, tmp_path, monkeypatch):
    """Each README script block (imports included) runs on its own, in an empty folder."""
    monkeypatch.chdir(tmp_path)
    source = script_examples(ROOT / "README.md")[index]
    exec(compile(source, f"README.md script {index}", "exec"), {"__name__": "__readme__"})  # the project's own docs


def test_compile_doc_prints_the_schedule_it_shows(capsys):
    text = (ROOT / "docs" / "compile.md").read_text(encoding="utf-8")
    code, shown = re.search(r"```python\n(.*?)```\n\nprints \(a real run\)\n\n```\n(.*?)```", text, re.S).groups()
    exec(compile(code, "docs/compile.md", "exec"), {"__name__": "__doc__"})  # the project's own docs
    assert capsys.readouterr().out == shown


def test_backends_doc_prints_what_it_shows(capsys):
    text = (ROOT / "docs" / "backends.md").read_text(encoding="utf-8")
    code, shown = re.search(r"```python\n(.*?)```\n\nprints \(a real run\)\n\n```\n(.*?)```", text, re.S).groups()
    exec(compile(code, "docs/backends.md", "exec"), {"__name__": "__doc__"})  # the project's own docs
    assert capsys.readouterr().out == shown
