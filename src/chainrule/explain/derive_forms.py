"""The closed forms of composite layers in a recorded graph, added to ``cr.derive(output)``'s steps.

The walk derives every gradient from the primitives a layer is recorded as
(``log_softmax`` then indexing; ``mean``, ``sqrt`` and division for a norm), so
the printed equations hold but are not the forms a textbook gives.  Here each
composite layer is found in the graph by its shape of nodes, and its closed
form is added as one more step of the gradient it gives:

* softmax cross-entropy (mean reduction): ``dlogits = (softmax(logits) − onehot(Y)) / n``;
* batch norm in training mode, layer norm: ``dX = (γ / σ) ⊙ (dY − mean(dY) − x̂ ⊙ mean(dY ⊙ x̂))``
  (mean over the normalized axes; ``g = dY ⊙ γ`` inside the means for layer norm);
* an embedding lookup ``C[X]``: ``dC = onehot(X)ᵀ · dE`` (the scatter-add of the rows of ``dE``);
* conv2d (im2col, then a matrix product): ``dW = Σ_n dz_n · im2col(x)_nᵀ`` and ``dx = col2im(Wᵀ · dz)``
  (the im2col view, as matrices), ``dW = dz ⋆ x`` (the cross-correlation of the input with ``dz``) and
  ``dx = dz ∗ flip(W)`` (the full convolution of ``dz`` with the flipped kernel), with a local Jacobian
  note of the layer for ``W`` and for ``x`` (:func:`conv_notes`).

Each step carries its claim (:class:`Agrees`: the closed form, computed by its own NumPy code, equals the
gradient the printed equations give), which the steps' check evaluates.  The closed forms of the other
layers are added only where they agree at the values (a layer found by the shape of its nodes may not be
that layer); conv2d's are always printed, so a false one shows as FALSE and fails the check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .. import symbolic as S
from ..graph import node_of
from ..tensor import Tensor
from . import derive_claims as C
from .derive_steps import Step

AGREE = 1e-8  # relative difference under which a closed form is claimed


@dataclass
class Agrees(C.Claim):
    """A closed form, computed by its own NumPy code from the recorded values (``said``), is the gradient the
    printed equations give (``ref``): the step's claim, evaluated again by the steps' check."""

    said: Callable[[], np.ndarray]
    ref: Callable[[], np.ndarray]
    shape: tuple[int, ...]
    kind: str = "closed form"

    def check(self, rng: np.random.Generator, work: int = C.WORK) -> float:
        return C._error(np.asarray(self.said(), dtype=np.float64), np.asarray(self.ref(), dtype=np.float64))


def size_text(n: int) -> str:
    """A size as the equations print it: ``B`` for the batch size, ``3B`` for three of it, else the number."""
    text = S.dim_text(n)
    if text != str(n):
        return text
    for value, name in S._DIMS.get().items():
        if value > 1 and n % value == 0 and n != value:
            return f"{n // value}{name}"
    return text


def _prim(t: Any) -> str:
    return "" if t is None or t._node is None else node_of(t).prim.name


def _axes(view: Any) -> Optional[tuple]:
    axis = view.params[0]
    return None if axis is None else tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)


def _norm(t: Tensor) -> Optional[dict]:
    """``t = (X − mean(X)) / √(mean((X − mean)²) + ε)`` over some axes: the parts, else None."""
    if _prim(t) != "div":
        return None
    c, s = node_of(t).inputs
    if _prim(c) != "sub" or _prim(s) != "sqrt":
        return None
    x, m = node_of(c).inputs
    if x is None or _prim(m) != "mean" or node_of(m).inputs[0] is not x:
        return None
    axes = _axes(node_of(m))
    inner = node_of(s).inputs[0]
    if _prim(inner) != "add":
        return None
    v = node_of(inner).inputs[0]
    if _prim(v) != "mean" or _prim(node_of(v).inputs[0]) != "mul" or _axes(node_of(v)) != axes:
        return None
    sq = node_of(node_of(v).inputs[0]).inputs
    if sq[0] is not c or sq[1] is not c:
        return None
    return {"x": x, "xhat": t, "axes": axes, "diff": c, "std": s}


def consumers(order: list[Tensor]) -> dict[int, list[Tensor]]:
    out: dict[int, list[Tensor]] = {}
    for t in order:
        for x in node_of(t).inputs:
            if x is not None:
                out.setdefault(id(x), []).append(t)
    return out


def find_layers(order: list[Tensor]) -> list[dict]:
    """The composite layers recorded in the graph (root first), each a dict of its tensors."""
    users = consumers(order)
    found = []
    for t in order:
        name = _prim(t)
        if name == "log_softmax":
            z = node_of(t).inputs[0]
            picks = [u for u in users.get(id(t), []) if _prim(u) == "getitem"]
            if z is not None and len(picks) == 1:
                index = node_of(picks[0]).params[0]
                if isinstance(index, tuple) and len(index) == 2:
                    found.append({"kind": "cross_entropy", "z": z, "logp": t, "labels": index[1], "n": int(z.shape[0])})
        elif name == "getitem" and _picks_labels(t):
            index = node_of(t).params[0]
            logp = node_of(t).inputs[0]
            found.append({"kind": "nll", "labels": index[1], "n": int(logp.shape[0]), "shape": tuple(logp.shape)})
        elif name == "div":
            parts = _norm(t)
            if parts is not None:
                y, gamma = t, None
                after = users.get(id(t), [])
                if len(after) == 1 and _prim(after[0]) == "mul":
                    other = [x for x in node_of(after[0]).inputs if x is not t]
                    if other and _prim(other[0]) == "reshape" and node_of(other[0]).inputs[0] is not None:
                        gamma = node_of(other[0]).inputs[0]
                    elif other and other[0] is not None and other[0]._node is None:
                        gamma = other[0]
                    y = after[0]
                    later = users.get(id(y), [])
                    if len(later) == 1 and _prim(later[0]) == "add":
                        y = later[0]
                parts.update(kind="norm", y=y, gamma=gamma)
                found.append(parts)
        elif name == "unfold":
            conv = _conv(t, users)
            if conv is not None:
                found.append(conv)
        elif name == "getitem":
            view = node_of(t)
            w, index = view.inputs[0], view.params[0]
            if w is not None and w._node is None and isinstance(index, np.ndarray) and index.dtype.kind in "iu":
                found.append({"kind": "embedding", "w": w, "index": index, "out": t})
    return found


def _conv(cols: Tensor, users: dict[int, list[Tensor]]) -> Optional[dict]:
    """``reshape(reshape(W) · im2col(x)) (+ reshape(b))``, as conv2d records it (groups = 1): the parts."""
    view = node_of(cols)
    x = view.inputs[0]
    kernel, dilation, padding, stride = view.params
    after = users.get(id(cols), [])
    if x is None or len(after) != 1 or _prim(after[0]) != "matmul" or node_of(after[0]).inputs[1] is not cols:
        return None
    flat = node_of(after[0]).inputs[0]
    w = node_of(flat).inputs[0] if _prim(flat) == "reshape" else None
    shaped = users.get(id(after[0]), [])
    if w is None or w.ndim != 4 or len(shaped) != 1 or _prim(shaped[0]) != "reshape" or shaped[0].ndim != 4:
        return None
    y = shaped[0]
    later = users.get(id(y), [])
    if len(later) == 1 and _prim(later[0]) == "add":
        y = later[0]
    geometry = {"kernel": kernel, "dilation": dilation, "padding": padding, "stride": stride}
    return {"kind": "conv", "x": x, "w": w, "y": y, **geometry}


def _correlate(x: np.ndarray, dz: np.ndarray, layer: dict) -> np.ndarray:
    """dW[o, c, i, j] = Σ_n Σ_p,q dz[n, o, p, q] · xpad[n, c, p·s + i·d, q·s + j·d], one kernel offset at a time."""
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = layer["kernel"], layer["dilation"], layer["padding"], layer["stride"]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh, ow = dz.shape[2:]
    out = np.zeros((dz.shape[1], x.shape[1], kh, kw))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i * dh : i * dh + sh * (oh - 1) + 1 : sh, j * dw : j * dw + sw * (ow - 1) + 1 : sw]
            out[:, :, i, j] = np.einsum("nopq,ncpq->oc", dz, patch)
    return out


def _full_convolution(dz: np.ndarray, w: np.ndarray, layer: dict) -> np.ndarray:
    """dx = dz padded by k − 1 − p, cross-correlated with the kernel flipped (stride and dilation 1)."""
    (kh, kw), (ph, pw) = layer["kernel"], layer["padding"]
    padded = np.pad(dz, ((0, 0), (0, 0), (kh - 1 - ph, kh - 1 - ph), (kw - 1 - pw, kw - 1 - pw)))
    flipped = w[:, :, ::-1, ::-1]
    h, wd = padded.shape[2] - kh + 1, padded.shape[3] - kw + 1
    out = np.zeros((dz.shape[0], w.shape[1], h, wd))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nopq,oc->ncpq", padded[:, :, i : i + h, j : j + wd], flipped[:, :, i, j])
    return out


def _picks_labels(t: Tensor) -> bool:
    """``L[range(n), Y]`` on a 2-D ``L``: the negative log-likelihood's pick of each row's label."""
    view = node_of(t)
    index = view.params[0] if view.params else None
    x = view.inputs[0]
    if x is None or x.ndim != 2 or not isinstance(index, tuple) or len(index) != 2:
        return False
    rows, labels = index
    n = x.shape[0]
    full = isinstance(rows, range) and (rows.start, rows.stop, rows.step) == (0, n, 1)
    full = full or (isinstance(rows, np.ndarray) and rows.shape == (n,) and np.array_equal(rows, np.arange(n)))
    return full and isinstance(labels, np.ndarray) and labels.shape == (n,) and labels.dtype.kind in "iu"


def suggest_names(layers: list[dict], label: Callable[[Any], Optional[str]]) -> list[tuple[Tensor, str]]:
    """Names for the values a closed form is written in, where the caller gave none."""
    out = []
    for layer in layers:
        if layer["kind"] == "cross_entropy":
            out.append((layer["z"], "logits"))
            out.append((layer["logp"], "logprobs"))
        elif layer["kind"] == "norm":
            g = label(layer["gamma"]) if layer["gamma"] is not None else None
            base = g.rsplit(".", 1)[0] if g and "." in g else "norm"
            out.append((layer["x"], f"{base}.input"))
            out.append((layer["y"], f"{base}.output"))
            for part in ("diff", "std", "raw"):  # x − mean, σ = √(var + ε), x̂ = (x − mean) / σ
                out.append((layer["xhat" if part == "raw" else part], f"{base}_{part}"))
        elif layer["kind"] == "embedding":
            out.append((layer["out"], "emb"))
        elif layer["kind"] == "conv":
            w = label(layer["w"])
            out.append((layer["y"], f"{w.rsplit('.', 1)[0] if w and '.' in w else 'conv'}.output"))
    return out


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    scale = max(float(np.max(np.abs(b))), 1e-12)
    return float(np.max(np.abs(a - b))) / scale


def add_steps(
    layers: list[dict],
    backward: list[Any],
    names: Mapping[int, str],
    values: Mapping[str, np.ndarray],
    grads: Mapping[str, np.ndarray],
    text: Callable[[Any], str],
) -> None:
    """Append each layer's closed form to the steps of the gradient it gives, where the two agree.

    ``values`` and ``grads`` are the recorded values and the exported gradients by printed name;
    ``text(array)`` writes a label array by its name.
    """
    lines = {ln.name: ln for ln in backward}
    # a recorded log_softmax's own closed form first: the pick of labels it feeds is also an "nll" layer, whose
    # step (for a log-softmax written out by hand) would otherwise come first and say so wrongly
    for layer in sorted(layers, key=lambda la: la["kind"] != "cross_entropy"):
        if layer["kind"] == "cross_entropy":
            z = names.get(id(layer["z"]))
            line = lines.get(f"d{z}")
            if z is None or line is None or z not in values or z not in grads:
                continue
            n, labels = layer["n"], layer["labels"]
            logits = values[z]
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            onehot = np.zeros_like(logits)
            onehot[np.arange(n), labels] = 1.0
            closed = (e / e.sum(axis=1, keepdims=True) - onehot) / n
            err = _rel(closed, grads[z])
            if err < AGREE and not any("onehot" in st.text for st in line.steps):
                y, b = text(labels), size_text(n)
                claim = Agrees(lambda c=closed: c, lambda g=grads[z]: g, tuple(logits.shape))
                line.steps.append(
                    Step(
                        f"= (softmax({z}) − onehot({y})) / {b}",
                        f"softmax cross-entropy: the scatter of −1/{b} at (range({b}), {y}) is −onehot({y}) / {b}, "
                        f"each row of onehot({y}) sums to 1, and exp(log_softmax({z})) = softmax({z}); agrees with "
                        "the line above at the values",
                        claim,
                    )
                )
        elif layer["kind"] == "nll":
            _scores_steps(layer, backward, values, grads, text)
        elif layer["kind"] == "norm":
            x, y = names.get(id(layer["x"])), names.get(id(layer["y"]))
            line = lines.get(f"d{x}")
            if x is None or y is None or line is None or x not in values or y not in grads or x not in grads:
                continue
            axes = layer["axes"]
            xv = values[x]
            mu = xv.mean(axis=axes, keepdims=True)
            sigma = np.sqrt(((xv - mu) ** 2).mean(axis=axes, keepdims=True) + _eps(layer))
            xhat = (xv - mu) / sigma
            gname = names.get(id(layer["gamma"])) if layer["gamma"] is not None else None
            gamma = np.asarray(values[gname]) if gname in values else 1.0
            shape = [1] * xv.ndim
            if np.ndim(gamma):
                keep = [a for a in range(xv.ndim) if a not in {ax % xv.ndim for ax in axes}]
                if axes == (0,) and len(keep) == 1:
                    shape[keep[0]] = -1
                else:
                    shape = list(xv.shape[xv.ndim - np.ndim(gamma) :])
                    shape = [1] * (xv.ndim - len(shape)) + shape
            g = grads[y] * np.reshape(gamma, shape)
            closed = (g - g.mean(axis=axes, keepdims=True) - xhat * (g * xhat).mean(axis=axes, keepdims=True)) / sigma
            err = _rel(closed, grads[x])
            if err >= AGREE:
                continue
            claim = Agrees(lambda c=closed: c, lambda g=grads[x]: g, tuple(xv.shape))
            over = "rows" if axes == (0,) else "cols" if axes in ((xv.ndim - 1,), (-1,)) else f"axes {axes}"
            factor = f"({gname} / σ)" if gname and axes == (0,) else "(1 / σ)"
            dy = f"d{y}" if factor != "(1 / σ)" or not gname else f"(d{y} ⊙ {gname})"
            bare = dy[1:-1] if dy.startswith("(") else dy
            line.steps.append(
                Step(
                    f"= {factor} ⊙ ({dy} − mean_{over}({bare}) − x̂ ⊙ mean_{over}({dy} ⊙ x̂))",
                    f"the closed form of {'batch' if axes == (0,) else 'layer'} norm, with x̂ = ({x} − mean_{over}({x}))"
                    f" / σ and σ = √(mean_{over}(({x} − mean)²) + ε); agrees with the line above at the values",
                    claim,
                )
            )
        elif layer["kind"] == "conv":
            _conv_steps(layer, lines, names, values, grads)
        elif layer["kind"] == "embedding":
            w = names.get(id(layer["w"]))
            line = lines.get(f"d{w}")
            if w is None or line is None:
                continue
            index = layer["index"]
            out = names.get(id(layer["out"]))
            rows, dim, vocab = int(index.size), int(layer["w"].shape[1]), int(layer["w"].shape[0])
            de = f"d{out}" if out else "the lookup's gradient"
            flat = f"reshape({de}, {size_text(rows)}×{dim})" if index.ndim > 1 else de
            claim = None
            if out in grads and w in grads:
                onehot = np.zeros((rows, vocab))
                onehot[np.arange(rows), index.reshape(-1)] = 1.0
                said = lambda o=onehot, g=grads[out], k=dim: o.T @ np.asarray(g).reshape(-1, k)  # noqa: E731
                claim = Agrees(said, lambda g=grads[w]: g, (vocab, dim))
            line.steps.append(
                Step(
                    f"= onehot({text(index)})ᵀ · {flat}",
                    f"an embedding lookup's gradient adds each row of {de} into the row of {w} it was read from "
                    f"(repeats add up): onehot({text(index)}) is {size_text(rows)}×{vocab} with one 1 per row",
                    claim,
                )
            )


def _agreement(err: float) -> dict:
    """A closed form's check: its value against the exported gradient (itself checked against central
    differences of the forward), at the recorded values."""
    return {"max_error": float(err), "kind": "closed form against the checked gradient", "runs": 1}


def _eps(layer: dict) -> float:
    s = node_of(layer["xhat"]).inputs[1]
    inner = node_of(node_of(s).inputs[0])
    const = inner.args[1] if inner.inputs[1] is None else None
    return float(np.asarray(const)) if const is not None and np.size(const) == 1 else 0.0


def _patches(x: np.ndarray, layer: dict) -> np.ndarray:
    """im2col written out: ``cols[n, (c, i, j), (p, q)] = xpad[n, c, p·s + i·d, q·s + j·d]`` (own loops, not the
    unfold primitive the graph records), so a claim about the im2col view is checked against an independent
    matrix of patches."""
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = layer["kernel"], layer["dilation"], layer["padding"], layer["stride"]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    cols = np.zeros((x.shape[0], x.shape[1], kh, kw, oh, ow))
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
            cols[:, :, i, j] = xp[:, :, rows, j * dw : j * dw + sw * (ow - 1) + 1 : sw]
    return cols.reshape(x.shape[0], x.shape[1] * kh * kw, oh * ow)


def _col2im(cols: np.ndarray, x_shape: tuple, layer: dict) -> np.ndarray:
    """The adjoint of :func:`_patches`: each patch entry's value added back where it was read."""
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = layer["kernel"], layer["dilation"], layer["padding"], layer["stride"]
    n, c, h, w = x_shape
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw))
    oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    blocks = cols.reshape(n, c, kh, kw, oh, ow)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
            xp[:, :, rows, j * dw : j * dw + sw * (ow - 1) + 1 : sw] += blocks[:, :, i, j]
    return xp[:, :, ph : ph + h, pw : pw + w]


