"""``torch.utils``: ``data`` (Dataset, DataLoader, TensorDataset, random_split, ...)."""

from __future__ import annotations

from ...torch_names import module_getattr
from . import data  # noqa: F401

__getattr__ = module_getattr("torch.utils")
