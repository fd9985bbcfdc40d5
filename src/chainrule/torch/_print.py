"""Tensors printed as torch prints them (``tensor([0.5000, 1.2500], requires_grad=True)``).

torch's rules (its ``_tensor_str``): four decimals; scientific notation where the nonzero finite magnitudes span
more than a factor of 1000, exceed 1e8, or fall below 1e-4; floats that are all integers print
as ``2.``; one width for every entry, lines wrapped at 80 characters; tensors of more than 1000 entries summarised
with their first and last 3 along each axis.  The dtype is named unless it is the default float dtype, int64 or
bool.  ``torch.set_printoptions`` changes the same options.  Printing a graph tensor names its operation as torch
names its ``grad_fn`` (``<AddBackward0>``) where the two agree on the operation, and ``<NameBackward>`` otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Optional

import numpy as np

from ..graph import FREED, node_of

OPTIONS: dict[str, Any] = {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80, "sci_mode": None}
_PROFILES = {
    "default": {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80},
    "short": {"precision": 2, "threshold": 1000, "edgeitems": 2, "linewidth": 80},
    "full": {"precision": 4, "threshold": math.inf, "edgeitems": 3, "linewidth": 80},
}

# chainrule's primitive -> the name torch gives the backward node of the same operation
_GRAD_FN = {
    "add": "AddBackward0",
    "sum": "SumBackward0",
    "mean": "MeanBackward0",
    "sub": "SubBackward0",
    "mul": "MulBackward0",
    "div": "DivBackward0",
    "neg": "NegBackward0",
    "pow": "PowBackward0",
    "exp": "ExpBackward0",
    "log": "LogBackward0",
    "tanh": "TanhBackward0",
    "sigmoid": "SigmoidBackward0",
    "relu": "ReluBackward0",
    "sin": "SinBackward0",
    "cos": "CosBackward0",
    "sqrt": "SqrtBackward0",
    "abs": "AbsBackward0",
    "matmul": "MmBackward0",
    "linear": "AddmmBackward0",
    "log_softmax": "LogSoftmaxBackward0",
    "softmax": "SoftmaxBackward0",
    "transpose": "TBackward0",
    "reshape": "ViewBackward0",
    "getitem": "IndexBackward0",
    "maximum": "MaximumBackward0",
    "minimum": "MinimumBackward0",
    "concatenate": "CatBackward0",
    "stack": "StackBackward0",
}


class _Parameters:
    """Filled in by ``chainrule.torch.nn._parameter``: whether a tensor is a parameter (printed as torch prints
    one: ``Parameter containing:`` above it)."""

    test: Optional[Callable[[Any], bool]] = None


PARAMETERS = _Parameters()


def _index_grad_fn(index: Any) -> str:
    """torch's node for an indexing: the last step it takes (an index array last of all, then the last integer,
    slice or None that changes something)."""
    parts = index if isinstance(index, tuple) else (index,)
    if any(isinstance(p, (np.ndarray, list)) for p in parts):
        return "IndexBackward0"
    for p in reversed(parts):
        if isinstance(p, (int, np.integer)):
            return "SelectBackward0"
        if p is None:
            return "UnsqueezeBackward0"
        if isinstance(p, slice) and p != slice(None):
            return "SliceBackward0"
    return "AliasBackward0"


def set_printoptions(
    precision: Optional[int] = None,
    threshold: Optional[float] = None,
    edgeitems: Optional[int] = None,
    linewidth: Optional[int] = None,
    profile: Optional[str] = None,
    sci_mode: Optional[bool] = None,
) -> None:
    """``torch.set_printoptions``: the options of the printed form (``profile`` first, then each option given)."""
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError(f"set_printoptions: profile {profile!r} is not one of {sorted(_PROFILES)}")
        OPTIONS.update(_PROFILES[profile])
    for key, value in (("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems)):
        if value is not None:
            OPTIONS[key] = value
    if linewidth is not None:
        OPTIONS["linewidth"] = linewidth
    OPTIONS["sci_mode"] = sci_mode


class _Formatter:
    """One format for every entry of a tensor, chosen from all of them (torch's ``_Formatter``)."""

    def __init__(self, values: np.ndarray, floating: bool) -> None:
        self.floating = floating
        self.int_mode, self.sci_mode, self.width = True, False, 1
        p = OPTIONS["precision"]
        flat = values.reshape(-1)
        if not floating:
            self.width = max((len(str(v)) for v in flat.tolist()), default=1)
            return
        vals = flat.astype(np.float64)
        finite = vals[np.isfinite(vals) & (vals != 0)]
        if finite.size:
            big, small = float(np.abs(finite).max()), float(np.abs(finite).min())
            self.int_mode = bool(np.all(finite == np.ceil(finite)))
            chosen = OPTIONS["sci_mode"]
            self.sci_mode = (big / small > 1000.0 or big > 1.0e8 or small < 1.0e-4) if chosen is None else chosen
            if self.sci_mode:
                texts = [f"{v:.{p}e}" for v in finite.tolist()]
            else:  # (an integer-valued float prints with a trailing ".": one more character)
                texts = [f"{v:.0f} " if self.int_mode else f"{v:.{p}f}" for v in finite.tolist()]
            self.width = max(len(t) for t in texts)

    def format(self, value: Any) -> str:
        p = OPTIONS["precision"]
        if not self.floating:
            text = str(value)
        elif self.sci_mode:
            text = f"{value:{self.width}.{p}e}"
        elif self.int_mode:
            text = f"{value:.0f}" + ("" if math.isinf(value) or math.isnan(value) else ".")
        else:
            text = f"{value:.{p}f}"
        return " " * (self.width - len(text)) + text


def _summary(a: np.ndarray, edge: int) -> np.ndarray:
    """The entries the summarised form shows (the first and last ``edge`` along each axis)."""
    if a.ndim == 0:
        return a.reshape(1)
    if a.shape[0] > 2 * edge:
        rows = [a[i] for i in range(edge)] + [a[i] for i in range(a.shape[0] - edge, a.shape[0])]
    else:
        rows = list(a)
    return np.concatenate([_summary(np.asarray(r), edge).reshape(-1) for r in rows]) if rows else a.reshape(-1)


def _vector(a: np.ndarray, indent: int, summarize: bool, fmt: _Formatter) -> str:
    edge = OPTIONS["edgeitems"]
    per_line = max(1, int(math.floor((OPTIONS["linewidth"] - indent) / (fmt.width + 2))))
    items = a.tolist()
    if summarize and not edge:
        data = ["..."]
    elif summarize and len(items) > 2 * edge:
        data = [fmt.format(v) for v in items[:edge]] + [" ..."] + [fmt.format(v) for v in items[-edge:]]
    else:
        data = [fmt.format(v) for v in items]
    lines = [", ".join(data[i : i + per_line]) for i in range(0, len(data), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _nested(a: np.ndarray, indent: int, summarize: bool, fmt: _Formatter) -> str:
    if a.ndim == 0:
        return fmt.format(a.item())
    if a.ndim == 1:
        return _vector(a, indent, summarize, fmt)
    edge = OPTIONS["edgeitems"]
    if summarize and a.shape[0] > 2 * edge:
        slices = [_nested(a[i], indent + 1, summarize, fmt) for i in range(edge)] + ["..."]
        slices += [_nested(a[i], indent + 1, summarize, fmt) for i in range(a.shape[0] - edge, a.shape[0])]
    else:
        slices = [_nested(a[i], indent + 1, summarize, fmt) for i in range(a.shape[0])]
    return "[" + ("," + "\n" * (a.ndim - 1) + " " * (indent + 1)).join(slices) + "]"


def _dtype_name(dtype: np.dtype) -> str:
    return "torch." + {"bool": "bool"}.get(dtype.name, dtype.name)


def torch_repr(t: Any, default_float: np.dtype) -> str:
    """``repr(t)`` as torch writes it (see the module docstring)."""
    data = t._data
    a = np.asarray(data)
    prefix, indent = "tensor(", len("tensor(")
    floating = a.dtype.kind == "f"
    if a.size == 0:
        body = "[]"
    else:
        summarize = a.size > OPTIONS["threshold"]
        fmt = _Formatter(_summary(a, OPTIONS["edgeitems"]) if summarize else a, floating)
        body = _nested(a, indent, summarize, fmt)
    suffixes = []
    if a.size == 0 and a.shape != (0,):
        suffixes.append(f"size={tuple(a.shape)}")
    if a.dtype not in (default_float, np.dtype(np.int64), np.dtype(np.bool_)):
        suffixes.append(f"dtype={_dtype_name(a.dtype)}")
    node = t._node
    if node is not None and node is not FREED:
        name = _GRAD_FN.get(node.name, _camel(node.name) + "Backward")
        if node.name == "getitem":
            name = _index_grad_fn(node_of(t).params[0])
        suffixes.append(f"grad_fn=<{name}>")
    elif t.requires_grad:
        suffixes.append("requires_grad=True")
    text = _with_suffixes(prefix + body, suffixes, indent)
    return "Parameter containing:\n" + text if PARAMETERS.test is not None and PARAMETERS.test(t) else text


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _with_suffixes(text: str, suffixes: list[str], indent: int) -> str:
    parts = [text]
    last = len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if last + len(suffix) + 2 > OPTIONS["linewidth"]:
            parts.append(",\n" + " " * indent + suffix)
            last = indent + len(suffix)
        else:
            parts.append(", " + suffix)
            last += len(suffix) + 2
    return "".join(parts) + ")"