def _conv_steps(layer: dict, lines: dict, names: Mapping[int, str], values: Mapping, grads: Mapping) -> None:
    """conv2d's gradients three ways, each a step with its claim: the im2col view's matrix products, the weight
    gradient as a cross-correlation of the input with dz, the input gradient as the full convolution of dz
    with the flipped kernel (stride and dilation 1).  Each is computed here from its own definition (never
    from the unfold primitive or its rule) and is a claim that it equals the derived line, which the steps'
    check evaluates: the statements are always printed, and one that does not hold is marked FALSE."""
    x, w, y = (names.get(id(layer[k])) for k in ("x", "w", "y"))
    if x is None or w is None or y is None or y not in grads or x not in values or w not in values:
        return
    dz, xv, wv = np.asarray(grads[y]), np.asarray(values[x]), np.asarray(values[w])
    n, o = dz.shape[:2]
    dz_mat = dz.reshape(n, o, -1)
    w_mat = wv.reshape(o, -1)
    cols = f"{w} · im2col({x})" if x.isidentifier() else f"{w} · im2col(({x}))"
    claims: dict[str, list] = layer.setdefault("claims", {"w": [], "x": []})  # (the layer's notes state them too)
    line = lines.get(f"d{w}")
    if line is not None and w in grads:
        matrix = lambda: np.einsum("nol,nkl->ok", dz_mat, _patches(xv, layer)).reshape(wv.shape)  # noqa: E731
        claims["w"].append(
            _claim(
                line,
                grads[w],
                matrix,
                f"= Σ_n d{y}_n · im2col({x})_nᵀ: the im2col view, as matrices",
                f"im2col({x})_n is the matrix of image n's patches (one column per output position, "
                f"C·kh·kw rows); per image the layer is the matrix product z_n = {w}_mat · im2col({x})_n ({cols}), "
                f"so d{w}_mat = d{y}_n · im2col({x})_nᵀ, summed over the images",
            )
        )
        claims["w"].append(
            _claim(
                line,
                grads[w],
                lambda: _correlate(xv, dz, layer),
                f"= d{y} ⋆ {x}: d{w}[o, c, i, j] = Σ_n Σ_p,q d{y}[n, o, p, q] {x}[n, c, p·s + i, q·s + j]",
                f"the weight gradient is the cross-correlation of the input {x} (padded) with d{y}: the im2col "
                "product above is the same sum, one matrix product per image",
            )
        )
    line = lines.get(f"d{x}")
    if line is not None and x in grads:
        claims["x"].append(
            _claim(
                line,
                grads[x],
                lambda: _col2im(np.einsum("ok,nol->nkl", w_mat, dz_mat), xv.shape, layer),
                f"= col2im({w}_matᵀ · d{y}_n): the im2col view, as matrices",
                f"per image dim2col({x})_n = {w}_matᵀ · d{y}_n (the transpose of the matrix product), and col2im adds "
                "each patch entry's gradient back to the entry of the input it copied",
            )
        )
        if tuple(layer["stride"]) == (1, 1) and tuple(layer["dilation"]) == (1, 1):
            claims["x"].append(
                _claim(
                    line,
                    grads[x],
                    lambda: _full_convolution(dz, wv, layer),
                    f"= d{y} ∗ flip({w}): the full convolution of d{y} with the kernel flipped",
                    f"col2im(Wᵀ · dz) adds each patch's share back where it was read: d{y} padded by k − 1 − p "
                    f"and cross-correlated with {w} flipped in both spatial axes (in and out channels swapped)",
                )
            )


