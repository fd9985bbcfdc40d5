"""The explorer page: one self-contained HTML file that steps through a trace, forward then backward.

:func:`page_data` turns an :class:`~chainrule.explain.command.Explanation` into plain
JSON (numbers already formatted by :mod:`.format`, the graph already drawn as SVG
by :mod:`.draw`), and :func:`render_page` puts that JSON, the page's script and its
style sheet (``static/``) into one file with nothing to fetch: no CDN, no fonts, no
network.  The page computes no mathematics; it only shows what the trace recorded.
"""

from __future__ import annotations

import html
import json
import os
import re
import time
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional, Union

import numpy as np

from ..format import SMALL, fmt_scalar, fmt_shape, fmt_value
from .trace import Edge, Step, Trace

SMALL_VALUES = 64  # tensors with at most this many elements send their numbers (heat maps)
HEATMAP_ENTRIES = 400  # local Jacobians with at most this many entries are drawn cell by cell


def _shape(v: Any) -> list[int]:
    return [int(d) for d in np.shape(v)]


def _numbers(v: Any) -> Optional[list[float]]:
    """The values, flattened, for a small tensor (None for a scalar or a large one)."""
    if v is None or np.ndim(v) == 0 or np.size(v) > SMALL_VALUES:
        return None
    return [_finite(x) for x in np.asarray(v, dtype=np.float64).ravel()]


def _finite(x: Any) -> Optional[float]:
    """A number for JSON: NaN and infinities are not JSON, so they travel as null (their text says nan/inf)."""
    x = float(x)
    return x if np.isfinite(x) else None


def _shape_note(v: Any) -> str:
    """The shape where the formatted value does not already say it (a vector's values do not)."""
    return fmt_shape(np.shape(v)) if np.ndim(v) == 1 and np.size(v) <= SMALL_VALUES else ""


def _jacobian(e: Edge, p: int) -> Optional[dict[str, Any]]:
    if e.jacobian is None:
        return None
    J = e.jacobian
    out: dict[str, Any] = {"rows": int(J.shape[0]), "cols": int(J.shape[1]), "structure": e.structure}
    if J.size <= HEATMAP_ENTRIES:
        out["entries"] = [[_finite(x) for x in row] for row in J]
        out["text"] = [[fmt_value(float(x), p) for x in row] for row in J]
    return out


def _substitute(expression: str, values: dict[str, str]) -> str:
    """``w0 * x0`` with each operand label replaced by its formatted value: ``2.00 * -1.00``."""
    if not values:
        return expression
    names = sorted(values, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w.])(" + "|".join(re.escape(n) for n in names) + r")(?![\w.])")
    return pattern.sub(lambda m: values[m.group(1)], expression)


def _forward(tr: Trace) -> list[dict[str, Any]]:
    p = tr.precision
    steps = [
        {
            "node": leaf.label,
            "kind": "input",
            "lines": [f"{leaf.label} = {fmt_value(leaf.value, p)}"],
            "shape": fmt_shape(np.shape(leaf.value)),
        }
        for leaf in tr.leaves
        if leaf.label != tr.output or not tr.steps
    ]
    for s in reversed(tr.steps):  # forward order: the trace lists output first
        values = {e.label: fmt_value(e.value, p) for e in s.inputs if not e.constant}
        if any(np.ndim(e.value) for e in s.inputs):
            shapes = ", ".join(f"{e.label}: {fmt_shape(np.shape(e.value))}" for e in s.inputs if not e.constant)
            shape_line = f"shapes {shapes} → {fmt_shape(np.shape(s.value))}"
        else:
            shape_line = ""
        lines = [f"{s.label} = {s.expression}"]
        substituted = _substitute(s.expression, values)
        if substituted != s.expression:
            lines.append(f"   = {substituted}")
        lines.append(f"   = {fmt_value(s.value, p)}")
        steps.append(
            {
                "node": s.label,
                "kind": "op",
                "op": s.op,
                "inputs": [e.label for e in s.inputs if not e.constant],
                "lines": lines,
                "shapes": shape_line,
                "values": _numbers(s.value),
                "shape": fmt_shape(np.shape(s.value)),
            }
        )
    return steps


