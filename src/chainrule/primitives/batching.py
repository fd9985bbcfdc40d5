"""Batching rules: how each primitive runs on values that carry one extra batch axis (``cr.vmap``).

A batching rule is called as ``rule(xp, vals, dims, *params)``:

- ``vals`` are the primitive's tensor inputs, each *physical*: a batched input holds the batch axis at
  ``dims[i]``; an unbatched one (``dims[i] is None``) is the value every batch entry shares;
- ``params`` are the static parameters (``axis``, a shape, an index), exactly as the unbatched call had them;
- it returns ``(out, out_dim)``: the batched result and where its batch axis is.

Rules are written against the array namespace ``xp`` like the VJP rules, and run the primitive itself through
``xp.apply``: on NumPy arrays, or on chainrule tensors, where the batched call is recorded (so ``grad`` of a
``vmap`` works).  Where the kind determines the rule, it is derived from it: an ``elementwise`` primitive
lines its batched inputs' batch axes up at the front (:func:`rule_of`).  The other rules are attached next to
each primitive's VJP rules with :func:`chainrule.primitive.defbatch`, built from the factories here
(reductions shift their axes, shape operations their shape parameters) or written by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Optional

import numpy as np

from ..primitive import Primitive

Dims = Sequence[Optional[int]]


class BatchingError(NotImplementedError):
    """A primitive cannot run under ``vmap`` (no batching rule, or one that refuses these arguments)."""


# --- helpers on any namespace ------------------------------------------------------------------


def ndim(xp: Any, x: Any) -> int:
    return len(xp.shape(x))


def batch_size(xp: Any, vals: Sequence[Any], dims: Dims) -> int:
    """The batch size, read from the first batched input."""
    for v, d in zip(vals, dims):
        if d is not None:
            return int(xp.shape(v)[d])
    raise BatchingError("batching rule called with no batched input")


def moveaxis(xp: Any, x: Any, src: int, dst: int) -> Any:
    """``x`` with axis ``src`` moved to position ``dst`` (a transpose; nothing if it is already there)."""
    nd = ndim(xp, x)
    src %= nd
    dst %= nd
    if src == dst:
        return x
    perm = [a for a in range(nd) if a != src]
    perm.insert(dst, src)
    return xp.transpose(x, tuple(perm))


def front(xp: Any, x: Any, d: Optional[int]) -> Any:
    """A batched value with its batch axis first."""
    return x if not d else moveaxis(xp, x, d, 0)


def align(xp: Any, x: Any, d: int, rank: int) -> Any:
    """A batched value with its batch axis first and ones inserted after it up to logical rank ``rank``,
    so it broadcasts against unbatched values of rank ``rank`` (which line up with its trailing axes)."""
    x = front(xp, x, d)
    shape = xp.shape(x)
    extra = rank - (len(shape) - 1)
    if extra <= 0:
        return x
    return xp.reshape(x, (shape[0],) + (1,) * extra + tuple(shape[1:]))


def expand(xp: Any, x: Any, size: int) -> Any:
    """An unbatched value given a leading batch axis of length ``size`` (a broadcast view)."""
    shape = tuple(xp.shape(x))
    return xp.broadcast_to(xp.reshape(x, (1,) + shape), (size,) + shape)


def logical_rank(xp: Any, x: Any, d: Optional[int]) -> int:
    return ndim(xp, x) - (d is not None)


# --- rules derived from a primitive's kind -------------------------------------------------------------


def elementwise(prim: Primitive) -> Callable[..., Any]:
    """Elementwise (with NumPy broadcasting): batched inputs get their batch axis first and are padded with
    ones to the output's logical rank; unbatched inputs broadcast against the trailing axes as they are."""

    def rule(xp: Any, vals: Sequence[Any], dims: Dims, *params: Any) -> tuple[Any, int]:
        rank = max(logical_rank(xp, v, d) for v, d in zip(vals, dims))
        args = [v if d is None else align(xp, v, d, rank) for v, d in zip(vals, dims)]
        return xp.apply(prim, *args, *params), 0

    rule.__name__ = f"batch_{prim.name}"
    rule.derived = "elementwise"  # type: ignore[attr-defined]
    return rule


def _shift(axis: Any) -> Any:
    """Axis parameters after a batch axis is put first: non-negative ones move up by one, negative ones (counted
    from the end) stay."""
    if isinstance(axis, (tuple, list)):
        return tuple(a + 1 if a >= 0 else a for a in axis)
    return axis + 1 if axis >= 0 else axis


