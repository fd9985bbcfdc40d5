"""The closed forms of composite layers in a recorded graph, added to ``cr.derive(output)``'s steps.

The walk derives every gradient from the primitives a layer is recorded as
(``log_softmax`` then indexing; ``mean``, ``sqrt`` and division for a norm), so
the printed equations hold but are not the forms a textbook gives.  Here each
composite layer is found in the graph by its shape of nodes, and its closed
form is added as one more step of the gradient it gives:

* softmax cross-entropy (mean reduction): ``dlogits = (softmax(logits) − onehot(Y)) / n``;
* batch norm in training mode, layer norm: ``dX = (γ / σ) ⊙ (dY − mean(dY) − x̂ ⊙ mean(dY ⊙ x̂))``
  (mean over the normalized axes; ``g = dY ⊙ γ`` inside the means for layer norm);
* an embedding lookup ``C[X]``: ``dC = onehot(X)ᵀ · dE`` (the scatter-add of the rows of ``dE``).

A closed form is claimed only where it agrees with the derived gradient at the
recorded values (the exported NumPy code, run once); the step says by how much.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Optional

import numpy as np

from ..graph import node_of
from ..tensor import Tensor
from .derive_steps import Step

AGREE = 1e-8  # relative difference under which a closed form is claimed


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
    for layer in layers:
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
            if err < AGREE:
                y = text(labels)
                line.steps.append(
                    Step(
                        f"= (softmax({z}) − onehot({y})) / {n}",
                        f"softmax cross-entropy: the scatter of −1/{n} at (range({n}), {y}) is −onehot({y}) / {n}, "
                        f"each row of onehot({y}) sums to 1, and exp(log_softmax({z})) = softmax({z}); agrees with "
                        f"the line above at the recorded values (relative difference {err:.0e})",
                        check=_agreement(err),
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
            over = "rows" if axes == (0,) else "cols" if axes in ((xv.ndim - 1,), (-1,)) else f"axes {axes}"
            factor = f"({gname} / σ)" if gname and axes == (0,) else "(1 / σ)"
            dy = f"d{y}" if factor != "(1 / σ)" or not gname else f"(d{y} ⊙ {gname})"
            bare = dy[1:-1] if dy.startswith("(") else dy
            line.steps.append(
                Step(
                    f"= {factor} ⊙ ({dy} − mean_{over}({bare}) − x̂ ⊙ mean_{over}({dy} ⊙ x̂))",
                    f"the closed form of {'batch' if axes == (0,) else 'layer'} norm, with x̂ = ({x} − mean_{over}({x}))"
                    f" / σ and σ = √(mean_{over}(({x} − mean)²) + ε); agrees with the line above at the recorded "
                    f"values (relative difference {err:.0e})",
                    check=_agreement(err),
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
            rows, dim = int(index.size), int(layer["w"].shape[1])
            de = f"d{out}" if out else "the lookup's gradient"
            flat = f"reshape({de}, {rows}×{dim})" if index.ndim > 1 else de
            if out is None or out not in grads or w not in grads:
                continue
            onehot = np.zeros((rows, int(layer["w"].shape[0])))
            onehot[np.arange(rows), np.asarray(index).reshape(-1)] = 1.0
            err = _rel(onehot.T @ np.asarray(grads[out]).reshape(rows, dim), grads[w])
            if err >= AGREE:
                continue
            line.steps.append(
                Step(
                    f"= onehot({text(index)})ᵀ · {flat}",
                    f"an embedding lookup's gradient adds each row of {de} into the row of {w} it was read from "
                    f"(repeats add up): onehot({text(index)}) is {rows}×{layer['w'].shape[0]} with one 1 per row; "
                    f"agrees with the line above at the recorded values (relative difference {err:.0e})",
                    check=_agreement(err),
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


def _conv_steps(layer: dict, lines: dict, names: Mapping[int, str], values: Mapping, grads: Mapping) -> None:
    """conv2d's weight gradient as a cross-correlation, its input gradient as a full convolution."""
    x, w, y = (names.get(id(layer[k])) for k in ("x", "w", "y"))
    if x is None or w is None or y is None or y not in grads or x not in values or w not in values:
        return
    dz = grads[y]
    line = lines.get(f"d{w}")
    if line is not None and w in grads:
        err = _rel(_correlate(values[x], dz, layer), grads[w])
        if err < AGREE:
            line.steps.append(
                Step(
                    f"= d{y} ⋆ {x}: d{w}[o, c, i, j] = Σ_n Σ_p,q d{y}[n, o, p, q] {x}[n, c, p·s + i, q·s + j]",
                    f"the weight gradient is the cross-correlation of the input {x} (padded) with d{y}; "
                    f"the im2col form above is the same sum as one matrix product; agrees at the recorded values "
                    f"(relative difference {err:.0e})",
                    check=_agreement(err),
                )
            )
    line = lines.get(f"d{x}")
    plain = tuple(layer["stride"]) == (1, 1) and tuple(layer["dilation"]) == (1, 1)
    if line is not None and x in grads and plain:
        err = _rel(_full_convolution(dz, values[w], layer), grads[x])
        if err < AGREE:
            line.steps.append(
                Step(
                    f"= d{y} ∗ flip({w}): the full convolution of d{y} with the kernel flipped",
                    f"col2im(Wᵀ · dz) adds each patch's share back where it was read: d{y} padded by k − 1 − p "
                    f"and cross-correlated with {w} flipped in both spatial axes (in and out channels swapped); "
                    f"agrees at the recorded values (relative difference {err:.0e})",
                    check=_agreement(err),
                )
            )


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
        err = _rel(_softmax_minus_onehot(values[z], labels), grads[z])
        if err < AGREE:
            y = text(labels)
            line.steps.append(
                Step(
                    f"= (softmax({z}) − onehot({y})) / {n}",
                    f"the loss is −mean of log-probabilities that are a log-softmax of {z} written out (a shift, "
                    f"exp, a normalizing sum, log), so the textbook gradient of cross-entropy holds for {z}; "
                    f"agrees with the line above at the recorded values (relative difference {err:.0e})",
                    check=_agreement(err),
                )
            )
