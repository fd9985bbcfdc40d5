"""``torch.nn.utils.rnn``: ``pad_sequence`` (stack sequences of different lengths, padded) and
``unpad_sequence``; packed sequences are refused with the padded way named."""

from __future__ import annotations

from typing import Any

import numpy as np

from .... import ops
from ....tensor import Tensor
from ....torch_names import module_getattr


def pad_sequence(
    sequences: Any, batch_first: bool = False, padding_value: float = 0.0, padding_side: str = "right"
) -> Tensor:
    """``(L_max, B, *)`` (or ``(B, L_max, *)`` with ``batch_first``) from tensors of shape ``(L_i, *)``."""
    seqs = [s if isinstance(s, Tensor) else Tensor(np.asarray(s)) for s in sequences]
    if not seqs:
        raise RuntimeError("pad_sequence: received an empty list of sequences")
    if padding_side not in ("left", "right"):
        raise ValueError(f"pad_sequence: padding_side must be 'left' or 'right', got {padding_side!r}")
    longest = max(s.shape[0] for s in seqs)
    rows = []
    for s in seqs:
        gap = longest - s.shape[0]
        if gap:
            fill = Tensor(np.full((gap,) + tuple(s.shape[1:]), padding_value, s.dtype))
            s = ops.cat([s, fill] if padding_side == "right" else [fill, s], dim=0)
        rows.append(s)
    out = ops.stack(rows, 0)
    return out if batch_first else out.transpose(0, 1)


def unpad_sequence(padded_sequences: Tensor, lengths: Any, batch_first: bool = False) -> list[Tensor]:
    x = padded_sequences if batch_first else padded_sequences.transpose(0, 1)
    lens = np.asarray(lengths.data if isinstance(lengths, Tensor) else lengths).tolist()
    return [x[i, : int(n)] for i, n in enumerate(lens)]


def _packed(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError(
        "packed sequences (pack_padded_sequence / pad_packed_sequence / PackedSequence) are not supported in "
        "chainrule.torch; run the RNN on the padded batch from pad_sequence and mask the padded steps"
    )


pack_padded_sequence = pad_packed_sequence = pack_sequence = _packed

__getattr__ = module_getattr("torch.nn.utils.rnn")
