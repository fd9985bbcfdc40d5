"""Data for training: ``DataLoader`` and ``TensorDataset`` (as ``torch.utils.data``), and small demo sets.

The demo sets are the UCI handwritten digits (bundled) and two moons (generated).

``digits.npz`` is the test set of the UCI "Optical Recognition of Handwritten
Digits" data set (E. Alpaydin and C. Kaynak, 1998; UCI Machine Learning
Repository, https://doi.org/10.24432/C50P49), licensed CC BY 4.0: 1,797 images
of 8x8 pixels with values 0..16, labels 0..9.  It was saved from the copy that
scikit-learn bundles (``sklearn.datasets.load_digits``); see ``README.md`` next to it.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np

from .loader import DataLoader, Dataset, Subset, TensorDataset, default_collate, random_split

__all__ = [
    "DataLoader",
    "Dataset",
    "Subset",
    "TensorDataset",
    "default_collate",
    "load_digits",
    "make_moons",
    "random_split",
    "train_test_split",
]


def load_digits(dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 digit images as ``(X, y)``: ``X`` of shape (1797, 64) scaled to [0, 1], ``y`` int64 labels."""
    with resources.files(__name__).joinpath("digits.npz").open("rb") as f, np.load(f, allow_pickle=False) as z:
        images = z["images"]
        labels = z["labels"]
    x = images.reshape(len(images), -1).astype(dtype) / np.asarray(16.0, dtype)
    return x, labels.astype(np.int64)


def make_moons(
    n_samples: int = 100, noise: float = 0.1, rng: Any = None, dtype: Any = np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles: ``X`` of shape (n, 2) and labels ``y`` in {0, 1} (shuffled).

    The upper moon is ``(cos t, sin t)``, the lower one ``(1 - cos t, 1/2 - sin t)``
    for ``t`` in ``[0, pi]``, with Gaussian noise of standard deviation ``noise``.
    """
    if n_samples < 2:
        raise ValueError(f"make_moons: n_samples must be at least 2, got {n_samples}")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    n_upper = n_samples // 2
    n_lower = n_samples - n_upper
    t_up = np.linspace(0.0, np.pi, n_upper)
    t_low = np.linspace(0.0, np.pi, n_lower)
    x = np.concatenate(
        [np.stack([np.cos(t_up), np.sin(t_up)], 1), np.stack([1.0 - np.cos(t_low), 0.5 - np.sin(t_low)], 1)]
    )
    y = np.concatenate([np.zeros(n_upper, np.int64), np.ones(n_lower, np.int64)])
    if noise:
        x = x + gen.normal(0.0, noise, size=x.shape)
    order = gen.permutation(n_samples)
    return x[order].astype(dtype), y[order]


def train_test_split(
    x: np.ndarray, y: np.ndarray, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A shuffled split ``(x_train, y_train, x_test, y_test)``; the same ``seed`` gives the same split."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"train_test_split: test_fraction must lie in (0, 1), got {test_fraction}")
    if len(x) != len(y):
        raise ValueError(f"train_test_split: x has {len(x)} rows but y has {len(y)}")
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = max(1, int(round(len(x) * test_fraction)))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]
