"""``nn.MultiheadAttention``, ``nn.TransformerEncoderLayer`` and ``nn.TransformerEncoder`` as torch defines
them (parameter names, initialisation order, masks, ``batch_first``, ``norm_first``), composed from
chainrule's operations."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any, Optional

import numpy as np

from ... import ops
from ...nn import functional as _F
from ...nn.containers import ModuleList
from ...nn.module import Module
from ...tensor import Tensor
from .._core import _float, check_device
from . import init
from ._dropout import dropout as _dropout
from ._layers import Dropout, LayerNorm, Linear


class NonDynamicallyQuantizableLinear(Linear):
    """torch's name for MultiheadAttention's output projection (a Linear)."""


def _bool_or_float_mask(mask: Any, dtype: Any) -> Optional[np.ndarray]:
    if mask is None:
        return None
    m = np.asarray(mask._data if isinstance(mask, Tensor) else mask)
    if m.dtype == np.bool_:
        return np.where(m, -np.inf, 0.0).astype(dtype)
    return m.astype(dtype)


class MultiheadAttention(Module):
    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: Optional[int] = None,
        vdim: Optional[int] = None,
        batch_first: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        check_device(device, "MultiheadAttention")
        if add_bias_kv or add_zero_attn or (kdim not in (None, embed_dim)) or (vdim not in (None, embed_dim)):
            raise NotImplementedError(
                "MultiheadAttention: add_bias_kv, add_zero_attn and kdim/vdim different from embed_dim are not "
                "supported in chainrule.torch"
            )
        if embed_dim % num_heads:
            raise AssertionError("embed_dim must be divisible by num_heads")
        self.embed_dim, self.num_heads, self.dropout = int(embed_dim), int(num_heads), float(dropout)
        self.batch_first, self.head_dim = bool(batch_first), self.embed_dim // self.num_heads
        self.kdim = self.vdim = self.embed_dim
        self._qkv_same_embed_dim = True
        dt = _float(dtype)
        self.in_proj_weight = Tensor(np.zeros((3 * self.embed_dim, self.embed_dim), dt), True)
        self.in_proj_bias = Tensor(np.zeros(3 * self.embed_dim, dt), True) if bias else None
        self.out_proj = NonDynamicallyQuantizableLinear(self.embed_dim, self.embed_dim, bias=bias, dtype=dt)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)

    def forward(
        self,
        query: Any,
        key: Any,
        value: Any,
        key_padding_mask: Any = None,
        need_weights: bool = True,
        attn_mask: Any = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple:
        q, k, v = (x if isinstance(x, Tensor) else Tensor(np.asarray(x)) for x in (query, key, value))
        batched = q.ndim == 3
        if not batched:
            q, k, v = q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)
        elif self.batch_first:
            q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
        tgt, n, e = q.shape
        src = k.shape[0]
        h, d = self.num_heads, self.head_dim
        w = self.in_proj_weight
        b = self.in_proj_bias
        wq, wk, wv = w[:e], w[e : 2 * e], w[2 * e :]
        bq, bk, bv = (b[:e], b[e : 2 * e], b[2 * e :]) if b is not None else (None, None, None)
        qp = _F.linear(q, wq, bq)
        kp = _F.linear(k, wk, bk)
        vp = _F.linear(v, wv, bv)

        def heads(x: Tensor, length: int) -> Tensor:  # (L, N, E) -> (N, h, L, d)
            return x.reshape(length, n, h, d).permute(1, 2, 0, 3)

        qh, kh, vh = heads(qp, tgt), heads(kp, src), heads(vp, src)
        scores = ops.matmul(qh * math.sqrt(1.0 / d), kh.transpose(-2, -1))  # (N, h, L, S)
        if is_causal and attn_mask is None:
            attn_mask = np.triu(np.ones((tgt, src), bool), 1)
        mask = _bool_or_float_mask(attn_mask, scores.dtype)
        if mask is not None:
            if mask.ndim == 3:  # (N * h, L, S)
                mask = mask.reshape(n, h, tgt, src)
            scores = scores + mask
        pad = _bool_or_float_mask(key_padding_mask, scores.dtype)
        if pad is not None:
            pad = pad.reshape(n if batched else 1, 1, 1, src)
            scores = scores + pad
        weights = _F.softmax(scores, dim=-1)
        if self.dropout and self.training:
            weights = _dropout(weights, self.dropout, True)
        out = ops.matmul(weights, vh)  # (N, h, L, d)
        out = out.permute(2, 0, 1, 3).reshape(tgt, n, e)
        out = self.out_proj(out)
        if not batched:
            out = out.squeeze(1)
        elif self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(dim=1)
        if not batched:
            weights = weights.squeeze(0)
        return out, weights


def _activation(activation: Any) -> Callable:
    if callable(activation):
        return activation
    if activation == "relu":
        return _F.relu
    if activation == "gelu":
        return _F.gelu
    raise RuntimeError(f"activation should be relu/gelu, not {activation}")


class TransformerEncoderLayer(Module):
    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: Any = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(
            d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first, device=device, dtype=dtype
        )
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, device=device, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, device=device, dtype=dtype)
        self.norm_first = bool(norm_first)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = _activation(activation)
        self.batch_first = batch_first

    def _sa(self, x: Tensor, mask: Any, pad: Any, is_causal: bool) -> Tensor:
        out = self.self_attn(x, x, x, attn_mask=mask, key_padding_mask=pad, need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(out)

    def _ff(self, x: Tensor) -> Tensor:
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def forward(
        self, src: Any, src_mask: Any = None, src_key_padding_mask: Any = None, is_causal: bool = False
    ) -> Tensor:
        x = src
        if self.norm_first:
            x = x + self._sa(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._ff(self.norm2(x))
        x = self.norm1(x + self._sa(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._ff(x))


class TransformerEncoder(Module):
    def __init__(
        self,
        encoder_layer: Module,
        num_layers: int,
        norm: Optional[Module] = None,
        enable_nested_tensor: bool = True,
        mask_check: bool = True,
    ) -> None:
        super().__init__()
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(
        self, src: Any, mask: Any = None, src_key_padding_mask: Any = None, is_causal: Optional[bool] = None
    ) -> Tensor:
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal))
        return self.norm(x) if self.norm is not None else x
