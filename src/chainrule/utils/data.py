"""``torch.utils.data``'s names, re-exported from :mod:`chainrule.data`."""

from ..data.loader import DataLoader, Dataset, Subset, TensorDataset, default_collate, random_split

__all__ = ["DataLoader", "Dataset", "Subset", "TensorDataset", "default_collate", "random_split"]