def _claim(line: Any, derived: Any, closed: Callable[[], np.ndarray], text: str, reason: str) -> Optional[Agrees]:
    """A closed-form step of conv2d with its claim (the closed form, computed by its own code, is the derived
    gradient): printed whenever the layer is recognized, so a false one shows as FALSE and fails the check."""
    value = np.asarray(closed(), dtype=np.float64)
    if value.shape != np.shape(derived):
        return None
    claim = Agrees(closed, lambda g=derived: g, tuple(value.shape))
    line.steps.append(Step(text, reason, claim))
    return claim


def conv_notes(layers: list[dict], names: Mapping[int, str]) -> list[Any]:
    """Local Jacobian notes of each conv2d layer as a whole: ∂y/∂W (its VJP the cross-correlation of the input
    with dz) and ∂y/∂x (its VJP the full convolution of dz with the flipped kernel), each through the im2col
    view, the matrix form (the note of ∂im2col(x)/∂x itself is the walk's, one per recorded operation)."""
    from .derive_jacobian import Structure
    from .derive_records import Jacobian

    out = []
    for layer in layers:
        if layer["kind"] != "conv":
            continue
        x, w, y = (names.get(id(layer[k])) or k for k in ("x", "w", "y"))
        xs, ws, ys = layer["x"].shape, layer["w"].shape, tuple(layer["y"].shape)
        n_y, n_x, n_w = int(np.prod(ys)), int(np.prod(xs)), int(np.prod(ws))
        per = int(np.prod(ws[1:]))  # each output entry reads C·kh·kw inputs and as many weights
        plain = tuple(layer["stride"]) == (1, 1) and tuple(layer["dilation"]) == (1, 1)
        im2col = f"im2col({x})"
        claims = layer.get("claims", {})
        out.append(
            Jacobian(
                f"conv2d({x}, {w})",
                y,
                w,
                n_y,
                n_w,
                Structure(
                    "Kronecker product with an identity",
                    n_y * per,
                    f"in the im2col view z_n = {w}_mat · {im2col}_n, so per image it is I_{S.dim_text(ws[0])} ⊗ "
                    f"{im2col}_nᵀ (the matrix form)",
                    f"the cross-correlation of the input {x} with d{y} (d{w} = d{y} ⋆ {x}), which is Σ_n d{y}_n · "
                    f"{im2col}_nᵀ",
                    exact=not any(layer["padding"]),  # (a patch entry that reads the padding is a 0)
                ),
            )
        )
        out.append(
            Jacobian(
                f"conv2d({x}, {w})",
                y,
                x,
                n_y,
                n_x,
                Structure(
                    "convolution",
                    n_y * per,
                    f"in the im2col view ({w}_mat ⊗ I) · ∂{im2col}/∂{x}: each output entry reads one patch of {x} "
                    f"through the kernel ({per} entries)",
                    (
                        f"the full convolution of d{y} with the kernel flipped (d{x} = d{y} ∗ flip({w}))"
                        if plain
                        else f"col2im({w}_matᵀ · d{y}) (stride or dilation above 1: a strided full convolution)"
                    ),
                    exact=False,
                ),
            )
        )
        for note, key in zip(out[-2:], ("w", "x")):  # what the note states, as the steps' claims (checked)
            note.claims = [c for c in claims.get(key, []) if c is not None]
    return out


