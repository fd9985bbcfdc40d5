"""cr.utils.memory.reuse_freed_memory: glibc takes both settings; elsewhere it says no."""

from __future__ import annotations

import platform

import numpy as np

import chainrule as cr
from chainrule.utils import memory


def test_glibc_takes_the_settings_and_arrays_still_work():
    expected = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert cr.utils.memory.reuse_freed_memory() is expected
    assert cr.utils.memory.reuse_freed_memory() is expected  # idempotent
    a = np.ones((512, 1024))  # 4 MiB: above glibc's default threshold, below the new one
    del a
    x = cr.tensor(np.ones((256, 256)), requires_grad=True)
    cr.sum(x * x).backward()
    np.testing.assert_array_equal(x.grad.data, 2.0)


def test_without_a_c_library_it_says_no(monkeypatch):
    monkeypatch.setattr(memory.ctypes.util, "find_library", lambda name: None)
    assert memory.reuse_freed_memory() is False

    class NoMallopt:
        def __init__(self, name):
            pass

    monkeypatch.setattr(memory.ctypes.util, "find_library", lambda name: "libc.so.6")
    monkeypatch.setattr(memory.ctypes, "CDLL", NoMallopt)
    assert memory.reuse_freed_memory() is False
