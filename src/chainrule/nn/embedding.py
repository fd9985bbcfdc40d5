"""``Embedding``: a lookup table of learned vectors, indexed by integers."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..tensor import Tensor
from . import functional as F
from . import init as _init
from .module import Module


class Embedding(Module):
    """``weight`` of shape ``(num_embeddings, embedding_dim)``, drawn from ``N(0, 1)`` as in torch.

    ``layer(indices)`` returns ``weight[indices]``; the row ``padding_idx``
    starts at zero and receives no gradient.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: Optional[int] = None,
        max_norm: Optional[float] = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        _weight: Any = None,
        *,
        rng: Any = None,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        for name, n in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
                raise ValueError(f"Embedding: {name} must be a positive integer, got {n!r}")
        if max_norm is not None or scale_grad_by_freq or sparse:
            F.embedding(np.zeros(0, np.int64), np.zeros((1, 1)), None, max_norm, norm_type, scale_grad_by_freq, sparse)
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(
                    f"Embedding: padding_idx {padding_idx} must lie in [-{num_embeddings}, {num_embeddings})"
                )
            padding_idx = int(padding_idx) % int(num_embeddings)
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.padding_idx = padding_idx
        dtype = np.dtype(dtype)
        if _weight is not None:
            w = np.array(_weight.data if isinstance(_weight, Tensor) else _weight, dtype=dtype)
            if w.shape != (self.num_embeddings, self.embedding_dim):
                raise ValueError(f"Embedding: _weight must have shape {(num_embeddings, embedding_dim)}, got {w.shape}")
        else:
            w = _init.get_rng(rng).standard_normal((self.num_embeddings, self.embedding_dim)).astype(dtype)
            if padding_idx is not None:
                w[padding_idx] = 0
        self.weight = Tensor(w, True)

    def forward(self, indices: Any) -> Tensor:
        return F.embedding(indices, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"

    @classmethod
    def from_pretrained(
        cls, embeddings: Any, freeze: bool = True, padding_idx: Optional[int] = None, **kwargs: Any
    ) -> Embedding:
        w = np.asarray(embeddings.data if isinstance(embeddings, Tensor) else embeddings)
        if w.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-D, got shape {w.shape}")
        layer = cls(w.shape[0], w.shape[1], padding_idx, _weight=w, dtype=w.dtype, **kwargs)
        if freeze:  # a frozen table is state, not a parameter: saved under "weight", never handed to an optimizer
            frozen = Tensor(layer.weight._data)
            del layer.weight
            layer.register_buffer("weight", frozen)
        return layer