def shown_product(upstream: Any, local: Any, grad: Any, precision: int) -> tuple[str, str, str, str]:
    """``upstream × local = grad`` as text whose shown factors give the shown product.

    At the page's precision ``0.20 × -1.96`` would print ``= -0.39`` (the product of the unrounded numbers);
    more decimals are used, up to four more, until rounding the shown factors' product gives the shown
    result.  Where none does (or a value is not finite), the line says ``≈`` instead of ``=``.
    """
    values = [np.asarray(upstream, dtype=float), np.asarray(local, dtype=float), np.asarray(grad, dtype=float)]
    if any(v.size > SMALL for v in values):  # written by shape alone ("array 4×3"): no numbers to add up
        return fmt_value(upstream, precision), fmt_value(local, precision), fmt_value(grad, precision), "="
    if all(np.isfinite(v).all() for v in values):
        for k in range(precision, precision + 5):
            a, b, c = (_as_shown(v, k) for v in values)
            if _as_shown(a * b, k).shape == c.shape and np.array_equal(_as_shown(a * b, k), c):
                return fmt_value(values[0], k), fmt_value(values[1], k), fmt_value(values[2], k), "="
    return fmt_value(upstream, precision), fmt_value(local, precision), fmt_value(grad, precision), "≈"


def _as_shown(v: np.ndarray, precision: int) -> np.ndarray:
    """The numbers a reader sees: each entry as the page writes it (``fmt_scalar``), read back."""
    return np.vectorize(lambda x: float(fmt_scalar(x, precision)), otypes=[float])(v)


def _final_steps(tr: Trace) -> dict[str, int]:
    """For each input, the backward step (0-based, in the page's backward order) after which its gradient is final."""
    final: dict[str, int] = {}
    for k, s in enumerate(tr.steps):
        for e in s.inputs:
            if not e.constant:
                final[e.label] = k
    return final


def _backward_step(s: Step, tr: Trace) -> dict[str, Any]:
    p = tr.precision
    out = tr.output
    upstream = fmt_value(s.upstream, p)
    if s.label == out:
        up_line = f"d{out}/d{out} = {upstream} (the backward pass starts here)"
    else:
        up_line = f"d{out}/d{s.label} = {upstream}"
    branches = []
    if len(s.branches) > 1:
        branches = [{"from": who, "grad": fmt_value(v, p)} for who, v in s.branches]
    inputs = []
    for e in s.inputs:
        if e.constant:
            continue
        grad = fmt_value(e.grad, p)
        elementwise = e.local is not None
        if elementwise:
            up_text, local, grad, sign = shown_product(s.upstream, e.local, e.grad, p)
            product = f"{up_text} × {local} {sign} {grad}"
            words = f"upstream × local = d{out}/d{e.label}"
        else:
            local = ""
            product = f"= {grad}"
            words = f"the rule applied to the upstream gradient gives d{out}/d{e.label}"
        inputs.append(
            {
                "label": e.label,
                "value": fmt_value(e.value, p),
                "shape": _shape_note(e.value),
                "formula": e.formula,
                "local": local,
                "grad": grad,
                "words": words,
                "product": product,
                "line": f"d{out}/d{e.label} = {product}" if elementwise else f"d{out}/d{e.label} {product}",
                "jacobian": _jacobian(e, p),
                "grad_values": _numbers(e.grad),
            }
        )
    return {
        "node": s.label,
        "op": s.op,
        "expression": f"{s.label} = {s.expression}",
        "upstream": upstream,
        "upstream_line": up_line,
        "branches": branches,
        "inputs": inputs,
    }


def _derive_text(ex: Any) -> Optional[str]:
    """For a tensor expression, ``cr.derive``'s matrix-form equations of ``f = EXPR`` (None if it cannot)."""
    if all(np.ndim(t.data) == 0 for t in ex.env.values()):
        return None
    try:
        from .budget import DEFAULT_MAX_NUMBERS
        from .derive import derive

        shapes = {n: tuple(np.shape(ex.env[n].data)) for n in ex.names}
        budget = getattr(ex, "max_numbers", DEFAULT_MAX_NUMBERS)  # (the explanation's own budget: same program)
        with np.errstate(all="ignore"):  # (derive runs the program once on values of its own)
            for program in (_named_program(ex.trace), f"f = {ex.parsed}"):
                try:
                    return str(derive(program, shapes, check=False, max_numbers=budget))
                except Exception:
                    continue  # the step-by-step program is not in derive's language: the plain one
            return None
    except Exception:  # derive covers a subset of what explain can trace; the page simply omits it
        return None


def _named_program(tr: Trace) -> str:
    """The traced program one step per line, with the trace's own names (``n1 = W @ x; n2 = n1 + b; ...``),
    so the matrix form on the page calls each value what the steps and the drawing call it."""
    return "; ".join(f"{s.label} = {s.expression}" for s in reversed(tr.steps))


