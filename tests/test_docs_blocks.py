"""Every Python block in the README and docs/ runs when pasted alone, and shows what it prints (issue 23, item 5).

Each block runs in a fresh interpreter, in an empty folder, with nothing imported for it:
- an interactive block (``>>>``) runs as a doctest; its shown results are its expected output;
- a script block runs as ``demo.py``; where a fenced output block follows it (at most three lines of prose
  between, e.g. "prints (a real run)"), its standard output must equal that block, and where the shown block is
  an error (``SomethingError: ...``), the script must fail with that error, message included (the folder shows
  as ``/tmp/demo``);
- a block whose first line is ``# from src/...py`` quotes the project's code: it must appear there, verbatim.
A deprecation warning raised by chainrule's own code, or by the block itself, fails the block.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```\n", re.S)
SHOWN = re.compile(r"((?:[^`\n][^\n]*\n|\n){0,3}?)```(?:text)?\n(.*?)```", re.S)
ERROR = re.compile(r"^[\w.]*(?:Error|Exception|Warning)\b")
WARNINGS = ("-W", "error::DeprecationWarning:chainrule", "-W", "error::DeprecationWarning:__main__")
DOCTEST_RUNNER = """
import doctest, sys
source = open(sys.argv[1], encoding="utf-8").read()
test = doctest.DocTestParser().get_doctest(source, {"__name__": "__main__"}, "block", "block", 0)
runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
runner.run(test)
sys.exit(1 if runner.failures else 0)
"""


@dataclass
class Block:
    doc: Path
    index: int
    code: str
    shown: Optional[str]  # the output block that follows a script, if any

    @property
    def name(self) -> str:
        return f"{self.doc.relative_to(ROOT)}#{self.index}"


def _blocks() -> list[Block]:
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for i, m in enumerate(BLOCK.finditer(text)):
            after = SHOWN.match(text, m.end())
            shown = after.group(2) if after and not m.group(1).lstrip().startswith(">>>") else None
            found.append(Block(doc, i, m.group(1), shown))
    return found


BLOCKS = _blocks()


def test_the_docs_have_blocks():
    assert len(BLOCKS) >= 20 and sum(b.shown is not None for b in BLOCKS) >= 4


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *WARNINGS, *args], cwd=cwd, capture_output=True, text=True, timeout=300, encoding="utf-8"
    )


@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_block_runs_alone_and_prints_what_it_shows(block: Block, tmp_path: Path):
    first = block.code.lstrip().splitlines()[0]
    if first.startswith("# from src/"):
        source = (ROOT / first.removeprefix("# from ").strip()).read_text(encoding="utf-8")
        body = block.code.split("\n", 1)[1]
        assert body.strip() in source, f"{block.name} quotes {first[7:]} but the code there differs"
        return
    script = tmp_path / "demo.py"
    if first.startswith(">>>"):
        script.write_text(block.code, encoding="utf-8")
        (tmp_path / "runner.py").write_text(DOCTEST_RUNNER, encoding="utf-8")
        done = _run(["runner.py", "demo.py"], tmp_path)
        assert done.returncode == 0, f"{block.name}, pasted alone, does not print what it shows:\n{done.stdout}"
        return
    script.write_text(block.code, encoding="utf-8")
    done = _run(["demo.py"], tmp_path)
    out = done.stdout.replace(str(tmp_path), "/tmp/demo")
    err = done.stderr.replace(str(tmp_path), "/tmp/demo")
    if block.shown is not None and ERROR.match(block.shown):
        assert done.returncode != 0, f"{block.name} shows an error, but the script ran through"
        assert block.shown.strip() in err, f"{block.name} shows an error the script does not raise:\n{err}"
        return
    assert done.returncode == 0, f"{block.name}, pasted alone, fails:\n{err}"
    if block.shown is not None:
        assert out == block.shown, f"{block.name} prints something else than it shows:\n{out}"
