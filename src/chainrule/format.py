"""Number and table formatting shared by trace, draw and derive."""

from __future__ import annotations

import html
import io
import shutil
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

SMALL = 6  # tensors with at most this many elements show their values


def fmt_scalar(v: Any, precision: int = 2) -> str:
    v = float(v)
    if v != v:
        return "nan"
    if v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    if v == int(v) and abs(v) < 1e6:
        s = f"{v:.{precision}f}"
    elif abs(v) >= 1e5 or abs(v) < 0.5 * 10.0**-precision:
        s = f"{v:.{precision}e}"
    else:
        s = f"{v:.{precision}f}"
    if s.startswith("-") and float(s) == 0:
        s = s[1:]
    return s


def fmt_shape(shape: Sequence[int]) -> str:
    """``(64, 32)`` -> ``64×32``; ``()`` -> ``scalar``."""
    return "×".join(str(s) for s in shape) if len(shape) else "scalar"


def fmt_value(v: Any, precision: int = 2, small: int = SMALL) -> str:
    """A scalar as a number; a small array as its values (a matrix with its shape after them); a large one by its shape.

    The shape never comes first, so ``2x = [0.44, 0.52]`` cannot read as ``2·[...]``.
    """
    if v is None:
        return ""
    if type(v) is float or np.ndim(v) == 0:
        return fmt_scalar(v, precision)
    arr = np.asarray(v)
    if arr.dtype == bool:
        arr = arr.astype(float)
    shape = fmt_shape(arr.shape)
    if arr.size <= small:
        values = _nested(arr, precision)
        return values if arr.ndim == 1 else f"{values} ({shape})"
    return f"array {shape}"


def _nested(arr: np.ndarray, precision: int) -> str:
    if arr.ndim == 0:
        return fmt_scalar(arr, precision)
    return "[" + ", ".join(_nested(a, precision) for a in arr) + "]"


def fmt_const(v: Any) -> str:
    """A constant operand as it would be written in the expression."""
    if np.ndim(v) == 0:
        f = float(v)
        return str(int(f)) if abs(f) < 1e15 and f == int(f) else repr(f)  # (int(inf) would raise)
    return fmt_value(v, 3)


_LEFT_EDGES = {"┏": "┓", "┃": "┃", "┡": "┩", "│": "│", "└": "┘"}  # each table line's first and last character


class Table:
    """Rows of text cells rendered as a rich table, plain text, Markdown or HTML."""

    def __init__(
        self, title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], keep_whole: Sequence[int] = ()
    ) -> None:
        self.title = title
        self.headers = list(headers)
        self.rows = [list(r) for r in rows]
        self.keep_whole = set(keep_whole)  # columns that wrap last (formulas)

    # rich needs 3 characters of border and padding per column, plus one
    def _frame(self) -> int:
        return 3 * len(self.headers) + 1

    def fits(self, width: int) -> bool:
        """Whether the columns side by side leave each at least 8 characters (else :meth:`text` goes vertical)."""
        return width - self._frame() >= 8 * len(self.headers)

    def rich(self, width: int = 120, keep: bool = True) -> Any:
        from rich.table import Table as RichTable
        from rich.text import Text

        # Cells are plain text, never markup: a formula such as "[z>w]" must show as written.
        table = RichTable(title=Text(self.title), show_lines=False, title_justify="left")
        # A formula folds badly: on a wide console its column keeps up to 30 characters whole and the others
        # wrap, but only while every column still gets room; minimum widths that add up to more than the
        # console would make rich crop the last columns, and a cropped table hides the answer.
        keeps = {}
        for k in self.keep_whole:
            longest = max((len(r[k]) for r in self.rows), default=0)
            keeps[k] = min(longest, 30, width // 4)
        others = len(self.headers) - len(keeps)
        if not keep or width < 100 or sum(keeps.values()) + 8 * others + self._frame() > width:
            keeps = {}
        for k, h in enumerate(self.headers):
            table.add_column(Text(h), overflow="fold", min_width=keeps.get(k))
        for r in self.rows:
            table.add_row(*(Text(c) for c in r))
        return table

    def vertical(self) -> str:
        """One block per row, one line per column (``header: cell``): for consoles too narrow for the columns."""
        pad = max(len(h) for h in self.headers)
        lines = [self.title]
        for r in self.rows:
            lines.append("")
            lines += [f"  {h.rjust(pad)}: {c}".rstrip() for h, c in zip(self.headers, r) if c]
        return "\n".join(lines)

    def text(self, width: Optional[int] = None) -> str:
        """The table as plain text, ``width`` columns wide (default: the terminal's width, as rich measures it).

        Cells wrap inside their columns; where the console cannot give every column 8 characters the table
        is written vertically instead.  No cell is ever cropped.
        """
        if width is None:
            width = shutil.get_terminal_size((120, 24)).columns  # (not a terminal: 120)
        if not self.fits(width):
            return self.vertical()
        try:
            from rich.console import Console
        except ImportError:
            return self.plain()
        for keep in (True, False):
            buf = io.StringIO()
            console = Console(file=buf, width=width, color_system=None, force_terminal=False, legacy_windows=False)
            console.print(self.rich(width, keep))
            lines = [line.rstrip() for line in buf.getvalue().splitlines()]
            body = [line for line in lines if line[:1] in _LEFT_EDGES]
            if all(line[-1:] == _LEFT_EDGES[line[0]] for line in body):
                break  # every line ends at the table's right edge: nothing was cropped
        return "\n".join(lines)

    def plain(self) -> str:
        widths = [len(h) for h in self.headers]
        for r in self.rows:
            widths = [max(w, len(c)) for w, c in zip(widths, r)]
        lines = [self.title, "  ".join(h.ljust(w) for h, w in zip(self.headers, widths))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in self.rows]
        return "\n".join(lines)

    def markdown(self) -> str:
        def cell(s: str) -> str:
            return s.replace("|", "\\|") or " "

        lines = [f"**{self.title}**", "", "| " + " | ".join(cell(h) for h in self.headers) + " |"]
        lines.append("|" + "|".join("---" for _ in self.headers) + "|")
        lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in self.rows]
        return "\n".join(lines)

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.headers)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in self.rows)
        return (
            f"<table><caption style='text-align:left'>{html.escape(self.title)}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )
