"""torch.nn.init's random initialisers and the layers' default initialisation, with torch's exact values.

Each function takes what torch's takes, except that the tensor is given by its
shape (or any array, whose shape and dtype are used), and returns the new values
as a NumPy array; the draws come from :mod:`chainrule.torch_random`'s
generators, so after ``manual_seed(s)`` they equal torch's bit for bit.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from chainrule import torch_random as tr

__all__ = [
    "calculate_gain",
    "fan_in_and_fan_out",
    "uniform_",
    "normal_",
    "trunc_normal_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "linear_init",
    "conv_init",
    "embedding_init",
    "sparse_",
    "rnn_init",
]


def _shape_dtype(tensor: Any, dtype: Any) -> tuple[tuple[int, ...], Any]:
    if isinstance(tensor, (tuple, list)):
        return tuple(int(s) for s in tensor), dtype
    shape = tuple(int(s) for s in getattr(tensor, "shape", np.shape(tensor)))
    if dtype is None:
        dtype = getattr(tensor, "dtype", None)
    return shape, dtype


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """``torch.nn.init.calculate_gain``."""
    linear_fns = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]
    if nonlinearity in linear_fns or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope: float = 0.01
        elif not isinstance(param, bool) and isinstance(param, (int, float)):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def fan_in_and_fan_out(shape: tuple[int, ...]) -> tuple[int, int]:
    """torch's fans: ``shape[1] * receptive field`` in, ``shape[0] * receptive field`` out."""
    if len(shape) < 2:
        raise ValueError(
            f"Fan in and fan out can not be computed for tensor with fewer than 2 dimensions (shape {shape})"
        )
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def uniform_(
    tensor: Any, a: float = 0.0, b: float = 1.0, generator: tr.Generator | None = None, *, dtype: Any = None
) -> np.ndarray:
    """``torch.nn.init.uniform_``."""
    shape, dt = _shape_dtype(tensor, dtype)
    return tr.uniform_(shape, a, b, generator=generator, dtype=dt)


def normal_(
    tensor: Any, mean: float = 0.0, std: float = 1.0, generator: tr.Generator | None = None, *, dtype: Any = None
) -> np.ndarray:
    """``torch.nn.init.normal_``."""
    shape, dt = _shape_dtype(tensor, dtype)
    return tr.normal_(shape, mean, std, generator=generator, dtype=dt)


def _norm_cdf(x: float) -> float:
    return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0


def trunc_normal_(
    tensor: Any,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    generator: tr.Generator | None = None,
    *,
    dtype: Any = None,
) -> np.ndarray:
    """``torch.nn.init.trunc_normal_`` where torch redraws rejected normals (interval mass over 0.3)."""
    shape, dt = _shape_dtype(tensor, dtype)
    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn(
            "mean is more than 2 std from [a, b] in nn.init.trunc_normal_. "
            "The distribution of values may be incorrect.",
            stacklevel=2,
        )
    mass = _norm_cdf((b - mean) / std) - _norm_cdf((a - mean) / std)
    if not mass > 0.3:
        raise NotImplementedError(
            f"trunc_normal_(mean={mean}, std={std}, a={a}, b={b}): the interval holds {mass:.3g} <= 0.3 of the "
            "mass, where torch switches to uniform proposals accepted through its vectorized float log, which "
            "chainrule does not reproduce bit for bit; widen [a, b] or use normal_ and clip"
        )
    ftype = tr._float_dtype(dt, "trunc_normal_")
    lo, hi = float(ftype(a)), float(ftype(b))
    result = tr.normal_(shape, mean, std, generator=generator, dtype=ftype)
    while True:
        mask = (result < lo) | (result > hi)
        if not mask.any():
            return result
        fresh = tr.normal_(shape, mean, std, generator=generator, dtype=ftype)
        result = np.where(mask, fresh, result)


def xavier_uniform_(
    tensor: Any, gain: float = 1.0, generator: tr.Generator | None = None, *, dtype: Any = None
) -> np.ndarray:
    """``torch.nn.init.xavier_uniform_``."""
    shape, dt = _shape_dtype(tensor, dtype)
    fan_in, fan_out = fan_in_and_fan_out(shape)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    return tr.uniform_(shape, -bound, bound, generator=generator, dtype=dt)


