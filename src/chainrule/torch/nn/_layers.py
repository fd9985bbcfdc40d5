"""The layers with torch's default initialisation and torch's constructor signatures (``device=``,
``dtype=`` defaulting to the facade's float dtype).  Each is chainrule's layer, re-initialised by
``reset_parameters()`` with torch's formulas; the draws come from :mod:`chainrule.torch._random`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ... import nn as _nn
from .._core import _float, check_device
from . import init
from ._dropout import dropout

# chainrule's layers draw their own initialisation first; a private generator takes those draws, so
# building a chainrule.torch layer leaves chainrule's default generator (cr.manual_seed) untouched
_SCRATCH = np.random.default_rng(0)


def _bias_bound(weight: Any) -> float:
    fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
    return 1 / math.sqrt(fan_in) if fan_in > 0 else 0


class Linear(_nn.Linear):
    """torch.nn.Linear: weight from kaiming_uniform_(a=√5), bias from U(±1/√fan_in)."""

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, device: Any = None, dtype: Any = None
    ) -> None:
        check_device(device, "Linear")
        super().__init__(in_features, out_features, bias, rng=_SCRATCH, dtype=_float(dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = _bias_bound(self.weight)
            init.uniform_(self.bias, -bound, bound)


class Conv2d(_nn.Conv2d):
    """torch.nn.Conv2d: the same initialisation as Linear (fan_in = in_channels/groups * kh * kw)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        check_device(device, "Conv2d")
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
            rng=_SCRATCH, dtype=_float(dtype),
        )  # fmt: skip
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = _bias_bound(self.weight)
            init.uniform_(self.bias, -bound, bound)


class Embedding(_nn.Embedding):
    """torch.nn.Embedding: weight from N(0, 1), the padding row zero."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: Any = None,
        max_norm: Any = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        _weight: Any = None,
        _freeze: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        check_device(device, "Embedding")
        super().__init__(
            num_embeddings, embedding_dim, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse, _weight,
            rng=_SCRATCH, dtype=_float(dtype),
        )  # fmt: skip
        if _weight is None:
            self.reset_parameters()
        if _freeze:
            self.weight.requires_grad_(False)

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight._data[self.padding_idx] = 0


class LayerNorm(_nn.LayerNorm):
    def __init__(
        self, normalized_shape: Any, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
        device: Any = None, dtype: Any = None,
    ) -> None:  # fmt: skip
        check_device(device, "LayerNorm")
        super().__init__(normalized_shape, eps, elementwise_affine, bias, dtype=_float(dtype))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", bias={self.bias is not None}"


class BatchNorm1d(_nn.BatchNorm1d):
    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: Any = 0.1, affine: bool = True,
        track_running_stats: bool = True, device: Any = None, dtype: Any = None, *, bias: bool = True,
    ) -> None:  # fmt: skip
        check_device(device, "BatchNorm1d")
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype=_float(dtype))
        if not bias:
            self.bias = None

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm2d(_nn.BatchNorm2d):
    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: Any = 0.1, affine: bool = True,
        track_running_stats: bool = True, device: Any = None, dtype: Any = None, *, bias: bool = True,
    ) -> None:  # fmt: skip
        check_device(device, "BatchNorm2d")
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype=_float(dtype))
        if not bias:
            self.bias = None

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}"
        )


class Dropout(_nn.Dropout):
    """torch.nn.Dropout: in training, torch's mask from the default generator (``torch.manual_seed``)."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__(p)
        self.inplace = bool(inplace)

    def forward(self, x: Any) -> Any:
        return dropout(x, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
