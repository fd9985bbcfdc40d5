"""Layers: Linear, MLP, activations, Dropout, LayerNorm (names and layouts as in ``torch.nn``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import numpy as np

from .. import ops
from ..ops import linear as _linear
from ..tensor import Tensor
from . import init
from .module import Module, Sequential


class Identity(Module):
    def forward(self, x: Any) -> Any:
        return x


class ReLU(Module):
    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = bool(inplace)

    def forward(self, x: Any) -> Tensor:
        if self.inplace:
            from .functional import relu

            return relu(x, inplace=True)
        return ops.relu(x)


class Tanh(Module):
    def forward(self, x: Any) -> Tensor:
        return ops.tanh(x)


class Sigmoid(Module):
    def forward(self, x: Any) -> Tensor:
        return ops.sigmoid(x)


_init = init  # the module, under a name that Linear's ``init=`` argument does not shadow

ACTIVATIONS: dict[str, type[Module]] = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "identity": Identity}


def _check_dtype(dtype: Any, layer: str) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"{layer}: parameters need a floating-point dtype, got {dtype}")
    return dtype


class Linear(Module):
    """``y = x @ weight.T + bias`` with ``weight`` of shape ``(out_features, in_features)``.

    ``init`` picks the weight initialization: ``"kaiming"`` (He uniform, for the
    ``nonlinearity`` that follows; the default) or ``"xavier"`` (Glorot uniform).
    The bias starts at zero.  ``rng`` is a Generator or seed (default: the
    generator :func:`chainrule.nn.manual_seed` resets).  Parameters are float32
    unless ``dtype`` says otherwise.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        init: str = "kaiming",
        nonlinearity: str = "relu",
        rng: Any = None,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        for name, n in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
                raise ValueError(f"Linear: {name} must be a positive integer, got {n!r}")
        dtype = _check_dtype(dtype, "Linear")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.weight = Tensor(np.zeros((self.out_features, self.in_features), dtype), True)
        _init.init_weight(self.weight, init, nonlinearity, _init.get_rng(rng))
        self.bias = Tensor(np.zeros(self.out_features, dtype), True) if bias else None

    def forward(self, x: Any) -> Tensor:
        if not isinstance(x, Tensor):
            x = Tensor(np.asarray(x))
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"Linear({self.in_features}, {self.out_features}): input of shape {x.shape} must have "
                f"{self.in_features} features in its last dimension"
            )
        if self.bias is None:
            return ops.matmul(x, self.weight.T)
        # one fused primitive: x @ Wᵀ + b, with the weight gradient gᵀ x formed in W's own layout
        return _linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class MLP(Sequential):
    """A multilayer perceptron: ``Linear`` layers of ``sizes`` with ``activation`` between them.

    ``MLP([64, 128, 10])`` is ``Linear(64, 128), ReLU(), Linear(128, 10)``: no
    activation after the last layer (its outputs are logits or scores).
    ``activation`` is a name (``"relu"``, ``"tanh"``, ``"sigmoid"``) or a module
    class; weights use Xavier init for tanh and sigmoid, and Kaiming (ReLU) init
    for ReLU and for a module class chainrule does not know.
    ``dropout > 0`` adds a ``Dropout`` after each hidden activation.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: Union[str, type[Module]] = "relu",
        *,
        bias: bool = True,
        dropout: float = 0.0,
        rng: Any = None,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"MLP: sizes needs an input and an output size, got {sizes}")
        if isinstance(activation, str):
            if activation not in ACTIVATIONS:
                raise ValueError(f"MLP: unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
            name, make = activation, ACTIVATIONS[activation]
        elif isinstance(activation, type) and issubclass(activation, Module):
            make = activation
            name = {v: k for k, v in ACTIVATIONS.items()}.get(activation, "relu")
        else:
            raise TypeError(
                f"MLP: activation must be a name ({', '.join(sorted(ACTIVATIONS))}) or a Module class such as "
                f"cr.nn.Tanh, got {activation!r}"
            )
        scheme = "kaiming" if name == "relu" else "xavier"
        gen = init.get_rng(rng)
        last = len(sizes) - 2
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            self.append(
                Linear(
                    n_in, n_out, bias, init=scheme, nonlinearity=name if i < last else "linear", rng=gen, dtype=dtype
                )
            )
            if i < last:
                self.append(make())
                if dropout > 0:
                    self.append(Dropout(dropout, rng=gen))
        self.sizes = sizes


class Dropout(Module):
    """Zero each element with probability ``p`` in training mode, scaling the rest by ``1/(1-p)``."""

    def __init__(self, p: float = 0.5, *, rng: Any = None) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be a probability in [0, 1], got {p}")
        self.p = float(p)
        self.rng = init.get_rng(rng)

    def forward(self, x: Any) -> Tensor:
        if not isinstance(x, Tensor):
            x = Tensor(np.asarray(x))
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * np.zeros(x.shape, x.dtype)
        keep = self.rng.random(x.shape) >= self.p
        return x * (keep.astype(x.dtype) / np.asarray(1.0 - self.p, x.dtype))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class LayerNorm(Module):
    """Normalize over the last ``len(normalized_shape)`` dimensions, then scale and shift.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` with the biased variance,
    as ``torch.nn.LayerNorm``; ``weight`` starts at one and ``bias`` at zero.
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        *,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
        if not shape or any(int(s) < 1 for s in shape):
            raise ValueError(f"LayerNorm: normalized_shape must be positive sizes, got {normalized_shape!r}")
        dtype = _check_dtype(dtype, "LayerNorm")
        self.normalized_shape = tuple(int(s) for s in shape)
        self.eps = float(eps)
        self.elementwise_affine = elementwise_affine
        self.weight = Tensor(np.ones(self.normalized_shape, dtype), True) if elementwise_affine else None
        self.bias = Tensor(np.zeros(self.normalized_shape, dtype), True) if elementwise_affine and bias else None

    def forward(self, x: Any) -> Tensor:
        if not isinstance(x, Tensor):
            x = Tensor(np.asarray(x))
        k = len(self.normalized_shape)
        if x.shape[x.ndim - k :] != self.normalized_shape:
            raise ValueError(
                f"LayerNorm{self.normalized_shape}: input of shape {x.shape} must end with {self.normalized_shape}"
            )
        axes = tuple(range(x.ndim - k, x.ndim))
        centered = x - ops.mean(x, axes, keepdims=True)
        var = ops.mean(centered * centered, axes, keepdims=True)
        y = centered / ops.sqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
