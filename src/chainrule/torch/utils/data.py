"""``torch.utils.data``: chainrule's datasets and loader under torch's names."""

from __future__ import annotations

from ...torch_names import module_getattr
from ...utils.data import DataLoader, Dataset, Subset, TensorDataset, default_collate, random_split  # noqa: F401

__getattr__ = module_getattr("torch.utils.data")
