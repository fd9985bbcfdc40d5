"""``torch.cuda``, truthfully: available only where a GPU array library with a device is present."""

from __future__ import annotations

from typing import Any

from ..torch_names import module_getattr
from ._core import cuda_available


def is_available() -> bool:
    """False on a machine without CuPy and a GPU: chainrule.torch computes with NumPy on the CPU."""
    return cuda_available()


def device_count() -> int:
    return 1 if cuda_available() else 0


def manual_seed(seed: int) -> None:  # noqa: ARG001
    """No CUDA generator to seed here (torch does nothing too when CUDA is absent)."""


def manual_seed_all(seed: int) -> None:  # noqa: ARG001
    """As :func:`manual_seed`."""


def synchronize(device: Any = None) -> None:  # noqa: ARG001
    if not cuda_available():
        raise RuntimeError("torch.cuda.synchronize: no CUDA device here (torch.cuda.is_available() is False)")


__getattr__ = module_getattr("torch.cuda")
