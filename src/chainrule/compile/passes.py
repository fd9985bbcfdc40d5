"""Passes over a written schedule: buffers onto arrays (shared, and in place), and early release.

They read the lines the writer produced, not the primitives: a buffer is a name ``b_<var>``
that a line writes with ``out=``, and a variable may be that buffer exactly or a view of it.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from .runtime import describe, empty

VAR = re.compile(r"\b(?:v|g|lg|t)\d+\b")
BUF = re.compile(r"\bb_(?:v|g|lg|t)\d+\b")


def assign_buffers(lines: list[str], meta: dict, bufs: dict, alias: dict, nslots: int) -> tuple[list, list, dict]:
    """Give the logical buffers arrays, shared where lifetimes do not overlap; rename them in the lines.

    A buffer lives from the line that first writes it to the last line that reads it or any
    variable that may be (a view of) it.  One whose last line comes before another's first, of
    the same shape and dtype, lends it its array.  On the same line only in place: where the
    line is elementwise and reads the dying buffer as an operand that is exactly that array (an
    ``out=`` equal to an operand, never overlapping it otherwise).  Returns the lines, the header
    lines that list the arrays, and the arrays by name.
    """
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for k, line in enumerate(lines):
        code = line.split("#", 1)[0]
        for name in BUF.findall(code):
            first.setdefault(name, k)
            last[name] = k
        for var in VAR.findall(code):
            for b in alias.get(var, ()):
                last[b] = max(last.get(b, k), k)
    free: dict[tuple, list[str]] = {}
    active: dict[str, tuple[int, str]] = {}  # logical buffer -> (last line, array name)
    phys: dict[str, str] = {}
    arrays: dict[str, Any] = {}
    for name in sorted(first, key=lambda b: (first[b], b)):
        start = first[name]
        for other, (end, p) in list(active.items()):
            if end < start:
                free.setdefault(bufs[other], []).append(p)
                del active[other]
        p = _in_place(name, start, lines[start], meta.get(start), bufs, alias, last, active)
        if p is None:
            pool = free.get(bufs[name])
            if pool:
                p = pool.pop()
            else:
                p = f"b{len(arrays)}"
                arrays[p] = empty(*bufs[name])
        phys[name] = p
        active[name] = (last[name], p)
    out = [BUF.sub(lambda m: phys[m.group(0)], line) for line in lines]
    nbytes = sum(a.nbytes if type(a) is np.ndarray else a.element_size() * a.numel() for a in arrays.values())
    size = f"{nbytes / 2**20:.2f} MiB" if nbytes >= 2**20 else f"{nbytes / 2**10:.1f} KiB"
    header = [f"    # buffers (allocated once, reused by every replay; {size}):"] if arrays else []
    header += [f"    #   {p}: {describe(a)}" for p, a in arrays.items()]
    if nslots:
        header.append(f"    #   S[0..{nslots - 1}]: leaf gradients, reused while nobody else holds them")
    return out, header, arrays


def _in_place(name: str, k: int, line: str, meta: Any, bufs: dict, alias: dict, last: dict, active: dict) -> Any:
    """The array of an operand buffer that dies on line ``k``, if ``name`` (written there) may take it over.

    ``meta``: ``(buffer written, elementwise, {operand variable: its buffer}, {operand variable: uses})``.
    Every read of the dying buffer on the line must be one of those exact operands.
    """
    if meta is None or meta[0] != name or not meta[1]:
        return None
    reads = VAR.findall(line.split("#", 1)[0].split("=", 1)[1])
    for var, buf in meta[2].items():
        if buf not in active or last.get(buf) != k or bufs[buf] != bufs[name]:
            continue
        if reads.count(var) != meta[3][var] or any(v != var and buf in alias.get(v, ()) for v in reads):
            continue
        return active.pop(buf)[1]
    return None


def release_early(lines: list[str]) -> list[str]:
    """Insert ``del`` after each array's last use, so intermediates are freed as eager backward frees them."""
    last: dict[str, int] = {}
    for k, line in enumerate(lines):
        code = line.split("#", 1)[0]
        for name in VAR.findall(code):
            last[name] = k
    ends: dict[int, list[str]] = {}
    for name, k in last.items():
        if not lines[k].lstrip().startswith("return"):
            ends.setdefault(k, []).append(name)
    out = []
    for k, line in enumerate(lines):
        out.append(line)
        if k in ends:
            out.append("    del " + ", ".join(sorted(ends[k], key=lambda n: (len(n), n))))
    return out
