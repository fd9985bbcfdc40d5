"""detect_anomaly: the first NaN/Inf, forward or backward, is reported with its primitive, shapes and source line."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import chainrule as cr
from chainrule import anomaly

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy warns about the very NaNs we provoke


def test_forward_nan_names_primitive_shapes_and_source_line():
    x = cr.tensor([[1.0, -1.0, 2.0]], requires_grad=True)
    with cr.detect_anomaly(), pytest.raises(cr.AnomalyError) as info:
        h = x * 2.0
        y = cr.log(h - 1.0)  # the culprit
        y.sum()
    msg = str(info.value)
    assert "forward of 'log' produced NaN" in msg
    assert "(1, 3) -> output shape (1, 3)" in msg
    assert "all of its inputs were finite" in msg
    assert "test_anomaly.py" in msg and "y = cr.log(h - 1.0)  # the culprit" in msg


def test_forward_inf_on_the_scalar_fast_path():
    x = cr.tensor(800.0, requires_grad=True)
    with cr.detect_anomaly(), pytest.raises(cr.AnomalyError, match=r"forward of 'exp' produced Inf.*\(\) -> output"):
        cr.exp(x)


def test_input_that_already_holds_nan_is_reported_as_such():
    x = cr.tensor([1.0, np.nan], requires_grad=True)
    with cr.detect_anomaly(), pytest.raises(cr.AnomalyError, match="input 0 already contained NaN/Inf"):
        x + 1.0


def _make_root(x):
    return cr.sqrt(x)  # created in a helper: this is the line to report


def test_backward_inf_names_the_line_that_created_the_node():
    x = cr.tensor([4.0, 0.0], requires_grad=True)
    with cr.detect_anomaly():
        r = _make_root(x)
        loss = (r * 3.0).sum()
        with pytest.raises(cr.AnomalyError) as info:
            loss.backward()
    msg = str(info.value)
    assert "backward of 'sqrt' produced Inf in the gradient for its input 0" in msg
    assert "input shape (2,), output shape (2,)" in msg
    assert "return cr.sqrt(x)  # created in a helper" in msg and "_make_root" in msg


def test_backward_nan_where_forward_was_finite():
    x = cr.tensor([0.0, 1.0], requires_grad=True)
    with cr.detect_anomaly():
        y = (cr.sqrt(x) * 0.0).sum()  # finite forward; sqrt's rule computes 0 / 0
        with pytest.raises(cr.AnomalyError, match="backward of 'sqrt' produced NaN"):
            y.backward()


def test_create_graph_backward_is_checked_too():
    x = cr.tensor([0.0, 1.0], requires_grad=True)
    with cr.detect_anomaly():
        y = (cr.sqrt(x) * 2.0).sum()
        with pytest.raises(cr.AnomalyError) as info:
            cr.autograd_grad(y, x, create_graph=True)
    msg = str(info.value)
    assert "backward of 'sqrt' produced Inf in the gradient for its input 0" in msg
    assert "its rule's 'div'" in msg and "y = (cr.sqrt(x) * 2.0).sum()" in msg


def test_finite_computations_are_unchanged_by_the_mode():
    data = np.array([0.3, -1.2, 2.0])

    def grad_of():
        x = cr.tensor(data, requires_grad=True)
        (cr.softmax(x * x, axis=0) * cr.tanh(x)).sum().backward()
        return x.grad.data

    plain = grad_of()
    with cr.detect_anomaly():
        checked = grad_of()
    np.testing.assert_array_equal(plain, checked)


def test_outside_the_mode_nothing_is_checked_or_recorded(monkeypatch):
    def fail(*args):
        raise AssertionError("anomaly hooks ran outside detect_anomaly()")

    monkeypatch.setattr(anomaly, "check_forward", fail)
    monkeypatch.setattr(anomaly, "check_backward", fail)
    before = set(anomaly._SOURCES)
    x = cr.tensor([-1.0, 0.0], requires_grad=True)
    y = cr.log(x)  # NaN and -Inf, silently, as in NumPy
    (y * 0.0).sum().backward()
    assert np.isnan(y.data[0]) and y.data[1] == -np.inf
    assert anomaly.source_of(y) is None and set(anomaly._SOURCES) <= before


def test_mode_is_restored_on_exit_nesting_and_errors():
    assert not cr.is_anomaly_enabled()
    with cr.detect_anomaly():
        with cr.detect_anomaly():
            assert cr.is_anomaly_enabled()
        assert cr.is_anomaly_enabled()
    assert not cr.is_anomaly_enabled()
    with pytest.raises(cr.AnomalyError), cr.detect_anomaly():
        cr.log(cr.tensor(-1.0, requires_grad=True))
    assert not cr.is_anomaly_enabled()
    (cr.tensor(2.0, requires_grad=True) * 3).backward()  # usable afterwards


def test_mode_is_per_thread():
    seen = {}

    def other():
        seen["other"] = cr.is_anomaly_enabled()
        seen["nan"] = cr.log(cr.tensor(-1.0, requires_grad=True)).item()  # no error in this thread

    with cr.detect_anomaly():
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert cr.is_anomaly_enabled()
    assert seen["other"] is False and np.isnan(seen["nan"])


def test_source_lines_are_forgotten_with_their_tensors():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    with cr.detect_anomaly():
        y = cr.exp(x)
        assert "y = cr.exp(x)" in anomaly.source_of(y)
    key = id(y)
    del y
    assert key not in anomaly._SOURCES
