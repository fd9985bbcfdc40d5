"""``cr.nn.utils``: gradient clipping and flat parameter vectors, as in ``torch.nn.utils``."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Union

import numpy as np

from ..grad_mode import no_grad
from ..numeric import DEFAULTS
from ..tensor import Tensor
from ..versions import mark_modified

Params = Union[Tensor, Iterable[Tensor]]


def _params(parameters: Params) -> list[Tensor]:
    ps = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    for p in ps:
        if not isinstance(p, Tensor):
            raise TypeError(f"expected tensors, got {type(p).__name__}")
    return ps


def _grad_array(p: Tensor) -> np.ndarray:
    g = p.grad
    if type(g._data) is not np.ndarray:  # a float64 scalar gradient: keep it an array so it scales in place
        g._data = np.array(g._data)
    return g._data


def clip_grad_norm_(
    parameters: Params,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: Any = None,
) -> Tensor:
    """Scale all gradients together so their joint ``norm_type`` norm is at most ``max_norm``.

    Returns the norm before clipping, a 0-d tensor of the gradients' dtype (as torch's; it is summed in
    float64, so a float32 result is the float64 norm rounded once).  As torch, the scale is
    ``max_norm / (norm + 1e-6)``, applied only when it is below 1, and ``norm_type`` may be ``inf``.
    """
    grads = [_grad_array(p) for p in _params(parameters) if p.grad is not None]
    norm_type = float(norm_type)
    if not grads:
        return Tensor(np.array(0.0, dtype=DEFAULTS.float))
    if math.isinf(norm_type):
        total = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
    else:
        total = float(sum(float(np.sum(np.abs(g.astype(np.float64)) ** norm_type)) for g in grads)) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is {total}; "
            "pass error_if_nonfinite=False to clip anyway"
        )
    scale = float(max_norm) / (total + 1e-6)
    if scale < 1.0:
        with no_grad():
            for p in _params(parameters):
                if p.grad is not None:
                    _grad_array(p)[...] *= scale
                    mark_modified(p.grad)
    return Tensor(np.array(total, dtype=np.result_type(*grads)))


def clip_grad_value_(parameters: Params, clip_value: float, foreach: Any = None) -> None:
    """Clamp every gradient element into ``[-clip_value, clip_value]`` in place."""
    c = float(clip_value)
    for p in _params(parameters):
        if p.grad is not None:
            g = _grad_array(p)
            np.clip(g, -c, c, out=g)
            mark_modified(p.grad)


def parameters_to_vector(parameters: Params) -> Tensor:
    """All parameters flattened and joined into one 1-D tensor (a copy, outside the graph)."""
    return Tensor(np.concatenate([np.asarray(p.data).reshape(-1) for p in _params(parameters)]))


def vector_to_parameters(vec: Any, parameters: Params) -> None:
    """Copy consecutive slices of ``vec`` into the parameters, in place."""
    v = np.asarray(vec.data if isinstance(vec, Tensor) else vec)
    ps = _params(parameters)
    need = sum(p.size for p in ps)
    if v.ndim != 1 or v.size != need:
        raise ValueError(f"vector_to_parameters: expected a 1-D vector of {need} values, got shape {v.shape}")
    at = 0
    with no_grad():
        for p in ps:
            chunk = v[at : at + p.size].reshape(p.shape)
            at += p.size
            if type(p._data) is float:
                p._data = float(chunk)
            else:
                p._data[...] = chunk
            mark_modified(p)
