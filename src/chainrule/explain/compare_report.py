"""The views of a ``cr.compare`` result: plain text, a notebook's HTML, JSON."""

from __future__ import annotations

import html
import json
import math
from typing import Any

import numpy as np

ENTRIES = 4  # entries of a large gradient shown
_MARK = {"exact": "✓", "close": "≈", "wrong": "✗", "shape mismatch": "✗"}


def d(name: str) -> str:
    """The gradient's name: ``dz``, and ``d(0.weight)`` for a module path."""
    return f"d({name})" if "." in name else f"d{name}"


def num(v: Any) -> str:
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    s = f"{v:.4g}"
    return "0" if s in ("-0", "0") else s


def entries(v: Any) -> str:
    """A scalar as a number; an array as its first few entries and its shape."""
    a = np.asarray(v, dtype=np.float64)
    if a.ndim == 0:
        return num(a)
    flat = [num(x) for x in a.ravel()[:ENTRIES]]
    more = ", …" if a.size > ENTRIES else ""
    return f"[{', '.join(flat)}{more}] (shape {a.shape})"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def diff(v: Any) -> str:
    return "" if v is None else num(v)


def _summary(c: Any) -> str:
    counts = {}
    for r in c.rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    parts = ", ".join(f"{n} {s}" for s, n in counts.items())
    return (
        f"compare: {len(c.rows)} gradient{'s' if len(c.rows) != 1 else ''} of {c.output} checked against its "
        f"backward pass: {parts or 'none'} (close: rtol={c.rtol:g}, atol={c.atol:g})"
    )


def table_rows(c: Any) -> list[list[str]]:
    rows = []
    for r in c.rows:
        shape = str(r.shape) if r.status != "shape mismatch" else f"{r.shape}, yours {r.your_shape}"
        rows.append([f"{_MARK[r.status]} {d(r.name)}", shape, r.status, diff(r.max_abs), diff(r.max_rel)])
    return rows


HEADERS = ["gradient", "shape", "status", "max |yours - true|", "rel"]


