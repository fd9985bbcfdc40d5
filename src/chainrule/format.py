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


class Table:
    """Rows of text cells rendered as a rich table, plain text, Markdown or HTML."""

    def __init__(
        self, title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], keep_whole: Sequence[int] = ()
    ) -> None:
        self.title = title
        self.headers = list(headers)
        self.rows = [list(r) for r in rows]
        self.keep_whole = set(keep_whole)  # columns that wrap last (formulas)

    def rich(self, width: int = 120) -> Any:
        from rich.table import Table as RichTable
        from rich.text import Text

        # Cells are plain text, never markup: a formula such as "[z>w]" must show as written.
        table = RichTable(title=Text(self.title), show_lines=False, title_justify="left")
        for k, h in enumerate(self.headers):
            # a formula folds badly: on a wide console its column keeps up to 30 characters whole, the others wrap
            longest = max((len(r[k]) for r in self.rows), default=0)
            keep = min(longest, 30, width // 4) if k in self.keep_whole and width >= 100 else None
            table.add_column(Text(h), overflow="fold", min_width=keep)
        for r in self.rows:
            table.add_row(*(Text(c) for c in r))
        return table

    def text(self, width: Optional[int] = None) -> str:
        """The table as plain text, ``width`` columns wide (default: the terminal's width, as rich measures it)."""
        try:
            from rich.console import Console
        except ImportError:
            return self.plain()
        buf = io.StringIO()
        if width is None:
            width = shutil.get_terminal_size((120, 24)).columns  # (not a terminal: 120)
        console = Console(file=buf, width=width, color_system=None, force_terminal=False, legacy_windows=False)
        console.print(self.rich(width))
        return "\n".join(line.rstrip() for line in buf.getvalue().splitlines())

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