def reduction(prim: Primitive) -> Callable[..., Any]:
    """A reduction ``prim(x, axis, keepdims)``: the batch axis goes first and the reduced axes move up by one
    (``axis=None``, all axes, becomes every axis but the batch one)."""

    def rule(xp: Any, vals: Sequence[Any], dims: Dims, axis: Any, *rest: Any) -> tuple[Any, int]:
        x = front(xp, vals[0], dims[0])
        ax = tuple(range(1, ndim(xp, x))) if axis is None else _shift(axis)
        return xp.apply(prim, x, ax, *rest), 0

    rule.__name__ = f"batch_{prim.name}"
    return rule


def along_axis(prim: Primitive) -> Callable[..., Any]:
    """An operation along one axis ``prim(x, axis)`` (softmax, log-softmax): the axis moves up by one."""

    def rule(xp: Any, vals: Sequence[Any], dims: Dims, axis: Any) -> tuple[Any, int]:
        return xp.apply(prim, front(xp, vals[0], dims[0]), _shift(axis)), 0

    rule.__name__ = f"batch_{prim.name}"
    return rule


def leading_batch(prim: Primitive) -> Callable[..., Any]:
    """A one-input operation already batched over leading axes (inv, det): the batch axis goes first."""

    def rule(xp: Any, vals: Sequence[Any], dims: Dims, *params: Any) -> tuple[Any, int]:
        return xp.apply(prim, front(xp, vals[0], dims[0]), *params), 0

    rule.__name__ = f"batch_{prim.name}"
    return rule


def folded_batch(prim: Primitive) -> Callable[..., Any]:
    """An operation on a 3-d or 4-d array whose first axis is already a batch (unfold, fold): the vmap batch
    is folded into it, ``(B, N, ...) -> (B·N, ...)``, and unfolded from the result."""

    def rule(xp: Any, vals: Sequence[Any], dims: Dims, *params: Any) -> tuple[Any, int]:
        x = front(xp, vals[0], dims[0])
        shape = tuple(xp.shape(x))
        out = xp.apply(prim, xp.reshape(x, (shape[0] * shape[1],) + shape[2:]), *params)
        oshape = tuple(xp.shape(out))
        return xp.reshape(out, (shape[0], shape[1]) + oshape[1:]), 0

    rule.__name__ = f"batch_{prim.name}"
    return rule


def joining(prim: Primitive) -> Callable[..., Any]:
    """concatenate / stack ``prim(*xs, axis)``: every operand gets the batch axis first (unbatched ones are
    broadcast to it) and the axis moves up by one."""

    def rule(xp: Any, vals: Sequence[Any], dims: Dims, axis: int) -> tuple[Any, int]:
        size = batch_size(xp, vals, dims)
        args = [expand(xp, v, size) if d is None else front(xp, v, d) for v, d in zip(vals, dims)]
        return xp.apply(prim, *args, _shift(axis)), 0

    rule.__name__ = f"batch_{prim.name}"
    return rule


# --- indexing -----------------------------------------------------------------------------------------


def _as_tuple(index: Any) -> tuple:
    return index if isinstance(index, tuple) else (index,)


def index_batch_axis(index: Any) -> int:
    """Where NumPy puts a leading batch axis in ``x[(slice(None),) + index]``.

    With advanced indices (arrays) that are not next to each other (ints count as advanced beside arrays),
    NumPy moves the advanced result axes to the front, ahead of the batch axis; otherwise it stays first.
    """
    entries = _as_tuple(index)
    arrays = [e for e in entries if isinstance(e, (np.ndarray, list))]
    if not arrays:
        return 0
    advanced = [
        i
        for i, e in enumerate(entries)
        if isinstance(e, (np.ndarray, list)) or (isinstance(e, (int, np.integer)) and not isinstance(e, bool))
    ]
    if advanced == list(range(advanced[0], advanced[-1] + 1)):
        return 0
    nd = 0
    for e in entries:
        if isinstance(e, (np.ndarray, list)):
            a = np.asarray(e)
            nd = max(nd, 1 if a.dtype == bool else a.ndim)
    return nd


def getitem_rule(prim: Primitive) -> Callable[..., Any]:
    def rule(xp: Any, vals: Sequence[Any], dims: Dims, index: Any) -> tuple[Any, int]:
        x = front(xp, vals[0], dims[0])
        return xp.apply(prim, x, (slice(None),) + _as_tuple(index)), index_batch_axis(index)

    rule.__name__ = "batch_getitem"
    return rule


