"""``cr.utils.data``: where a PyTorch user looks for ``DataLoader`` (the same objects as ``cr.data``)."""

from . import data

__all__ = ["data"]
