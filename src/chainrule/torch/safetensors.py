"""``safetensors`` files for chainrule.torch state dicts, through the ``safetensors`` package (PyPI):
``save_file`` / ``load_file`` as in ``safetensors.torch``, so a state dict moves between chainrule.torch
and PyTorch in both directions (PyTorch reads it with ``safetensors.torch.load_file``)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Optional

import numpy as np

from ..tensor import Tensor


def _library() -> Any:
    try:
        import safetensors.numpy as st  # noqa: PLC0415
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "safetensors files need the safetensors package: pip install safetensors (or chainrule[torch])"
        ) from None
    return st


def save_file(tensors: dict[str, Any], filename: str, metadata: Optional[dict[str, str]] = None) -> None:
    """Write a flat dict of tensors (a state dict) as a ``.safetensors`` file."""
    arrays = {}
    for k, v in tensors.items():
        if not isinstance(v, Tensor):
            raise TypeError(f"save_file: {k!r} is a {type(v).__name__}; safetensors holds tensors only")
        arrays[k] = np.ascontiguousarray(np.asarray(v.detach()._data))
    _library().save_file(arrays, str(filename), metadata=metadata)


def load_file(filename: str, device: Any = "cpu") -> OrderedDict:
    """A ``.safetensors`` file as a dict of tensors (in the file's order)."""
    if str(device) != "cpu":
        raise RuntimeError(f"load_file(device={device!r}): chainrule.torch loads onto the CPU; use device='cpu'")
    arrays = _library().load_file(str(filename))
    return OrderedDict((k, Tensor(np.array(v))) for k, v in arrays.items())


def save(tensors: dict[str, Any], metadata: Optional[dict[str, str]] = None) -> bytes:
    arrays = {k: np.ascontiguousarray(np.asarray(v.detach()._data)) for k, v in tensors.items()}
    return _library().save(arrays, metadata=metadata)


def load(data: bytes) -> OrderedDict:
    return OrderedDict((k, Tensor(np.array(v))) for k, v in _library().load(data).items())