def scatter_add_rule(prim: Primitive) -> Callable[..., Any]:
    """``scatter_add(x, index, shape)`` is getitem's adjoint: ``x`` is laid out as ``getitem`` lays out its
    result, with the batch axis where :func:`index_batch_axis` says."""

    def rule(xp: Any, vals: Sequence[Any], dims: Dims, index: Any, shape: tuple) -> tuple[Any, int]:
        x = vals[0]
        size = int(xp.shape(x)[dims[0]])
        x = moveaxis(xp, x, dims[0], index_batch_axis(index))
        return xp.apply(prim, x, (slice(None),) + _as_tuple(index), (size,) + tuple(shape)), 0

    rule.__name__ = "batch_scatter_add"
    return rule


# --- shape operations -----------------------------------------------------------------------------------


def reshape_rule(prim: Primitive) -> Callable[..., Any]:
    def rule(xp: Any, vals: Sequence[Any], dims: Dims, shape: Any) -> tuple[Any, int]:
        x = front(xp, vals[0], dims[0])
        return xp.apply(prim, x, (xp.shape(x)[0],) + tuple(shape)), 0

    rule.__name__ = "batch_reshape"
    return rule


def transpose_rule(prim: Primitive) -> Callable[..., Any]:
    def rule(xp: Any, vals: Sequence[Any], dims: Dims, axes: Any) -> tuple[Any, int]:
        x = front(xp, vals[0], dims[0])
        if axes is None:
            axes = tuple(reversed(range(ndim(xp, x) - 1)))
        return xp.apply(prim, x, (0,) + tuple(a % (ndim(xp, x) - 1) + 1 for a in axes)), 0

    rule.__name__ = "batch_transpose"
    return rule


def broadcast_to_rule(prim: Primitive) -> Callable[..., Any]:
    def rule(xp: Any, vals: Sequence[Any], dims: Dims, shape: Any) -> tuple[Any, int]:
        shape = tuple(shape)
        x = align(xp, vals[0], dims[0], len(shape))
        return xp.apply(prim, x, (xp.shape(x)[0],) + shape), 0

    rule.__name__ = "batch_broadcast_to"
    return rule


# --- the matrix-product family -----------------------------------------------------------------------


def matmul_rule(prim: Primitive) -> Callable[..., Any]:
    """``x @ y`` with NumPy's rules: a batched operand gets its batch axis first; a batched 1-d operand is made a
    row (``x``) or a column (``y``) and the added axis is dropped afterwards; batched operands are padded with
    ones so their batch axis lines up with the other operand's leading (broadcast) axes."""

    def rule(xp: Any, vals: Sequence[Any], dims: Dims) -> tuple[Any, int]:
        (x, y), (dx, dy) = vals, dims
        rx, ry = logical_rank(xp, x, dx), logical_rank(xp, y, dy)
        if dx is None and rx == 2 and ry in (1, 2):  # a shared matrix times a batch: one matrix product
            y = moveaxis(xp, y, dy, -1 if ry == 1 else 1)  # (n, B) or (n, B, k)
            s = tuple(xp.shape(y))
            out = xp.apply(prim, x, y if ry == 1 else xp.reshape(y, (s[0], s[1] * s[2])))
            return (out, 1) if ry == 1 else (xp.reshape(out, (xp.shape(out)[0], s[1], s[2])), 1)
        if dy is None and ry == 2 and rx in (1, 2):  # a batch times a shared matrix: rows of one product
            x = front(xp, x, dx)
            if rx == 1:
                return xp.apply(prim, x, y), 0
            s = tuple(xp.shape(x))
            out = xp.apply(prim, xp.reshape(x, (s[0] * s[1], s[2])), y)
            return xp.reshape(out, (s[0], s[1], xp.shape(out)[-1])), 0
        x_row = dx is not None and rx == 1
        y_col = dy is not None and ry == 1
        if dx is not None:
            x = front(xp, x, dx)
            if x_row:
                s = xp.shape(x)
                x = xp.reshape(x, (s[0], 1, s[1]))
        if dy is not None:
            y = front(xp, y, dy)
            if y_col:
                s = xp.shape(y)
                y = xp.reshape(y, (s[0], s[1], 1))
        rank = max(2 if x_row else rx, 2 if y_col else ry)
        if dx is not None:
            x = align(xp, x, 0, rank)
        if dy is not None:
            y = align(xp, y, 0, rank)
        out = xp.apply(prim, x, y)
        # drop the added axes: y's column is last; x's row is last once y is a vector, else second to last
        for added, at in ((y_col, -1), (x_row, -1 if (y_col or ry == 1) else -2)):
            if added:
                s = tuple(xp.shape(out))
                k = len(s) + at
                out = xp.reshape(out, s[:k] + s[k + 1 :])
        return out, 0

    rule.__name__ = "batch_matmul"
    return rule


