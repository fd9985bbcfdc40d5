"""Evaluating a checked program of derive's extended language (:mod:`.lang`) with chainrule's own functions.

The values are tensors of the declared shapes; evaluating them records the
graph that :mod:`.derive_lang` hands to the recorded-graph derive.  Integer
inputs are NumPy integer arrays (``Pending`` until their values are known:
drawn, at their first use, below the size of the axis they index), masks are
NumPy bool arrays.  Every problem is a :class:`~.parse.ParseError` naming the
operation, the shapes or values, and what would be valid.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .. import linalg, ops
from ..creation import tensor
from ..nn import functional as F
from ..tensor import Tensor
from .lang import Compare, Index, Range, Slice
from .parse import BinOp, Call, Name, Neg, Node, Num, ParseError, _apply_binop, _check_size, _result_size, to_text

_COMPARE = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal, "==": np.equal}
_COMPARE["!="] = np.not_equal


@dataclass
class Pending:
    """An integer input declared without a class count: drawn at its first use, below the size it indexes."""

    name: str
    shape: tuple[int, ...]
    key: int  # its own stream of the drawing generator

    def draw(self, bound: int) -> np.ndarray:
        return np.asarray(np.random.default_rng([20261208, self.key]).integers(0, bound, self.shape))


def draw_integers(shape: tuple[int, ...], classes: int, key: int) -> np.ndarray:
    """Deterministic class indices in ``0 .. classes-1`` (the same for the same shape, count and position)."""
    return np.asarray(np.random.default_rng([20261208, key]).integers(0, classes, shape))


class Evaluator:
    """Evaluates checked nodes on ``env`` (name -> tensor, integer array, mask, or :class:`Pending`)."""

    def __init__(self, env: MutableMapping[str, Any], classes: dict[str, Optional[int]], max_values: int) -> None:
        self.env = env
        self.classes = classes  # integer input -> its declared class count (None: not declared)
        self.max_values = max_values
        self.labels: list[tuple[np.ndarray, str]] = []  # masks of comparisons, by their text
        self.held = sum(int(np.size(v)) for v in env.values() if not isinstance(v, Pending))

    # --- helpers -------------------------------------------------------------------------------------
    def tally(self, size: Optional[int], col: int) -> None:
        self.held += size or 1
        if self.held > self.max_values:
            raise ParseError(
                f"the values computed so far would hold {self.held:,} numbers, over the budget's {self.max_values:,} "
                "(its values part); use smaller shapes, or raise it with --max-numbers / max_numbers=",
                kind="limit",
                column=col,
            )

    def tensor_of(self, node: Node, what: str) -> Any:
        """A float operand: a tensor or a number (never an integer input or a mask)."""
        v = self.ev(node)
        if isinstance(v, (np.ndarray, Pending)):
            name = node.id if isinstance(node, Name) else "this value"
            if isinstance(v, np.ndarray) and v.dtype == np.bool_:
                raise ParseError(
                    f"{what}: {name} is a mask (a comparison); use it as where's condition, as in where({name}, a, b)",
                    kind="value",
                    column=getattr(node, "col", None),
                )
            raise ParseError(
                f"{what}: {name} is an integer input; use it as an index (x[{name}]), in embedding({name}, C) or in "
                f"cross_entropy(logits, {name})",
                kind="value",
                column=getattr(node, "col", None),
            )
        return v

    def integers(self, node: Node, bound: int, what: str, negative: bool = False) -> np.ndarray:
        """An integer input's values, checked to lie below ``bound`` (drawn below it if still pending)."""
        if not isinstance(node, Name) or not isinstance(self.env.get(node.id), (np.ndarray, Pending)):
            name = node.id if isinstance(node, Name) else "Y"
            shown = f"{name} is not an integer input" if isinstance(node, Name) else "this value is not an input"
            raise ParseError(
                f"{what}: {shown}; an index must be an integer input, declared with ints={{'{name}': classes}} "
                f"or --ints {name}=SHAPE:CLASSES",
                kind="value",
                column=getattr(node, "col", None),
            )
        value = self.env[node.id]
        if isinstance(value, Pending):
            value = value.draw(bound)
            self.env[node.id] = value
        if value.dtype == np.bool_:
            raise ParseError(f"{what}: {node.id} is a mask, not an integer input", kind="value", column=node.col)
        low = -bound if negative else 0
        if value.size and (value.min() < low or value.max() >= bound):
            bad = value.max() if value.max() >= bound else value.min()
            declared = self.classes.get(node.id)
            note = f" (it was declared with {declared} classes)" if declared else ""
            raise ParseError(
                f"{what}: {node.id} holds {int(bad)}{note}, but the values must lie in {low}..{bound - 1}",
                kind="value",
                column=node.col,
            )
        return value

    # --- nodes ---------------------------------------------------------------------------------------
    def ev(self, n: Node) -> Any:
        if isinstance(n, Num):
            return n.value
        if isinstance(n, Name):
            if n.id not in self.env:
                raise ParseError(f"no value for '{n.id}'", kind="missing value", column=n.col)
            return self.env[n.id]
        try:
            return self.node(n)
        except ParseError:
            raise
        except (ValueError, TypeError, IndexError, ArithmeticError, NotImplementedError) as exc:
            what = f"{n.func}(): " if isinstance(n, Call) else ""
            raise ParseError(what + str(exc).split("\n")[0], kind="shape", column=getattr(n, "col", None)) from None

    def node(self, n: Any) -> Any:
        if isinstance(n, BinOp):
            left = self.tensor_of(n.left, f"'{n.op}'")
            right = self.tensor_of(n.right, f"'{n.op}'")
            if not isinstance(left, Tensor) and not isinstance(right, Tensor):
                left = tensor(left)
            _check_size(n.op, left, right, n.col)
            self.tally(_result_size(n.op, left, right), n.col)
            return _apply_binop(n.op, left, right)
        if isinstance(n, Neg):
            out = ops.negative(self.tensor_of(n.operand, "'-'"))
            self.tally(out.size, n.col)
            return out
        if isinstance(n, Compare):
            a, b = (self.tensor_of(x, f"'{n.op}'") for x in (n.left, n.right))
            raw = [np.asarray(x.data if isinstance(x, Tensor) else x) for x in (a, b)]
            if not any(isinstance(x, Tensor) for x in (a, b)):
                raise ParseError(f"'{n.op}' compares two numbers; compare a tensor", kind="value", column=n.col)
            out = np.asarray(_COMPARE[n.op](*raw))
            self.tally(out.size, n.col)
            try:  # its name in the equations: the Iverson bracket of the comparison, [x > 0]
                self.labels.append((out, f"[{to_text(n.left)} {n.op} {to_text(n.right)}]"))
            except AttributeError:  # (an operand to_text cannot write: indexing) the mask gets a plain name
                pass
            return out
        if isinstance(n, Index):
            return self.index(n)
        assert isinstance(n, Call)
        if hasattr(self, "op_" + n.func):
            out = getattr(self, "op_" + n.func)(n, **dict(n.kwargs))
        else:  # a function of the basic language
            args = [self.tensor_of(a, f"{n.func}()") for a in n.args]
            args = [a if isinstance(a, Tensor) else tensor(a) for a in args]
            if len(args) == 2:
                op = "@" if n.func == "matmul" else n.func
                _check_size(op, args[0], args[1], n.col)
            out = getattr(ops, n.func)(*args, **dict(n.kwargs))
        self.tally(int(np.size(out)), n.col)
        return out

    def index(self, n: Index) -> Any:
        x = self.tensor_of(n.value, "indexing")
        if not isinstance(x, Tensor):
            raise ParseError("indexing takes a tensor, not a number", kind="value", column=n.col)
        if len(n.items) > x.ndim:
            raise ParseError(
                f"{len(n.items)} indices for a value of shape {tuple(x.shape)} ({x.ndim} axes)",
                kind="shape",
                column=n.col,
            )
        items: list[Any] = []
        for axis, item in enumerate(n.items):
            size = x.shape[axis]
            if isinstance(item, Name):
                items.append(self.integers(item, size, f"indexing axis {axis} of length {size}", negative=True))
            elif isinstance(item, Range):
                r = item.value()
                if r and (max(r[0], r[-1]) >= size or min(r[0], r[-1]) < -size):
                    raise ParseError(
                        f"range({r.start}, {r.stop}, {r.step}) reaches past axis {axis} of length {size}",
                        kind="value",
                        column=n.col,
                    )
                items.append(r)
            elif isinstance(item, Slice):
                items.append(item.value())
            else:
                if not -size <= item < size:
                    raise ParseError(
                        f"index {item} is out of range for axis {axis} of length {size} (valid: {-size}..{size - 1})",
                        kind="value",
                        column=n.col,
                    )
                items.append(item)
        return x[tuple(items)]

    # --- the operations of the extended language ------------------------------------------------------
    def _one(self, n: Call) -> Tensor:
        x = self.tensor_of(n.args[0], f"{n.func}()")
        return x if isinstance(x, Tensor) else tensor(x)

    def _tensors(self, n: Call) -> list[Tensor]:
        out = []
        for a in n.args:
            v = self.tensor_of(a, f"{n.func}()")
            if not isinstance(v, Tensor):
                raise ParseError(f"{n.func}() takes tensors, got the number {v:g}", kind="value", column=n.col)
            out.append(v)
        return out

    @staticmethod
    def _axis(n: Call, kw: dict) -> tuple[Any, bool]:
        return kw.get("axis", kw.get("dim")), bool(kw.get("keepdims", kw.get("keepdim", False)))

    def op_square(self, n: Call) -> Tensor:
        return ops.square(self._one(n))

    def op_var(self, n: Call, **kw: Any) -> Tensor:
        axis, keep = self._axis(n, kw)
        return ops.var(self._one(n), axis=axis, keepdims=keep, correction=kw.get("correction", 1))

    def op_std(self, n: Call, **kw: Any) -> Tensor:
        axis, keep = self._axis(n, kw)
        return ops.std(self._one(n), axis=axis, keepdims=keep, correction=kw.get("correction", 1))

    def op_norm(self, n: Call, **kw: Any) -> Tensor:
        axis, keep = self._axis(n, kw)
        return linalg.vector_norm(self._one(n), 2, axis, keep)

    def op_where(self, n: Call) -> Tensor:
        cond = self.ev(n.args[0])
        if not (isinstance(cond, np.ndarray) and cond.dtype == np.bool_):
            raise ParseError(
                "where's condition must be a comparison such as x > 0, or a mask assigned before (m = x > 0)",
                kind="value",
                column=n.col,
            )
        a, b = (self.tensor_of(x, "where()") for x in n.args[1:])
        if not isinstance(a, Tensor) and not isinstance(b, Tensor):
            raise ParseError(
                "where(): one of its two values must be a tensor, not both numbers", kind="value", column=n.col
            )
        return ops.where(cond, a, b)

    def op_reshape(self, n: Call, shape: Any) -> Tensor:
        x = self._one(n)
        shape = shape if isinstance(shape, tuple) else (shape,)
        if shape.count(-1) > 1 or any(s < -1 for s in shape):
            raise ParseError(f"reshape(): the shape {shape} may hold one -1 and no other negative size", kind="value")
        return ops.reshape(x, shape)

    def op_permute(self, n: Call, dims: Any) -> Tensor:
        x = self._one(n)
        dims = dims if isinstance(dims, tuple) else (dims,)
        if sorted(d % x.ndim if x.ndim else d for d in dims) != list(range(x.ndim)):
            raise ParseError(
                f"permute(): {dims} is not an order of the axes of a value of shape {tuple(x.shape)} "
                f"(give each of 0..{x.ndim - 1} once)",
                kind="value",
                column=n.col,
            )
        return ops.permute_dims(x, dims)

    def op_cat(self, n: Call, **kw: Any) -> Tensor:
        axis = kw.get("axis", kw.get("dim", 0))
        return ops.concatenate(self._tensors(n), axis=axis)

    def op_stack(self, n: Call, **kw: Any) -> Tensor:
        axis = kw.get("axis", kw.get("dim", 0))
        return ops.stack(self._tensors(n), axis=axis)

    def op_embedding(self, n: Call) -> Tensor:
        table = self.tensor_of(n.args[1], "embedding(X, C)")
        if not isinstance(table, Tensor) or table.ndim != 2:
            shape = tuple(getattr(table, "shape", ()))
            raise ParseError(
                f"embedding(X, C): C must be a 2-D table (rows × features), got shape {shape}", kind="shape"
            )
        rows = table.shape[0]
        idx = self.integers(n.args[0], rows, f"embedding(X, C) with C of {rows} rows")
        return F.embedding(idx, table)

    def op_cross_entropy(self, n: Call) -> Tensor:
        logits = self.tensor_of(n.args[0], "cross_entropy(logits, Y)")
        if not isinstance(logits, Tensor) or logits.ndim == 0:
            raise ParseError("cross_entropy(logits, Y): logits must have shape (N, C) or (C,)", kind="shape")
        classes = logits.shape[1 if logits.ndim > 1 else 0]
        target = n.args[1]
        if isinstance(target, Name) and isinstance(self.env.get(target.id), (np.ndarray, Pending)):
            y = self.integers(target, classes, f"cross_entropy(logits, Y) with {classes} classes")
            want = logits.shape[:1] + logits.shape[2:] if logits.ndim > 1 else ()
            if tuple(y.shape) != tuple(want):
                raise ParseError(
                    f"cross_entropy(logits, {target.id}): logits of shape {tuple(logits.shape)} need class indices "
                    f"of shape {tuple(want)}, got {tuple(y.shape)}",
                    kind="shape",
                    column=n.col,
                )
            return F.cross_entropy(logits, y)
        probs = self.tensor_of(target, "cross_entropy(logits, Y)")
        return F.cross_entropy(logits, probs)

    def op_batch_norm(self, n: Call, eps: float = 1e-5) -> Tensor:
        x, gamma, beta = self._tensors(n)
        if x.ndim < 2:
            raise ParseError(
                f"batch_norm(x, gamma, beta): x must be (N, C) or (N, C, ...), got {tuple(x.shape)}",
                kind="shape",
                column=n.col,
            )
        return F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)

    def op_layer_norm(self, n: Call, eps: float = 1e-5) -> Tensor:
        x, gamma, beta = self._tensors(n)
        return F.layer_norm(x, tuple(gamma.shape), gamma, beta, eps=eps)

    def op_conv2d(self, n: Call, stride: Any = 1, padding: Any = 0) -> Tensor:
        ts = self._tensors(n)
        x, w = ts[0], ts[1]
        if x.ndim == 4 and w.ndim == 4:
            kh, kw = w.shape[2:]
            sh, sw = (stride, stride) if isinstance(stride, int) else stride
            ph, pw = (padding, padding) if isinstance(padding, int) else padding
            oh, ow = (x.shape[2] + 2 * ph - kh) // sh + 1, (x.shape[3] + 2 * pw - kw) // sw + 1
            self.tally(max(oh, 0) * max(ow, 0) * x.shape[0] * x.shape[1] * kh * kw, n.col)  # (its patches)
        return F.conv2d(x, w, ts[2] if len(ts) > 2 else None, stride=stride, padding=padding)

    def op_max_pool2d(self, n: Call, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Tensor:
        return F.max_pool2d(self._one(n), kernel_size, stride=stride, padding=padding)

    def op_avg_pool2d(self, n: Call, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Tensor:
        return F.avg_pool2d(self._one(n), kernel_size, stride=stride, padding=padding)

    def op_linear(self, n: Call) -> Tensor:
        ts = self._tensors(n)
        return F.linear(ts[0], ts[1], ts[2] if len(ts) > 2 else None)

    def op_attention(self, n: Call, scale: Optional[float] = None) -> Tensor:
        q, k, v = self._tensors(n)
        if min(q.ndim, k.ndim, v.ndim) < 2:
            raise ParseError(
                f"attention(q, k, v): q, k and v need at least 2 axes (tokens × features), got shapes "
                f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}",
                kind="shape",
            )
        s = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
        scores = ops.matmul(q, ops.swapaxes(k, -2, -1)) * s
        return ops.matmul(F.softmax(scores, dim=-1), v)

    op_scaled_dot_product_attention = op_attention

    def op_dropout(self, n: Call, p: float = 0.5) -> Tensor:
        """Training-mode dropout with a mask drawn from a fixed seed (``keep / (1 − p)``, an input of the graph)."""
        x = self._one(n)
        keep = np.random.default_rng([20261208, 99, len(self.labels)]).random(x.shape) >= p
        scale = keep.astype(np.float64) / (1.0 - p)
        self.labels.append((scale, "dropout_mask"))
        return x * scale

    def op_mse_loss(self, n: Call) -> Tensor:
        a, b = self._tensors(n)
        return F.mse_loss(a, b)

    def op_flatten(self, n: Call, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        return F.flatten(self._one(n), start_dim, end_dim)

    def op_leaky_relu(self, n: Call, negative_slope: float = 0.01) -> Tensor:
        return F.leaky_relu(self._one(n), negative_slope)

    def op_elu(self, n: Call, alpha: float = 1.0) -> Tensor:
        return F.elu(self._one(n), alpha)

    def op_silu(self, n: Call) -> Tensor:
        return F.silu(self._one(n))

    def op_clamp(self, n: Call, min: Optional[float] = None, max: Optional[float] = None) -> Tensor:  # noqa: A002
        if min is None and max is None:
            raise ParseError("clamp(x, min, max): give min or max (or both)", kind="value", column=n.col)
        return ops.clip(self._one(n), min, max)
