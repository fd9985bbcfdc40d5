"""``nn.RNN``, ``nn.LSTM``, ``nn.GRU`` and their cells, as torch defines them (parameter names, gate order,
shapes, ``batch_first``, ``bidirectional``, stacked layers), each step composed from chainrule's operations.
Every parameter starts from U(-1/√hidden_size, 1/√hidden_size), drawn in torch's order."""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from ... import ops
from ...nn.module import Module
from ...tensor import Tensor
from .._core import _float, check_device
from . import init
from ._dropout import dropout as _dropout

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _param(shape: tuple, dtype: np.dtype) -> Tensor:
    return Tensor(np.zeros(shape, dtype), True)


def _linear(x: Tensor, w: Tensor, b: Optional[Tensor]) -> Tensor:
    y = ops.matmul(x, w.T)
    return y if b is None else y + b


def _cell_step(mode: str, x: Tensor, state: Any, w_ih: Tensor, w_hh: Tensor, b_ih: Any, b_hh: Any) -> Any:
    if mode == "LSTM":
        h, c = state
        gates = _linear(x, w_ih, b_ih) + _linear(h, w_hh, b_hh)
        i, f, g, o = ops.chunk(gates, 4, dim=-1)
        i, f, g, o = ops.sigmoid(i), ops.sigmoid(f), ops.tanh(g), ops.sigmoid(o)
        c = f * c + i * g
        return o * ops.tanh(c), c
    if mode == "GRU":
        h = state
        xr, xz, xn = ops.chunk(_linear(x, w_ih, b_ih), 3, dim=-1)
        hr, hz, hn = ops.chunk(_linear(h, w_hh, b_hh), 3, dim=-1)
        r = ops.sigmoid(xr + hr)
        z = ops.sigmoid(xz + hz)
        n = ops.tanh(xn + r * hn)
        return (1 - z) * n + z * h
    pre = _linear(x, w_ih, b_ih) + _linear(state, w_hh, b_hh)
    return ops.tanh(pre) if mode == "RNN_TANH" else ops.relu(pre)


class RNNBase(Module):
    """The shared machinery; use :class:`RNN`, :class:`LSTM` or :class:`GRU`."""

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        check_device(device, type(self).__name__)
        if proj_size:
            raise NotImplementedError(f"{type(self).__name__}(proj_size=...) is not supported in chainrule.torch")
        if not 0 <= dropout <= 1:
            raise ValueError(f"{type(self).__name__}: dropout must lie in [0, 1], got {dropout}")
        for name, n in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive integer, got {n!r}")
        self.mode, self.input_size, self.hidden_size = mode, int(input_size), int(hidden_size)
        self.num_layers, self.bias, self.batch_first = int(num_layers), bool(bias), bool(batch_first)
        self.dropout, self.bidirectional, self.proj_size = float(dropout), bool(bidirectional), 0
        dt = _float(dtype)
        gates = _GATES[mode] * self.hidden_size
        dirs = 2 if bidirectional else 1
        self._names: list[list[str]] = []
        for layer in range(self.num_layers):
            n_in = self.input_size if layer == 0 else self.hidden_size * dirs
            for d in range(dirs):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                names = [f"weight_ih{sfx}", f"weight_hh{sfx}"]
                setattr(self, names[0], _param((gates, n_in), dt))
                setattr(self, names[1], _param((gates, self.hidden_size), dt))
                if bias:
                    names += [f"bias_ih{sfx}", f"bias_hh{sfx}"]
                    setattr(self, names[2], _param((gates,), dt))
                    setattr(self, names[3], _param((gates,), dt))
                self._names.append(names)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for p in self.parameters():
            init.uniform_(p, -stdv, stdv)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s

    def _weights(self, k: int) -> tuple:
        names = self._names[k]
        w = [getattr(self, n) for n in names]
        return (w[0], w[1], w[2], w[3]) if self.bias else (w[0], w[1], None, None)

    def forward(self, input: Any, hx: Any = None) -> tuple:  # noqa: A002
        x = input if isinstance(input, Tensor) else Tensor(np.asarray(input))
        batched = x.ndim == 3
        if x.ndim not in (2, 3):
            raise ValueError(f"{type(self).__name__}: expected a 2-D (unbatched) or 3-D input, got shape {x.shape}")
        if not batched:
            x = x.unsqueeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        steps, n = x.shape[0], x.shape[1]
        if x.shape[2] != self.input_size:
            raise ValueError(f"{type(self).__name__}: input has {x.shape[2]} features, expected {self.input_size}")
        dirs = 2 if self.bidirectional else 1
        lstm = self.mode == "LSTM"
        h0, c0 = self._initial(hx, n, dirs, batched, x.dtype)
        h_n, c_n = [], []
        layer_in = x
        for layer in range(self.num_layers):
            outs = []
            for d in range(dirs):
                k = layer * dirs + d
                state: Any = (h0[k], c0[k]) if lstm else h0[k]
                seq = []
                order = range(steps - 1, -1, -1) if d else range(steps)
                for t in order:
                    state = _cell_step(self.mode, layer_in[t], state, *self._weights(k))
                    seq.append(state[0] if lstm else state)
                if d:
                    seq.reverse()
                outs.append(ops.stack(seq, 0))
                h_n.append(state[0] if lstm else state)
                if lstm:
                    c_n.append(state[1])
            layer_in = outs[0] if dirs == 1 else ops.cat(outs, dim=2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_in = _dropout(layer_in, self.dropout, True)
        out = layer_in
        hn = ops.stack(h_n, 0)
        cn = ops.stack(c_n, 0) if lstm else None
        if not batched:
            out, hn = out.squeeze(1), hn.squeeze(1)
            cn = cn.squeeze(1) if lstm else None
        elif self.batch_first:
            out = out.transpose(0, 1)
        return (out, (hn, cn)) if lstm else (out, hn)

    def _initial(self, hx: Any, n: int, dirs: int, batched: bool, dtype: Any) -> tuple:
        shape = (self.num_layers * dirs, n, self.hidden_size)
        zeros = Tensor(np.zeros(shape, dtype))
        if hx is None:
            return zeros, zeros
        h, c = hx if self.mode == "LSTM" else (hx, None)
        if not batched:
            h = h.unsqueeze(1)
            c = c.unsqueeze(1) if c is not None else None
        if tuple(h.shape) != shape:
            raise ValueError(f"{type(self).__name__}: expected hidden state of shape {shape}, got {tuple(h.shape)}")
        return h, (c if c is not None else zeros)


class RNN(RNNBase):
    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: unknown nonlinearity {nonlinearity!r}; choose 'tanh' or 'relu'")
        super().__init__(
            "RNN_" + nonlinearity.upper(),
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            0,
            device,
            dtype,
        )
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            "LSTM",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            device,
            dtype,
        )


