"""docs/derive.md shows what derive prints: each `$ chainrule derive ...` block is run and compared."""

import re
import shlex
from pathlib import Path

import pytest

from chainrule.cli import main

DOC = Path(__file__).resolve().parent.parent / "docs" / "derive.md"
BLOCKS = re.findall(r"```text\n(\$ chainrule .*?)\n```", DOC.read_text(), flags=re.S)


def test_the_doc_has_examples():
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("block", BLOCKS, ids=[b.split("\n")[0][:60] for b in BLOCKS])
def test_each_example_prints_what_the_doc_shows(block, capsys):
    command, *shown = block.split("\n")
    main(shlex.split(command[len("$ chainrule ") :]))
    captured = capsys.readouterr()
    printed = (captured.out + captured.err).rstrip("\n").split("\n")
    parts, current = [], []
    for line in shown:  # "..." separates pieces that must appear in order
        if line == "...":
            parts.append(current)
            current = []
        else:
            current.append(line)
    parts.append(current)
    at = 0
    for piece in parts:
        if not piece:
            continue
        for start in range(at, len(printed) - len(piece) + 1):
            if printed[start : start + len(piece)] == piece:
                at = start + len(piece)
                break
        else:
            raise AssertionError("not printed as shown:\n" + "\n".join(piece))
