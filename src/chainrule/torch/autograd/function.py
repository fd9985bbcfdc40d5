"""``torch.autograd.Function``: a custom operation with its own ``backward``, built on chainrule's
primitive record (one node in the graph, whose rule calls your ``backward``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...grad_mode import MODE, no_grad
from ...primitive import Primitive
from ...tensor import Tensor, apply


class FunctionCtx:
    """What ``forward`` and ``backward`` share: ``save_for_backward``, ``saved_tensors``, ``needs_input_grad``."""

    def __init__(self) -> None:
        self._saved: tuple = ()
        self.needs_input_grad: tuple[bool, ...] = ()
        self.materialize_grads = True
        self._non_differentiable: set[int] = set()

    def save_for_backward(self, *tensors: Any) -> None:
        for t in tensors:
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(
                    f"save_for_backward can only save tensors (or None), got {type(t).__name__}; keep other values "
                    "as attributes of ctx (ctx.k = k)"
                )
        self._saved = tensors

    @property
    def saved_tensors(self) -> tuple:
        return self._saved

    def mark_non_differentiable(self, *tensors: Any) -> None:
        self._non_differentiable.update(id(t) for t in tensors)

    def set_materialize_grads(self, value: bool) -> None:
        self.materialize_grads = bool(value)

    def mark_dirty(self, *tensors: Any) -> None:
        raise NotImplementedError(
            "ctx.mark_dirty (an in-place custom Function) is not supported in chainrule.torch; return a new tensor"
        )


class _FunctionMeta(type):
    pass


class Function(metaclass=_FunctionMeta):
    """Subclass with static ``forward(ctx, *args)`` and ``backward(ctx, *grad_outputs)``; call ``Cls.apply(...)``.

    ``forward`` runs with gradients off (as in torch) and returns one tensor; ``backward`` returns one
    gradient per ``forward`` argument (``None`` for non-tensors and for inputs needing none).  Under
    ``create_graph=True``, ``backward`` receives tensors that record, so a backward written with tensor
    operations is differentiable again.  (torch 2's ``setup_context`` style works too.)
    """

    @staticmethod
    def forward(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("autograd.Function: define a static forward(ctx, *args)")

    @staticmethod
    def backward(ctx: Any, *grad_outputs: Any) -> Any:
        raise NotImplementedError("autograd.Function: define a static backward(ctx, *grad_outputs)")

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Any) -> Any:
        return NotImplemented

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("autograd.Function: call the class's apply(...), not the class itself")

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        ctx = FunctionCtx()
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        separate = cls.setup_context is not Function.setup_context
        with no_grad():
            out = cls.forward(*args, **kwargs) if separate else cls.forward(ctx, *args, **kwargs)
        if separate:
            cls.setup_context(ctx, args, out)
        if isinstance(out, (tuple, list)):
            if any(ctx.needs_input_grad) and MODE.enabled:
                raise NotImplementedError(
                    f"{cls.__name__}.apply: a forward returning several tensors is not supported in chainrule.torch; "
                    "split it into one Function per output"
                )
            return out
        if not isinstance(out, Tensor):
            raise TypeError(f"{cls.__name__}.forward must return a Tensor, got {type(out).__name__}")
        if not any(ctx.needs_input_grad) or not MODE.enabled or id(out) in ctx._non_differentiable:
            return Tensor(out._data)
        return _record(cls, ctx, args, out)


def _record(cls: type, ctx: FunctionCtx, args: tuple, out: Tensor) -> Tensor:
    positions = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
    tensors = [args[i] for i in positions]
    value = out._data
    prim = Primitive(cls.__name__, lambda *vals: value, nin=len(tensors), plain=True)
    last: list[Any] = [None, None]

    def grads_for(g: Any) -> tuple:
        if last[0] is g:
            return last[1]
        nested = isinstance(g, Tensor)
        gt = g if nested else Tensor(np.asarray(g, dtype=out.dtype))
        if nested:
            grads = cls.backward(ctx, gt)
        else:
            with no_grad():
                grads = cls.backward(ctx, gt)
        if not isinstance(grads, tuple):
            grads = (grads,)
        if len(grads) < len(args):
            raise RuntimeError(
                f"{cls.__name__}.backward returned {len(grads)} gradients, but forward took {len(args)} arguments; "
                "return one per argument (None where there is none)"
            )
        picked = []
        for i in positions:
            gi = grads[i]
            if gi is not None and not nested:
                gi = gi._data if isinstance(gi, Tensor) else np.asarray(gi)
            picked.append(gi)
        last[:] = [g, tuple(picked)]
        return last[1]

    def rule(k: int) -> Any:
        def vjp(xp: Any, g: Any, o: Any, *vals: Any) -> Any:
            gk = grads_for(g)[k]
            if gk is None:
                return xp.broadcast_to(xp.sum(g, None, False) * 0.0, xp.shape(vals[k]))
            return gk

        return vjp

    prim.vjps = tuple(rule(k) for k in range(len(tensors)))
    node = apply(prim, *tensors)
    # as torch: a saved output is the Function's output in the graph, so a backward using it differentiates again
    ctx._saved = tuple(node if s is out else s for s in ctx._saved)
    return node


def once_differentiable(fn: Any) -> Any:
    """torch's decorator for a backward that is not differentiable itself: here it changes nothing."""
    return fn
