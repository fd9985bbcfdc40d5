"""Convolution and pooling layers: ``Conv2d``, ``MaxPool2d``, ``AvgPool2d``, ``Unfold``, ``Fold``.

Layouts are torch's: images ``(N, C, H, W)``, weights ``(out_channels,
in_channels / groups, kh, kw)``.  Weights start as in :class:`~chainrule.nn.Linear`:
Kaiming (He) uniform for the ReLU that usually follows, fans counted over the
kernel (``fan_in = in_channels / groups · kh · kw``), and a zero bias.  (torch's
default is a uniform bound of ``1/sqrt(fan_in)`` for both; pass ``init="xavier"``
or set the weights yourself to match another scheme.)
"""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np

from ..tensor import Tensor
from . import functional as F
from . import init as _init
from .module import Module

IntPair = Union[int, tuple[int, int]]


def _positive(n: Any, name: str, layer: str) -> int:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{layer}: {name} must be a positive integer, got {n!r}")
    return int(n)


class Conv2d(Module):
    """2-D convolution (cross-correlation) over ``(N, C, H, W)`` input: see :func:`chainrule.nn.functional.conv2d`.

    ``padding`` is an int, a pair, ``"valid"`` or ``"same"`` (stride 1 only);
    ``padding_mode`` must be ``"zeros"``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: Union[IntPair, str] = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        *,
        init: str = "kaiming",
        nonlinearity: str = "relu",
        rng: Any = None,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        self.in_channels = _positive(in_channels, "in_channels", "Conv2d")
        self.out_channels = _positive(out_channels, "out_channels", "Conv2d")
        self.groups = _positive(groups, "groups", "Conv2d")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"Conv2d: in_channels ({in_channels}) and out_channels ({out_channels}) must both divide by "
                f"groups ({groups})"
            )
        if padding_mode != "zeros":
            raise NotImplementedError(f"Conv2d: padding_mode={padding_mode!r} is not supported; only 'zeros'")
        self.kernel_size = F._pair(kernel_size, "kernel_size", "Conv2d")
        self.stride = F._pair(stride, "stride", "Conv2d")
        self.dilation = F._pair(dilation, "dilation", "Conv2d")
        self.padding = padding if isinstance(padding, str) else F._pair(padding, "padding", "Conv2d", 0)
        F._conv_padding(self.padding, self.kernel_size, self.dilation, self.stride)  # reject bad 'same' now
        self.padding_mode = padding_mode
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"Conv2d: parameters need a floating-point dtype, got {dtype}")
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = Tensor(np.zeros(shape, dtype), True)
        _init.init_weight(self.weight, init, nonlinearity, _init.get_rng(rng))
        self.bias = Tensor(np.zeros(self.out_channels, dtype), True) if bias else None

    def forward(self, x: Any) -> Tensor:
        x = F._t(x)
        if x.ndim in (3, 4) and x.shape[-3] != self.in_channels:
            raise ValueError(
                f"Conv2d({self.in_channels}, {self.out_channels}): input of shape {x.shape} must have "
                f"{self.in_channels} channels in dimension {x.ndim - 3}"
            )
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding not in ((0, 0), "valid"):
            text += f", padding={self.padding!r}" if isinstance(self.padding, str) else f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text


class MaxPool2d(Module):
    """The largest value of each window; the gradient goes to the first maximum, as in torch."""

    def __init__(
        self,
        kernel_size: IntPair,
        stride: Optional[IntPair] = None,
        padding: IntPair = 0,
        dilation: IntPair = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        F._pool_args("MaxPool2d", kernel_size, stride, padding, dilation, ceil_mode)  # validate now
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, x: Any) -> Any:
        return F.max_pool2d(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode, self.return_indices
        )

    def extra_repr(self) -> str:
        stride = self.kernel_size if self.stride is None else self.stride
        return f"kernel_size={self.kernel_size}, stride={stride}, padding={self.padding}, dilation={self.dilation}"


class AvgPool2d(Module):
    def __init__(
        self,
        kernel_size: IntPair,
        stride: Optional[IntPair] = None,
        padding: IntPair = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: Optional[int] = None,
    ) -> None:
        super().__init__()
        F._pool_args("AvgPool2d", kernel_size, stride, padding, 1, ceil_mode)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad, self.divisor_override = ceil_mode, count_include_pad, divisor_override

    def forward(self, x: Any) -> Tensor:
        return F.avg_pool2d(
            x,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )

    def extra_repr(self) -> str:
        stride = self.kernel_size if self.stride is None else self.stride
        return f"kernel_size={self.kernel_size}, stride={stride}, padding={self.padding}"


class Unfold(Module):
    """im2col as a module: :func:`chainrule.nn.functional.unfold`."""

    def __init__(self, kernel_size: IntPair, dilation: IntPair = 1, padding: IntPair = 0, stride: IntPair = 1) -> None:
        super().__init__()
        self.kernel_size, self.dilation, self.padding, self.stride = kernel_size, dilation, padding, stride

    def forward(self, x: Any) -> Tensor:
        return F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)


class Fold(Module):
    """col2im as a module: :func:`chainrule.nn.functional.fold`."""

    def __init__(
        self,
        output_size: IntPair,
        kernel_size: IntPair,
        dilation: IntPair = 1,
        padding: IntPair = 0,
        stride: IntPair = 1,
    ) -> None:
        super().__init__()
        self.output_size = output_size
        self.kernel_size, self.dilation, self.padding, self.stride = kernel_size, dilation, padding, stride

    def forward(self, x: Any) -> Tensor:
        return F.fold(x, self.output_size, self.kernel_size, self.dilation, self.padding, self.stride)