class GRU(RNNBase):
    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            "GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0, device, dtype
        )


class _CellBase(Module):
    mode = "RNN_TANH"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        _mode: Optional[str] = None,
    ) -> None:
        super().__init__()
        check_device(device, type(self).__name__)
        if _mode is not None:
            self.mode = _mode
        self.input_size, self.hidden_size, self.bias = int(input_size), int(hidden_size), bool(bias)
        dt = _float(dtype)
        gates = _GATES[self.mode] * self.hidden_size
        self.weight_ih = _param((gates, self.input_size), dt)
        self.weight_hh = _param((gates, self.hidden_size), dt)
        self.bias_ih = _param((gates,), dt) if bias else None
        self.bias_hh = _param((gates,), dt) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for p in self.parameters():
            init.uniform_(p, -stdv, stdv)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")
        nonlinearity = self.__dict__.get("nonlinearity", "tanh")
        return s + (f", nonlinearity={nonlinearity}" if nonlinearity != "tanh" else "")

    def forward(self, input: Any, hx: Any = None) -> Any:  # noqa: A002
        x = input if isinstance(input, Tensor) else Tensor(np.asarray(input))
        batched = x.ndim == 2
        if not batched:
            x = x.unsqueeze(0)
        zeros = Tensor(np.zeros((x.shape[0], self.hidden_size), x.dtype))
        if hx is None:
            state: Any = (zeros, zeros) if self.mode == "LSTM" else zeros
        elif self.mode == "LSTM":
            state = tuple(s if batched else s.unsqueeze(0) for s in hx)
        else:
            state = hx if batched else hx.unsqueeze(0)
        out = _cell_step(self.mode, x, state, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        if batched:
            return out
        return tuple(o.squeeze(0) for o in out) if self.mode == "LSTM" else out.squeeze(0)


class RNNCell(_CellBase):
    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: unknown nonlinearity {nonlinearity!r}; choose 'tanh' or 'relu'")
        super().__init__(input_size, hidden_size, bias, device, dtype, _mode="RNN_" + nonlinearity.upper())
        self.nonlinearity = nonlinearity


class LSTMCell(_CellBase):
    mode = "LSTM"


class GRUCell(_CellBase):
    mode = "GRU"