def page_data(ex: Any, *, draw_graph: bool = True) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready data (strings already formatted)."""
    from .draw import RendererUnavailable, draw

    tr: Trace = ex.trace
    p = tr.precision
    svg, svg_error = None, None
    if draw_graph:
        try:
            svg = draw(tr, max_width=40).svg()  # natural size: the page fits it to the box, never below 65%
            svg = svg[svg.index("<svg") :]  # drop the XML prolog and DOCTYPE: the SVG sits inside HTML
        except RendererUnavailable as exc:
            svg_error = str(exc)
    values_text = " ".join(f"{n}={_value_text(ex.env[n].data)}" for n in ex.names)
    final = _final_steps(tr)
    return {
        "title": ex.title or f"f = {ex.typed}",
        "typed": ex.typed,
        "parsed": ex.parsed,
        "values_text": values_text,
        "notes": list(ex.notes),
        "output": tr.output,
        "value": fmt_value(tr.value, p),
        "forward": _forward(tr),
        "backward": [_backward_step(s, tr) for s in tr.steps],
        "leaves": [
            {
                "label": leaf.label,
                "final_step": final.get(leaf.label, -1),
                "value": fmt_value(leaf.value, p),
                "grad": fmt_value(leaf.grad, p),
                "branches": [{"from": who, "grad": fmt_value(v, p)} for who, v in leaf.branches]
                if len(leaf.branches) > 1
                else [],
            }
            for leaf in tr.leaves
        ],
        "table": "".join(t.html() for t in tr.tables()),
        "svg": svg,
        "svg_error": svg_error,
        "derive": _derive_text(ex),
    }


def _value_text(v: Any) -> str:
    """A value as it can be typed back into the values box (full precision, no spaces)."""
    if np.ndim(v) == 0:
        return repr(float(v)).removesuffix(".0") if float(v) == int(float(v)) else repr(float(v))
    return json.dumps(np.asarray(v).tolist(), separators=(",", ":"))


def _asset(name: str) -> str:
    return resources.files("chainrule.explain").joinpath("static", name).read_text(encoding="utf-8")


def _script_json(data: Any) -> str:
    """JSON safe inside ``<script>``: ``</`` and ``<!--`` cannot end or confuse the element."""
    return json.dumps(data, ensure_ascii=False, allow_nan=False).replace("<", "\\u003c").replace("\u2028", "\\u2028")


def render_page(data: dict[str, Any], *, server: bool = False, token: str = "") -> str:
    """The complete page: data, script and style inline (``server=True`` adds the expression boxes).

    ``token`` is the explorer server's secret, which the page's script sends with each request
    (another origin cannot read it).
    """
    mode = "server" if server else "file"
    token_attr = f' data-token="{html.escape(token)}"' if server and token else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        # the page asks for nothing from anywhere: any fetch other than the explorer's own server is refused
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; connect-src 'self'\">\n"
        f"<title>chainrule explorer: {html.escape(data['title'])}</title>\n"
        f"<style>\n{_asset('explorer.css')}\n</style>\n"
        f'</head><body data-mode="{mode}"{token_attr}>\n'
        f'<script type="application/json" id="trace-data">{_script_json(data)}</script>\n'
        f"<script>\n{_asset('explorer.js')}\n</script>\n"
        "</body></html>\n"
    )


def trace_page(tr: Trace, title: Optional[str] = None) -> str:
    """The explorer page of a trace made in Python (``cr.trace(loss, model=model)``), for ``Trace.save_html``."""
    ex = SimpleNamespace(
        title=title or f"backward pass of {tr.output}", typed="", parsed="", names=[], env={}, notes=[], trace=tr
    )
    return render_page(page_data(ex))


def write_page(ex: Any, path: Union[str, os.PathLike]) -> tuple[Path, float]:
    """Write the self-contained page for ``ex`` to ``path``; returns the path and the seconds it took."""
    start = time.perf_counter()
    text = render_page(page_data(ex))
    target = Path(path)
    target.write_text(text, encoding="utf-8")
    return target, time.perf_counter() - start


def save_html(trace: Trace, path: Any, title: Optional[str] = None) -> Path:
    """Write the explorer page of this trace (one self-contained HTML file that steps through it)."""
    target = Path(path)
    target.write_text(trace_page(trace, title), encoding="utf-8")
    return target


Trace.save_html = save_html  # type: ignore[attr-defined]  (the record's own method; the page is its view)
