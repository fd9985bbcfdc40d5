"""The primitive suite and a training run on GPU arrays: CuPy and torch CUDA tensors.

Deselected by default (see pyproject.toml); run with ``python -m pytest -m gpu`` or
``python bench/gpu_check.py`` on a machine with a CUDA device.  Each test is skipped,
saying why, where its library or the device is missing.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from . import test_backends as suite
from .cases import CASES

pytestmark = pytest.mark.gpu


def _torch_cuda():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("torch finds no CUDA device")
    return lambda a: torch.asarray(np.asarray(a), device="cuda")


def _cupy():
    if importlib.util.find_spec("cupy") is None:
        pytest.skip("CuPy is not installed")
    import cupy

    return lambda a: cupy.asarray(np.asarray(a))


MAKERS = {"torch-cuda": _torch_cuda, "cupy": _cupy}
suite.LIBRARY_OF.update({"torch-cuda": "torch", "cupy": "cupy"})
suite.NOT_IN_STANDARD.update({"torch-cuda": set(), "cupy": set()})

ALL = [
    pytest.param(lib, name, case, id=f"{lib}-{name}-{case.label or i}")
    for lib in MAKERS
    for name, cases in CASES.items()
    for i, case in enumerate(cases)
]


def _with(lib):
    suite.LIBRARIES[lib] = MAKERS[lib]()


@pytest.mark.parametrize("lib,name,case", ALL)
def test_values_and_gradients_on_the_gpu(lib, name, case):
    _with(lib)
    suite.test_values_and_gradients_match_numpy(lib, name, case)


@pytest.mark.parametrize("lib,name,case", ALL)
def test_second_order_on_the_gpu(lib, name, case):
    _with(lib)
    suite.test_second_order_matches_numpy(lib, name, case)


@pytest.mark.parametrize("lib,name,case", ALL)
def test_forward_mode_on_the_gpu(lib, name, case):
    _with(lib)
    suite.test_forward_mode_matches_numpy(lib, name, case)
