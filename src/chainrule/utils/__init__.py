"""``cr.utils.data``: where a PyTorch user looks for ``DataLoader`` (the same objects as ``cr.data``);
``cr.utils.memory``: malloc settings for large arrays."""

from . import data, memory

__all__ = ["data", "memory"]