def _plain_table(rows: list[list[str]]) -> list[str]:
    widths = [len(h) for h in HEADERS]
    for r in rows:
        widths = [max(w, len(x)) for w, x in zip(widths, r)]
    lines = ["  " + "  ".join(h.ljust(w) for h, w in zip(HEADERS, widths)).rstrip()]
    lines += ["  " + "  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip() for r in rows]
    return lines


def _sources(term: Any) -> str:
    if not term.upstream_from:
        return "the seed: the output's gradient with respect to itself"
    if len(term.upstream_from) == 1:
        return f"from {term.upstream_from[0][0]}"
    if np.ndim(term.upstream) == 0:
        parts = " + ".join(f"{entries(g)} (from {who})" for who, g in term.upstream_from)
        return f"the sum {parts}"
    return "the sum of " + " and ".join(f"the term from {who}" for who, _ in term.upstream_from)


def term_lines(term: Any, indent: str = "    ") -> list[str]:
    """``dT = dC × ∂C/∂T`` at one node: the upstream (and where it comes from), the local derivative, the result."""
    up = f"{d(term.node)}"
    lines = [f"{indent}{term.node} = {term.expression}"]
    if term.elementwise:
        lines.append(f"{indent}{d(term.operand)} = {up} · ∂{term.node}/∂{term.operand}   (upstream × local)")
    else:
        lines.append(f"{indent}{d(term.operand)} = {term.formula}   (the rule, with upstream {up})")
    yours = ""
    if term.your_upstream_status is not None:
        yours = f"; yours: {term.your_upstream_status}"
    lines.append(f"{indent}  upstream    {up} = {entries(term.upstream)}   ({_sources(term)}{yours})")
    if term.elementwise:
        constant = term.formula.startswith("[") or _is_number(term.formula)
        local = f" = {entries(term.local)}" if term.local is not None and not constant else ""
        lines.append(f"{indent}  local       ∂{term.node}/∂{term.operand} = {term.formula}{local}")
    lines.append(f"{indent}  downstream  {d(term.operand)} = {entries(term.downstream)}")
    if np.shape(term.downstream) != np.shape(term.upstream) and (term.elementwise or term.formula == up):
        lines.append(
            f"{indent}  ({term.operand} was broadcast to {np.shape(term.upstream)} in the forward pass, so its "
            f"gradient is summed back to {np.shape(term.downstream)})"
        )
    if term.released and term.elementwise:
        lines.append(f"{indent}  (values of this node were released: record inside cr.keep_values() to see them)")
    return lines


def _where_worst(r: Any) -> str:
    m, g = np.asarray(r.mine), np.asarray(r.true)
    if m.ndim == 0 or m.shape != g.shape:
        return ""
    with np.errstate(invalid="ignore"):
        d = np.abs(m - g)
    d = np.where(np.isnan(d), np.inf, d)
    k = np.unravel_index(int(np.argmax(d)), d.shape)
    at = ", ".join(str(int(x)) for x in k)
    return f"largest difference at [{at}]: yours {num(m[k])}, true {num(g[k])}"


def row_lines(r: Any) -> list[str]:
    head = f"✗ {d(r.name)}: {r.status}"
    if r.max_abs is not None:
        rel = f", rel {num(r.max_rel)}" if r.max_rel is not None else ""
        head += f" (max |yours - true| = {num(r.max_abs)}{rel})"
    lines = [head, f"    yours  {entries(r.mine)}", f"    true   {entries(r.true)}"]
    worst = _where_worst(r)
    if worst:
        lines.append(f"    {worst}")
    if r.follows is not None:
        return lines + [f"  → {h}" for h in r.hints]
    if r.terms:
        if len(r.terms) == 1:
            lines.append(f"  the step that gives {d(r.name)}:")
            lines += term_lines(r.terms[0])
        else:
            lines.append(f"  {d(r.name)} is the sum over its {len(r.terms)} uses, one step each:")
            for k, t in enumerate(r.terms, 1):
                lines.append(f"   ({k})")
                lines += term_lines(t)
    for h in r.hints:
        lines.append(f"  → {h}")
    if r.culprit is not None:
        lines.append("  the step to fix:")
        lines += term_lines(r.culprit)
    return lines


def render_text(c: Any) -> str:
    lines = [_summary(c)] + _plain_table(table_rows(c))
    if c.missing:
        lines.append("not supplied: " + ", ".join(f"{d(n)}" for n in c.missing))
    if c.unnamed:
        lines.append(f"(and {c.unnamed} unnamed input{'s' if c.unnamed != 1 else ''} with a gradient)")
    first = next((r for r in c.rows if not r.ok and r.follows is None), None)
    if first is not None:
        lines.append(
            f"start with {d(first.name)}: the first wrong gradient in backward order that is not explained by another"
        )
    for r in c.rows:
        if not r.ok:
            lines.append("")
            lines += row_lines(r)
    return "\n".join(lines)


_COLOR = {"exact": "#1a7f37", "close": "#1a7f37", "wrong": "#cf222e", "shape mismatch": "#cf222e"}


def render_html(c: Any) -> str:
    esc = html.escape
    head = "".join(f"<th style='text-align:left'>{esc(h)}</th>" for h in HEADERS)
    body = []
    for r, cells in zip(c.rows, table_rows(c)):
        tds = "".join(f"<td>{esc(x)}</td>" for x in cells)
        body.append(f"<tr style='color:{_COLOR[r.status]}' data-status='{esc(r.status)}'>{tds}</tr>")
    parts = [
        "<div class='chainrule-compare'>",
        f"<p><b>{esc(_summary(c))}</b></p>",
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>",
    ]
    if c.missing:
        parts.append(f"<p>not supplied: {esc(', '.join(d(n) for n in c.missing))}</p>")
    for r in c.rows:
        if not r.ok:
            lines = row_lines(r)
            parts.append(
                f"<details open><summary style='color:{_COLOR[r.status]}'>{esc(lines[0])}</summary>"
                f"<pre>{esc(chr(10).join(lines[1:]))}</pre></details>"
            )
    parts.append("</div>")
    return "".join(parts)


def _jsonable(v: Any) -> Any:
    if v is None:
        return None
    a = np.asarray(v, dtype=np.float64)
    if a.size > 64:
        return {"shape": list(a.shape), "first": [_finite(x) for x in a.ravel()[:ENTRIES]]}
    return [_finite(x) for x in a.ravel()] if a.ndim else _finite(a)


def _finite(x: Any) -> Any:
    x = float(x)
    return x if math.isfinite(x) else str(x)


def _term_json(t: Any) -> dict:
    return {
        "node": t.node,
        "expression": t.expression,
        "operand": t.operand,
        "local_formula": t.formula,
        "elementwise": t.elementwise,
        "upstream": _jsonable(t.upstream),
        "upstream_from": [who for who, _ in t.upstream_from],
        "local": _jsonable(t.local),
        "downstream": _jsonable(t.downstream),
        "your_upstream_status": t.your_upstream_status,
    }


def render_json(c: Any) -> str:
    rows = []
    for r in c.rows:
        rows.append(
            {
                "name": r.name,
                "key": r.key,
                "status": r.status,
                "shape": list(r.shape),
                "your_shape": list(r.your_shape),
                "max_abs": None if r.max_abs is None else _finite(r.max_abs),
                "max_rel": None if r.max_rel is None else _finite(r.max_rel),
                "position": r.position,
                "steps": [_term_json(t) for t in r.terms],
                "hints": list(r.hints),
                "step_to_fix": _term_json(r.culprit) if r.culprit is not None else None,
            }
        )
    return json.dumps({"output": c.output, "ok": c.ok, "rows": rows, "missing": list(c.missing)}, ensure_ascii=False)