def xavier_normal_(
    tensor: Any, gain: float = 1.0, generator: tr.Generator | None = None, *, dtype: Any = None
) -> np.ndarray:
    """``torch.nn.init.xavier_normal_``."""
    shape, dt = _shape_dtype(tensor, dtype)
    fan_in, fan_out = fan_in_and_fan_out(shape)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return tr.normal_(shape, 0.0, std, generator=generator, dtype=dt)


def _kaiming_std(shape: tuple[int, ...], a: float, mode: str, nonlinearity: str) -> float:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = fan_in_and_fan_out(shape)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(
    tensor: Any,
    a: float = 0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: tr.Generator | None = None,
    *,
    dtype: Any = None,
) -> np.ndarray:
    """``torch.nn.init.kaiming_uniform_`` (a zero-element tensor draws nothing, as in torch)."""
    shape, dt = _shape_dtype(tensor, dtype)
    if 0 in shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return np.zeros(shape, dtype=tr._float_dtype(dt, "kaiming_uniform_"))
    bound = math.sqrt(3.0) * _kaiming_std(shape, a, mode, nonlinearity)
    return tr.uniform_(shape, -bound, bound, generator=generator, dtype=dt)


def kaiming_normal_(
    tensor: Any,
    a: float = 0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: tr.Generator | None = None,
    *,
    dtype: Any = None,
) -> np.ndarray:
    """``torch.nn.init.kaiming_normal_``."""
    shape, dt = _shape_dtype(tensor, dtype)
    if 0 in shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return np.zeros(shape, dtype=tr._float_dtype(dt, "kaiming_normal_"))
    std = _kaiming_std(shape, a, mode, nonlinearity)
    return tr.normal_(shape, 0.0, std, generator=generator, dtype=dt)


def linear_init(
    in_features: int, out_features: int, bias: bool = True, *, dtype: Any = None, generator: tr.Generator | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """``nn.Linear(in, out)``'s weight (out, in) and bias, drawn in torch's order."""
    weight = kaiming_uniform_((out_features, in_features), a=math.sqrt(5), generator=generator, dtype=dtype)
    if not bias:
        return weight, None
    fan_in = in_features
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
    return weight, uniform_((out_features,), -bound, bound, generator=generator, dtype=dtype)


def conv_init(
    weight_shape: tuple[int, ...], bias: bool = True, *, dtype: Any = None, generator: tr.Generator | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """``nn.Conv*d``'s weight (out, in/groups, *kernel) and bias, drawn in torch's order."""
    shape = tuple(int(s) for s in weight_shape)
    weight = kaiming_uniform_(shape, a=math.sqrt(5), generator=generator, dtype=dtype)
    if not bias:
        return weight, None
    fan_in, _ = fan_in_and_fan_out(shape)
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
    return weight, uniform_((shape[0],), -bound, bound, generator=generator, dtype=dtype)


def embedding_init(
    num_embeddings: int, embedding_dim: int, *, dtype: Any = None, generator: tr.Generator | None = None
) -> np.ndarray:
    """``nn.Embedding``'s weight: ``normal_(0, 1)``."""
    return normal_((num_embeddings, embedding_dim), generator=generator, dtype=dtype)


def sparse_(
    tensor: Any, sparsity: float, std: float = 0.01, generator: tr.Generator | None = None, *, dtype: Any = None
) -> np.ndarray:
    """``torch.nn.init.sparse_``: ``normal_(0, std)``, then per column ``randperm(rows)`` zeros.

    As in torch, the permutations come from the default generator even when ``generator`` is given.
    """
    shape, dt = _shape_dtype(tensor, dtype)
    if len(shape) != 2:
        raise ValueError(f"Only tensors with 2 dimensions are supported (sparse_ got shape {shape})")
    rows, cols = shape
    num_zeros = math.ceil(sparsity * rows)
    out = tr.normal_(shape, 0.0, std, generator=generator, dtype=dt)
    for col in range(cols):
        out[tr.randperm(rows)[:num_zeros], col] = 0
    return out


def rnn_init(
    shapes: list[tuple[int, ...]], hidden_size: int, *, dtype: Any = None, generator: tr.Generator | None = None
) -> list[np.ndarray]:
    """``nn.RNN``/``LSTM``/``GRU`` (and their cells): every parameter, in ``parameters()`` order, drawn from
    ``uniform_(-1/sqrt(hidden_size), 1/sqrt(hidden_size))``."""
    stdv = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0
    return [tr.uniform_(tuple(shape), -stdv, stdv, generator=generator, dtype=dtype) for shape in shapes]
