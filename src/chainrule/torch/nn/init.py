"""``torch.nn.init`` with torch's formulas (fans, gains, ``a=`` of kaiming, trunc_normal_'s inverse-CDF draw,
orthogonal_'s QR).  Random draws come from :mod:`chainrule.torch._random` (torch's streams when present)."""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from ... import torch_random_init as _ti
from ...grad_mode import no_grad
from ...tensor import Tensor
from ...torch_names import module_getattr
from ...versions import mark_modified
from .. import _random


def calculate_gain(nonlinearity: str, param: Optional[float] = None) -> float:
    """torch's recommended gains (``leaky_relu`` takes its slope as ``param``, default 0.01)."""
    linear = (
        "linear",
        "conv1d",
        "conv2d",
        "conv3d",
        "conv_transpose1d",
        "conv_transpose2d",
        "conv_transpose3d",
        "sigmoid",
    )
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"calculate_gain: negative_slope {slope!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    if tensor.ndim < 2:
        raise ValueError(
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions "
            f"(shape {tuple(tensor.shape)})"
        )
    receptive = math.prod(tensor.shape[2:]) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor: Tensor, mode: str) -> int:
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _set(tensor: Tensor, values: Any) -> Tensor:
    d = tensor._data
    if type(d) is float:
        tensor._data = float(values)
    else:
        d[...] = values
    mark_modified(tensor)
    return tensor


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator: Any = None) -> Tensor:
    with no_grad():
        return _random.uniform_(tensor, a, b, generator)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator: Any = None) -> Tensor:
    with no_grad():
        return _random.normal_(tensor, mean, std, generator)


def constant_(tensor: Tensor, val: float) -> Tensor:
    return _set(tensor, val)


def ones_(tensor: Tensor) -> Tensor:
    return _set(tensor, 1)


def zeros_(tensor: Tensor) -> Tensor:
    return _set(tensor, 0)


def eye_(tensor: Tensor) -> Tensor:
    if tensor.ndim != 2:
        raise ValueError(f"eye_: only 2-D tensors are supported, got shape {tuple(tensor.shape)}")
    return _set(tensor, np.eye(*tensor.shape))


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    nd = tensor.ndim
    if nd not in (3, 4, 5):
        raise ValueError(f"dirac_: only 3, 4 or 5-D tensors are supported, got shape {tuple(tensor.shape)}")
    out_per = tensor.shape[0] // groups
    values = np.zeros(tensor.shape)
    centre = tuple(s // 2 for s in tensor.shape[2:])
    for g in range(groups):
        for d in range(min(out_per, tensor.shape[1])):
            values[(g * out_per + d, d) + centre] = 1
    return _set(tensor, values)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator: Any = None) -> Tensor:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    a = math.sqrt(3.0) * std
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator: Any = None) -> Tensor:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def kaiming_uniform_(
    tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator: Any = None
) -> Tensor:
    """torch's defaults: ``a=0``, ``mode='fan_in'``, ``nonlinearity='leaky_relu'`` (gain √(2/(1+a²)))."""
    if 0 in tensor.shape:
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator: Any = None
) -> Tensor:
    if 0 in tensor.shape:
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std, generator)


def trunc_normal_(
    tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0, generator: Any = None
) -> Tensor:
    """N(mean, std²) cut to ``[a, b]``, drawn as torch 2.13 draws it (normals redrawn where they fall outside)."""
    with no_grad():
        values = _ti.trunc_normal_(
            tuple(tensor.shape), mean, std, a, b, generator=_random._gen(generator, "trunc_normal_"),
            dtype=tensor.dtype,
        )  # fmt: skip
        return _set(tensor, values)


def orthogonal_(tensor: Tensor, gain: float = 1.0, generator: Any = None) -> Tensor:
    """A (semi-)orthogonal matrix from the QR factorisation of a normal draw, signs fixed as torch does."""
    if tensor.ndim < 2:
        raise ValueError(
            f"orthogonal_: only tensors with 2 or more dimensions are supported, got {tuple(tensor.shape)}"
        )
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    flat = Tensor(np.zeros((rows, cols), tensor.dtype))
    normal_(flat, 0.0, 1.0, generator)
    m = np.asarray(flat._data, np.float64)
    if rows < cols:
        m = m.T
    q, r = np.linalg.qr(m)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _set(tensor, (q * gain).reshape(tensor.shape))


def sparse_(tensor: Tensor, sparsity: float, std: float = 0.01, generator: Any = None) -> Tensor:
    """N(0, std²) with ``ceil(sparsity * rows)`` zeros per column, placed by ``randperm`` as torch does."""
    with no_grad():
        values = _ti.sparse_(
            tuple(tensor.shape), sparsity, std, generator=_random._gen(generator, "sparse_"), dtype=tensor.dtype
        )
        return _set(tensor, values)


# torch's old names without the underscore are deprecated aliases
__getattr__ = module_getattr("torch.nn.init")