def einsum_rule(prim: Primitive) -> Callable[..., Any]:
    """An einsum in explicit form: a letter no term uses is the batch index of every batched operand and of the
    output."""

    def rule(xp: Any, vals: Sequence[Any], dims: Dims, equation: str) -> tuple[Any, int]:
        lhs, out = equation.split("->")
        terms = lhs.split(",")
        used = set(equation)
        letter = next(c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in used)
        args = []
        for k, (v, d) in enumerate(zip(vals, dims)):
            if d is not None:
                args.append(front(xp, v, d))
                terms[k] = letter + terms[k]
            else:
                args.append(v)
        return xp.apply(prim, *args, ",".join(terms) + "->" + letter + out), 0

    rule.__name__ = "batch_einsum"
    return rule


def linear_rule(prim: Primitive, matmul: Primitive, add: Primitive) -> Callable[..., Any]:
    """``linear(x, W, b) = x @ Wᵀ + b``: with only ``x`` batched, the batch is one more leading axis of ``x``;
    with a batched weight or bias, the product and the sum are batched as ``matmul`` and ``add``."""
    mm = matmul_rule(matmul)
    plus = elementwise(add)

    def rule(xp: Any, vals: Sequence[Any], dims: Dims) -> tuple[Any, int]:
        (x, W, b), (dx, dW, db) = vals, dims
        if dW is None and db is None:
            return xp.apply(prim, front(xp, x, dx), W, b), 0
        Wt = xp.swapaxes(W, -1, -2) if dW is None else xp.swapaxes(front(xp, W, dW), -1, -2)
        out, d = mm(xp, (x, Wt), (dx, None if dW is None else 0))
        if b is None:
            return out, d
        return plus(xp, (out, b), (d, db))

    rule.__name__ = "batch_linear"
    return rule


# --- looking a rule up ------------------------------------------------------------------------------


def rule_of(prim: Primitive) -> Callable[..., Any]:
    """``prim``'s batching rule: its own (``defbatch``), else the one its kind determines (elementwise)."""
    rule = prim.batch
    if isinstance(rule, str):  # refused on purpose (chainrule.primitive.refuse_batch)
        raise BatchingError(f"vmap: primitive {prim.name!r} cannot be batched: {rule}")
    if rule is not None:
        return rule
    if prim.kind == "elementwise":
        rule = prim.batch = elementwise(prim)
        return rule
    raise BatchingError(
        f"vmap: primitive {prim.name!r} has no batching rule (and its kind, {prim.kind!r}, does not determine "
        "one). Attach one with chainrule.primitive.defbatch(prim, rule), rule(xp, vals, dims, *params) -> "
        "(out, out_dim); a cr.custom_vjp function cannot be vmapped yet: call it in a Python loop"
    )


__all__ = [
    "BatchingError",
    "align",
    "along_axis",
    "batch_size",
    "broadcast_to_rule",
    "einsum_rule",
    "elementwise",
    "expand",
    "folded_batch",
    "front",
    "getitem_rule",
    "index_batch_axis",
    "joining",
    "leading_batch",
    "linear_rule",
    "matmul_rule",
    "moveaxis",
    "reduction",
    "reshape_rule",
    "rule_of",
    "scatter_add_rule",
    "transpose_rule",
]


# --- image primitives whose vmap batch can join the images' own batch axis -------------------------------


def _images(xp: Any, vals: Sequence[Any], dims: Dims, which: Sequence[int]) -> tuple[list, int]:
    """The inputs ``which`` with the vmap batch first (an unbatched one broadcast to it), and the batch size."""
    n = batch_size(xp, vals, dims)
    out = list(vals)
    for i in which:
        out[i] = front(xp, vals[i], dims[i]) if dims[i] is not None else expand(xp, vals[i], n)
    return out, n


def _fold_in(xp: Any, x: Any) -> Any:
    shape = tuple(xp.shape(x))
    return xp.reshape(x, (shape[0] * shape[1],) + shape[2:])


