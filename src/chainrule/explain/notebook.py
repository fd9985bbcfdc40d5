"""``cr.explore(output)``: the explorer for a graph recorded from ordinary code, inline in a notebook or as a page.

The page is the same one ``chainrule explain --html`` writes (forward, then backward, one step per operation,
with shapes, each rule, the local Jacobians of small values as heat maps, and each gradient revealed at the step
that computes it), made from :func:`chainrule.trace` of the recorded graph.  Parameters are named as the model's
``named_parameters()`` names them.  In a notebook the object shows itself as a sandboxed, offline frame; nothing
is fetched from the network.
"""

from __future__ import annotations

import html
import inspect
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from ..tensor import Tensor
from .explore_layers import layer_steps
from .page import page_data, render_page
from .trace import Trace, trace

FRAME_HEIGHT = 760  # pixels: the page's graph, step panel and the first gradients without scrolling


class Exploration:
    """The explorer of one recorded backward pass: ``.trace`` (the data), ``.html()``, ``.save_html(path)``."""

    def __init__(
        self,
        tr: Trace,
        title: str,
        derive_text: Optional[str],
        chain_text: Optional[str] = None,
        layers: Optional[list] = None,
    ) -> None:
        self.trace = tr
        self.title = title
        self.derive_text = derive_text
        self.chain_text = chain_text  # each gradient as the product of the local Jacobians along its paths
        self.layers = layers or []  # the layer-by-layer steps (explore_layers.layer_steps)

    def html(self) -> str:
        """The whole page: one self-contained HTML document (data, script and style inline)."""
        ex = _Recorded(self.trace, self.title)
        data = page_data(ex)
        if self.derive_text:
            data["derive"] = self.derive_text
        if self.chain_text:
            data["chain"] = self.chain_text
        if self.layers:
            data["layers"] = self.layers
        return render_page(data)

    def save_html(self, path: Union[str, os.PathLike]) -> Path:
        target = Path(path)
        target.write_text(self.html(), encoding="utf-8")
        return target

    def _repr_html_(self) -> str:
        # srcdoc keeps the page's own script and styles apart from the notebook's; the sandbox lets it run its
        # script and nothing else (no same origin, no navigation, no forms).
        return (
            f'<iframe title="{html.escape(self.title)}" sandbox="allow-scripts" '
            f'style="width:100%;height:{FRAME_HEIGHT}px;border:1px solid #d1d9e0;border-radius:6px" '
            f'srcdoc="{html.escape(self.html(), quote=True)}"></iframe>'
        )

    def __repr__(self) -> str:
        return f"<Exploration of {self.trace.output}: {len(self.trace.steps)} steps; .save_html(path) writes the page>"


class _Recorded:
    """What the page reads from an explanation, for a graph that was recorded rather than typed."""

    def __init__(self, tr: Trace, title: str) -> None:
        self.trace = tr
        self.title = title
        self.typed = ""
        self.parsed = ""
        self.names: list[str] = []
        self.env: dict[str, Any] = {}
        self.notes: list[str] = []


def explore(
    output: Tensor,
    grad: Any = None,
    *,
    model: Any = None,
    names: Optional[Mapping[str, Tensor]] = None,
    title: Optional[str] = None,
    output_name: Optional[str] = None,
    accumulate: bool = False,
    precision: int = 2,
) -> Exploration:
    """Step through the backward pass of a recorded graph in a browser (or inline in a notebook).

    ``model`` names its parameters (``0.weight``, ``fc1.bias``), ``names`` names any tensor (``{"x": x}``).
    The output is called by ``output_name``, else by the caller's variable that holds it (``loss``), else ``out``.
    Unlike :func:`chainrule.trace` it leaves ``.grad`` alone unless ``accumulate=True``; the graph is kept.
    """
    if not isinstance(output, Tensor):
        raise TypeError(f"explore: expected the Tensor whose backward pass to show, got {type(output).__name__}")
    callers = _callers_tensors()
    arrays = _callers_tensors(np.ndarray)  # (labels held as arrays: the matrix form names them as the caller does)
    if output_name is None:
        found = [k for k, v in callers.items() if v is output]
        output_name = found[0] if len(found) == 1 else None
    # one naming scheme on the page: the caller's variables name values in the steps, the drawing and the
    # matrix form alike (names= wins; the model names its parameters)
    shared = {k: v for k, v in callers.items() if v is not output}
    shared.update(names or {})
    derived = _derivation(output, model, shared, output_name or "out", arrays)
    if derived is not None:  # the values derive named (logprobs, u1) keep those names in the steps too
        for label, t in derived.tensors.items():
            if isinstance(t, Tensor) and t is not output and "." not in label:
                shared.setdefault(label, t)
    tr = trace(
        output, grad, names=shared, accumulate=accumulate, precision=precision, model=model, output_name=output_name
    )
    text = str(derived) if derived is not None else None
    chain = derived.chain.text() if derived is not None and derived.chain is not None else None
    layers = layer_steps(derived, output, precision) if derived is not None else None
    return Exploration(tr, title or f"backward pass of {tr.output}", text, chain, layers)


def _derivation(
    output: Tensor, model: Any, names: Mapping[str, Tensor], output_name: str, arrays: Mapping[str, Any]
) -> Any:
    """``cr.derive`` of the recorded graph in the page's names (None where derive cannot)."""
    from .derive import derive

    labels = [(t, n) for n, t in names.items() if t is not output] + [(output, output_name)]
    labels += [(a, n) for n, a in arrays.items()]
    try:
        return derive(output, module=model, names=labels)
    except Exception:  # derive covers most of what the engine records; the page simply omits what it cannot
        return None


def _callers_tensors(kind: type = Tensor) -> dict[str, Any]:
    """The tensors (or other objects of ``kind``) among the local variables of :func:`explore`'s caller."""
    frame = inspect.currentframe()
    try:
        caller = frame.f_back.f_back if frame is not None and frame.f_back is not None else None
        if caller is None:
            return {}
        return {
            k: v
            for k, v in caller.f_locals.items()
            if isinstance(v, kind) and k.isidentifier() and not k.startswith("_")
        }
    finally:
        del frame