def _softmax_minus_onehot(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    n = z.shape[0]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    onehot = np.zeros_like(z)
    onehot[np.arange(n), labels] = 1.0
    return (e / e.sum(axis=1, keepdims=True) - onehot) / n


def _scores_steps(layer: dict, backward: list[Any], values: Mapping, grads: Mapping, text: Callable) -> None:
    """Where the loss is −mean(L[range(n), Y]) with L a log-softmax written out by hand (exp, sum, log), the
    scores' gradient is still (softmax − onehot(Y)) / n: claimed for each named value where it holds."""
    n, labels = layer["n"], layer["labels"]
    for line in backward:
        z = line.name[1:]
        if tuple(line.shape) != layer["shape"] or z not in values or z not in grads:
            continue
        if any("softmax(" in st.text and "onehot" in st.text for st in line.steps):
            continue
        closed = _softmax_minus_onehot(values[z], labels)
        err = _rel(closed, grads[z])
        if err < AGREE:
            y = text(labels)
            line.steps.append(
                Step(
                    f"= (softmax({z}) − onehot({y})) / {size_text(n)}",
                    f"the loss is −mean of log-probabilities that are a log-softmax of {z} written out (a shift, "
                    f"exp, a normalizing sum, log), so the textbook gradient of cross-entropy holds for {z}; "
                    "agrees with the line above at the values",
                    Agrees(lambda c=closed: c, lambda g=grads[z]: g, tuple(closed.shape)),
                )
            )