def _fold_out(xp: Any, out: Any, n: int) -> Any:
    shape = tuple(xp.shape(out))
    return xp.reshape(out, (n, shape[0] // n) + shape[1:])


def images_folded(prim: Primitive, images: Sequence[int]) -> Callable[..., Any]:
    """A primitive over batches of images ``(N, C, H, W)`` in inputs ``images`` (every other input unbatched):
    the vmap batch joins N, ``(B, N, ...) -> (B·N, ...)``, and is split off the result again."""

    def rule(xp: Any, vals: Sequence[Any], dims: Dims, *params: Any) -> tuple[Any, int]:
        if any(d is not None for i, d in enumerate(dims) if i not in images):
            raise BatchingError(f"{prim.name}: only its image inputs {tuple(images)} can be batched here")
        args, n = _images(xp, vals, dims, images)
        args = [_fold_in(xp, a) if i in images else a for i, a in enumerate(args)]
        return _fold_out(xp, xp.apply(prim, *args, *params), n), 0

    rule.__name__ = f"batch_{prim.name}"
    return rule


def conv_rule(prim: Primitive, unfold: Primitive, fold: Primitive, kind: str) -> Callable[..., Any]:
    """conv2d (``kind="forward"``), its input gradient (``"input"``) and its weight gradient (``"weight"``).

    With the weight unbatched, the vmap batch joins the images' batch axis.  Otherwise each is written as the
    matrix products of im2col it stands for, one weight per batch entry: one stacked ``matmul`` over
    ``(B, N)`` (BLAS per image; an einsum here ran NumPy's loops and was the slowest node of per-sample CNN
    gradients), the weight's ``(B, 1, ...)`` broadcast against the images."""
    folded = images_folded(prim, (0,))

    def rule(xp: Any, vals: Sequence[Any], dims: Dims, *params: Any) -> tuple[Any, int]:
        if kind != "weight" and dims[1] is None:
            return folded(xp, vals, dims, *params)
        (a, b), n = _images(xp, vals, dims, (0, 1))
        if kind == "forward":  # a: x (B, N, C, H, W), b: w (B, O, C, kh, kw)
            stride, padding, dilation = params
            wshape = tuple(xp.shape(b))
            cols = xp.apply(unfold, _fold_in(xp, a), wshape[3:], dilation, padding, stride)  # (B·N, C·k², L)
            cshape = tuple(xp.shape(cols))
            cols = xp.reshape(cols, (n, cshape[0] // n) + cshape[1:])
            out = xp.matmul(xp.reshape(b, (n, 1, wshape[1], -1)), cols)  # (B, N, O, L)
            xshape = tuple(xp.shape(a))
            oh, ow = _conv_out(xshape[3:], wshape[3:], stride, padding, dilation)
            return xp.reshape(out, (n, xshape[1], wshape[1], oh, ow)), 0
        if kind == "input":  # a: g (B, N, O, h, w), b: w (B, O, C, kh, kw)
            size, stride, padding, dilation = params
            wshape, gshape = tuple(xp.shape(b)), tuple(xp.shape(a))
            g = xp.reshape(a, (n, gshape[1], gshape[2], -1))
            wt = xp.swapaxes(xp.reshape(b, (n, 1, wshape[1], -1)), -1, -2)  # (B, 1, C·k², O)
            cols = xp.matmul(wt, g)  # (B, N, C·k², L)
            cols = xp.reshape(cols, (n * gshape[1],) + tuple(xp.shape(cols))[2:])
            return _fold_out(xp, xp.apply(fold, cols, size, wshape[3:], dilation, padding, stride), n), 0
        # weight: a: x (B, N, C, H, W), b: g (B, N, O, h, w) -> (B, O, C, kh, kw)
        kernel, stride, padding, dilation = params
        xshape, gshape = tuple(xp.shape(a)), tuple(xp.shape(b))
        cols = xp.apply(unfold, _fold_in(xp, a), kernel, dilation, padding, stride)
        cshape = tuple(xp.shape(cols))
        cols = xp.reshape(cols, (n, xshape[1]) + cshape[1:])  # (B, N, C·k², L)
        per = xp.matmul(xp.reshape(b, (n, gshape[1], gshape[2], -1)), xp.swapaxes(cols, -1, -2))  # (B, N, O, C·k²)
        out = xp.reshape(per, (n,) + tuple(xp.shape(per))[2:]) if gshape[1] == 1 else xp.sum(per, 1)
        return xp.reshape(out, (n, gshape[2], xshape[2]) + tuple(kernel)), 0

    rule.__name__ = f"batch_{prim.name}"
    return rule


def _conv_out(size: Sequence[int], kernel: Sequence[int], stride: Any, padding: Any, dilation: Any) -> tuple:
    return tuple((size[i] + 2 * padding[i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(2))
