"""``torch.autograd``: ``grad``, ``backward``, ``Function``, ``functional``, grad-mode switches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from ...anomaly import detect_anomaly  # noqa: F401
from ...check import gradcheck  # noqa: F401
from ...grad_mode import enable_grad, grad_enabled, inference_mode, no_grad  # noqa: F401
from ...methods import autograd_grad
from ...tensor import Tensor
from ...torch_names import module_getattr
from . import functional  # noqa: F401
from .function import Function, FunctionCtx, once_differentiable  # noqa: F401

set_grad_enabled = grad_enabled


def grad(
    outputs: Any, inputs: Any, grad_outputs: Any = None, retain_graph: Optional[bool] = None,
    create_graph: bool = False, only_inputs: bool = True, allow_unused: Optional[bool] = None,
    is_grads_batched: bool = False, materialize_grads: bool = False,
) -> tuple:  # fmt: skip
    """As ``torch.autograd.grad``: a tuple with one gradient per input."""
    if is_grads_batched:
        raise NotImplementedError("autograd.grad(is_grads_batched=True) is not supported; loop over the batch")
    out = autograd_grad(
        outputs, inputs, grad_outputs=grad_outputs, retain_graph=retain_graph, create_graph=create_graph,
        allow_unused=bool(allow_unused) or materialize_grads,
    )  # fmt: skip
    if materialize_grads:
        ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        out = tuple(g if g is not None else x.detach() * 0 for g, x in zip(out, ins))
    return out


def backward(
    tensors: Any, grad_tensors: Any = None, retain_graph: Optional[bool] = None, create_graph: bool = False,
    inputs: Optional[Sequence[Tensor]] = None,
) -> None:  # fmt: skip
    """``torch.autograd.backward``: ``backward()`` on each tensor with its gradient (accumulated into ``.grad``)."""
    ts = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    gs = (
        [None] * len(ts)
        if grad_tensors is None
        else ([grad_tensors] if isinstance(grad_tensors, Tensor) else list(grad_tensors))
    )
    if len(gs) != len(ts):
        raise ValueError(f"autograd.backward: got {len(ts)} tensors but {len(gs)} grad_tensors")
    for i, (t, g) in enumerate(zip(ts, gs)):
        keep = retain_graph if i == len(ts) - 1 else True
        kwargs: dict[str, Any] = {"retain_graph": keep, "create_graph": create_graph}
        if inputs is not None:
            kwargs["inputs"] = inputs
        t.backward(g, **kwargs)


class _VariableMeta(type):
    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, Tensor)


class Variable(metaclass=_VariableMeta):
    """``torch.autograd.Variable`` (deprecated in torch, kept by old tutorials): ``Variable(t)`` is ``t`` detached
    (the same memory) with ``requires_grad`` as given; every tensor is an instance."""

    def __new__(cls, data: Any, requires_grad: bool = False, volatile: bool = False) -> Tensor:  # type: ignore[misc]  # noqa: ARG003
        if not isinstance(data, Tensor):
            raise TypeError(f"Variable data has to be a tensor, but got {type(data).__name__}")
        out = data.detach()
        if requires_grad:
            out.requires_grad_(True)
        return out


__getattr__ = module_getattr("torch.autograd")
