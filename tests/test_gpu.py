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


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_compiled_training_on_cuda_equals_eager_bit_for_bit(opt_name):
    """cr.compile on torch CUDA tensors: the buffered torch schedule, replays equal to eager."""
    import torch

    from . import test_compile_foreign as cf

    if not torch.cuda.is_available():
        pytest.skip("torch finds no CUDA device")
    m1, _, eager, m2, _, compiled = cf._pair(torch.device("cuda"), opt_name)
    rng = np.random.default_rng(0)
    for _ in range(4):
        x = cf.cr.tensor(torch.tensor(rng.standard_normal((32, 6)).astype(np.float32), device="cuda"))
        y = cf.cr.tensor(torch.tensor(rng.integers(0, 4, 32), device="cuda"))
        assert cf._same(eager(x, y).data, compiled(x, y).data)
        for p, q in zip(m1.parameters(), m2.parameters()):
            assert q.data.is_cuda and cf._same(p.data, q.data) and cf._same(p.grad.data, q.grad.data)
    assert compiled.replays == 3 and "torch.matmul(" in compiled.code()
