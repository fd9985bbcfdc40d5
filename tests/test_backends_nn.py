"""Everything above the engine on other array libraries: nn, optim, save/load, gradcheck, errors."""

from __future__ import annotations

import array_api_strict
import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule.backend import library_name

DEVICES = {"torch": torch.device("cpu"), "array_api_strict": array_api_strict.Device("CPU_DEVICE")}
MAKE = {"torch": torch.asarray, "array_api_strict": array_api_strict.asarray}


def _train(lib, optimizer, steps=5):
    model = cr.nn.Sequential(cr.nn.Linear(4, 8, rng=0), cr.nn.Tanh(), cr.nn.Linear(8, 3, rng=1))
    if lib is not None:
        model.to(DEVICES[lib])
    opt = optimizer(model.parameters())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 4)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    make = MAKE[lib] if lib else np.asarray
    X, Y = cr.tensor(make(x)), cr.tensor(make(y))
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = cr.nn.cross_entropy(model(X), Y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model, opt, losses


OPTIMIZERS = {
    "sgd-momentum-wd": lambda p: cr.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3),
    "adam": lambda p: cr.optim.Adam(p, lr=0.01),
    "rmsprop": lambda p: cr.optim.RMSprop(p, lr=0.01),
}


@pytest.mark.parametrize("lib", sorted(DEVICES))
@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_five_training_steps_equal_the_numpy_run(lib, opt):
    ref_model, ref_opt, ref_losses = _train(None, OPTIMIZERS[opt])
    model, opt_, losses = _train(lib, OPTIMIZERS[opt])
    # float32 everywhere; torch's and NumPy's kernels round differently in the last bit
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-6)
    for p, q in zip(model.parameters(), ref_model.parameters()):
        assert library_name(p.data) == lib, "a parameter left its library"
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-5, atol=1e-6)
    assert len(opt_.state) == len(ref_opt.state)
    for p, q in zip(model.parameters(), ref_model.parameters()):  # optimizer state (buffers, moments) too
        st, ref_st = opt_.state[id(p)], ref_opt.state[id(q)]
        assert set(st) == set(ref_st)
        for k, v in ref_st.items():
            np.testing.assert_allclose(np.asarray(st[k]), np.asarray(v), rtol=1e-5, atol=1e-6)


def test_a_wrong_update_on_the_foreign_path_is_caught(monkeypatch):
    """Plant a bug in the foreign-array update only: the comparison above must notice."""
    original = cr.optim.Optimizer._update_foreign

    def doubled(self, p, group):
        original(self, p, group)
        original(self, p, group)

    monkeypatch.setattr(cr.optim.Optimizer, "_update_foreign", doubled)
    with pytest.raises(AssertionError):
        test_five_training_steps_equal_the_numpy_run("torch", "sgd-momentum-wd")


def test_save_copies_to_host_and_load_puts_tensors_on_a_chosen_device(tmp_path):
    model, _, _ = _train("torch", OPTIMIZERS["adam"], steps=2)
    path = tmp_path / "model.npz"
    cr.save(model.state_dict(), path)
    on_host = cr.load(path)
    assert all(library_name(t.data) == "numpy" for t in on_host.values())
    on_torch = cr.load(path, device=torch.device("cpu"))
    for (name, t), p in zip(on_torch.items(), model.parameters()):
        assert isinstance(t.data, torch.Tensor), name
        np.testing.assert_array_equal(t.numpy(), p.numpy())
    fresh = cr.nn.Sequential(cr.nn.Linear(4, 8, rng=5), cr.nn.Tanh(), cr.nn.Linear(8, 3, rng=6)).to(torch.device("cpu"))
    fresh.load_state_dict(on_host)
    for p, q in zip(fresh.parameters(), model.parameters()):
        assert isinstance(p.data, torch.Tensor)
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_gradcheck_checks_other_libraries_in_float64_on_the_host():
    x = torch.linspace(-1, 1, 5, dtype=torch.float32)
    assert cr.gradcheck(lambda t: cr.sum(cr.tanh(t) * t), x)
    with pytest.raises(cr.GradcheckError):
        cr.gradcheck(_wrong_square, x)  # a planted wrong rule is caught through the host copy too


def _wrong_square(t):
    @cr.custom_vjp
    def square(a):
        return a * a

    @square.defvjp
    def _(g, out, a):
        return (g * a,)  # should be 2 a g

    return cr.sum(square(t))


@pytest.mark.parametrize("lib", sorted(DEVICES))
def test_tensor_keeps_its_library_and_numpy_copies_to_host(lib):
    a = MAKE[lib](np.array([1.0, 2.0, 3.0]))
    t = cr.tensor(a, requires_grad=True)
    assert library_name(t.data) == lib
    assert str(t.device) == str(DEVICES[lib])
    shown = repr(t)  # what a user reads: the values, the library's dtype and device, the library
    assert shown.startswith("tensor([1., 2., 3.]") and f"library={lib}" in shown and "requires_grad=True" in shown
    assert "float64" in shown and f"device={DEVICES[lib]}" in shown
    assert t.dtype == np.float64 and t.shape == (3,)
    host = t.numpy()
    assert isinstance(host, np.ndarray) and host.tolist() == [1.0, 2.0, 3.0]
    host[0] = 99.0  # a copy: the tensor is unchanged
    assert t.numpy()[0] == 1.0
    back = t.to("numpy")
    assert isinstance(back.data, np.ndarray)
    (back * back).sum().backward()
    assert library_name(t.grad.data) == lib  # the gradient came back through the move
    np.testing.assert_array_equal(t.grad.numpy(), [2.0, 4.0, 6.0])


def test_mixing_libraries_in_one_operation_is_refused_naming_both():
    t = cr.tensor(torch.ones(3))
    s = cr.tensor(array_api_strict.ones(3))
    with pytest.raises(TypeError, match="add: cannot mix a torch array with a array_api_strict array"):
        t + s
    with pytest.raises(TypeError, match="mul: cannot mix a torch array with a NumPy array of shape \\(3,\\)"):
        t * cr.tensor(np.ones(3))
    with pytest.raises(TypeError, match="float32.*float64|float64.*float32"):
        cr.tensor(torch.ones(3, dtype=torch.float32)) + cr.tensor(torch.ones(3, dtype=torch.float64))
    # Python numbers mix with anything, and stay in the array's library and dtype
    out = t * 2.0 + 1
    assert isinstance(out.data, torch.Tensor) and out.dtype == np.float32


def test_mixing_devices_is_refused_naming_both():
    t = cr.tensor(torch.ones(3))
    m = cr.tensor(torch.ones(3, device="meta"))
    with pytest.raises(ValueError, match="expected all arrays on one device, got cpu and meta"):
        t + m


def test_bad_devices_are_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match="expected 'cpu', 'cuda' or 'cuda:N'"):
        cr.tensor([1.0], device="gpu")
    with pytest.raises(RuntimeError, match="no 'mps' device"):
        cr.tensor([1.0]).to("mps")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            cr.tensor([1.0], device="cuda")


def test_creation_functions_take_a_device_and_like_functions_follow_their_input():
    d = torch.device("cpu")
    assert isinstance(cr.zeros(2, 3, device=d).data, torch.Tensor)
    assert isinstance(cr.eye(3, device=d).data, torch.Tensor)
    x = cr.tensor(array_api_strict.ones((2, 2)))
    assert library_name(cr.zeros_like(x).data) == "array_api_strict"
    assert library_name(cr.ones_like(np.ones(2)).data) == "numpy"


@pytest.mark.parametrize("lib", sorted(DEVICES))
def test_in_place_updates_stay_in_the_library(lib):
    ones = {"torch": torch.ones, "array_api_strict": array_api_strict.ones}[lib]
    p = cr.tensor(ones(3), requires_grad=True)
    (p * p).sum().backward()
    with cr.no_grad():
        p -= 0.1 * p.grad  # the torch habit
    np.testing.assert_allclose(p.numpy(), [0.8, 0.8, 0.8])
    assert library_name(p.data) == lib
    q = cr.tensor(ones(3))
    q[0] = 5.0
    q += 2
    np.testing.assert_array_equal(q.numpy(), [7.0, 3.0, 3.0])
    p.grad.zero_()
    assert not np.any(p.grad.numpy())
    a = cr.tensor(ones(3), requires_grad=True)
    b = a * 1.0
    b += a  # recorded in place: the gradient counts both uses
    b.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [2.0, 2.0, 2.0])
    assert library_name(a.grad.data) == lib


def test_layers_and_losses_built_from_numpy_constants_run_on_torch():
    """Dropout masks, loss weights and BatchNorm statistics are NumPy constants; on torch they join torch."""
    F = cr.nn.functional
    rng = np.random.default_rng(3)
    x0 = rng.standard_normal((10, 3)).astype(np.float32)
    y0 = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, -100])
    t0 = rng.random((10, 3)).astype(np.float32)
    w0 = np.array([1.0, 2.0, 3.0], dtype=np.float32)

    def losses(make):
        x = cr.tensor(make(x0), requires_grad=True)
        y, t, w = cr.tensor(make(y0)), cr.tensor(make(t0)), cr.tensor(make(w0))
        total = (
            F.cross_entropy(x, y, weight=w)
            + F.cross_entropy(x, y, label_smoothing=0.1)
            + F.mse_loss(x, t)
            + F.binary_cross_entropy_with_logits(x, t)
        )
        total.backward()
        return total.item(), x.grad.numpy(), x.grad.data

    ref, ref_grad, _ = losses(np.asarray)
    got, grad, native = losses(torch.asarray)
    assert isinstance(native, torch.Tensor)
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-7)
    drop = cr.nn.Dropout(0.5)(cr.tensor(torch.ones(1000)))
    assert isinstance(drop.data, torch.Tensor) and set(np.unique(drop.numpy())) == {0.0, 2.0}


def test_batch_norm_on_torch_equals_numpy_in_training_and_evaluation():
    x0 = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    results = []
    for device in (None, torch.device("cpu")):
        m = cr.nn.BatchNorm1d(3)
        if device is not None:
            m.to(device)
        x = cr.tensor(x0 if device is None else torch.asarray(x0), requires_grad=True)
        y = m(x)
        (y * y).sum().backward()
        m.eval()
        z = m(cr.tensor(x0 if device is None else torch.asarray(x0)))
        results.append((y.numpy(), x.grad.numpy(), m.running_mean.numpy(), m.running_var.numpy(), z.numpy()))
        if device is not None:
            assert isinstance(z.data, torch.Tensor) and isinstance(m.running_var.data, torch.Tensor)
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("index", [1, slice(0, 2), np.array([0, 2]), torch.tensor([0, 2])], ids=str)
def test_setitem_inside_a_graph_on_torch(index):
    w = cr.tensor(torch.ones(3), requires_grad=True)
    y = w * 2
    y[index] = 5.0
    (y * y).sum().backward()
    wn = cr.tensor(np.ones(3), requires_grad=True)
    yn = wn * 2
    yn[index.numpy() if isinstance(index, torch.Tensor) else index] = 5.0
    (yn * yn).sum().backward()
    np.testing.assert_array_equal(y.numpy(), yn.numpy())
    np.testing.assert_array_equal(w.grad.numpy(), wn.grad.numpy())
    assert isinstance(w.grad.data, torch.Tensor)


def test_like_functions_follow_a_raw_array_and_jacobians_refuse_other_libraries():
    assert isinstance(cr.zeros_like(torch.ones(2)).data, torch.Tensor)
    for transform in (cr.jacfwd, cr.jacrev, cr.hessian):
        with pytest.raises(NotImplementedError, match="not supported by jacobian, jacrev, jacfwd and hessian"):
            transform(lambda a: (a * a).sum())(torch.tensor([1.0, 2.0]))
    hv = cr.hvp(lambda a: (a * a * a).sum(), torch.tensor([1.0, 2.0]), torch.tensor([1.0, 0.0]))
    assert isinstance(hv, torch.Tensor) and hv.tolist() == [6.0, 0.0]


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_plain_sgd_on_torch_tensors_is_torchs_own_update_bit_for_bit(weight_decay):
    rng = np.random.default_rng(5)
    w0, g0 = rng.standard_normal((2, 7, 3)).astype(np.float32)
    p = cr.tensor(torch.tensor(w0), requires_grad=True)
    p.grad = cr.tensor(torch.tensor(g0))
    cr.optim.SGD([p], lr=0.1, weight_decay=weight_decay).step()
    ref = torch.tensor(w0, requires_grad=True)
    ref.grad = torch.tensor(g0)
    torch.optim.SGD([ref], lr=0.1, weight_decay=weight_decay).step()
    assert isinstance(p.data, torch.Tensor) and torch.equal(p.data, ref.detach())
    assert p._version > 0  # in-place detection sees the update


@pytest.mark.parametrize("ord", [2, 1, 3, float("inf")])
@pytest.mark.parametrize("data", [[3.0, -4.0, 0.0], [0.0, 0.0, 0.0]])
def test_norms_on_torch_tensors_match_torch_and_stay_in_torch(ord, data):
    x = cr.tensor(torch.tensor(data, dtype=torch.float64), requires_grad=True)
    n = cr.linalg.vector_norm(x, ord)
    n.backward()
    ref = torch.tensor(data, dtype=torch.float64, requires_grad=True)
    torch.linalg.vector_norm(ref, ord).backward()
    assert isinstance(n.data, torch.Tensor) and isinstance(x.grad.data, torch.Tensor)
    assert n.item() == pytest.approx(torch.linalg.vector_norm(ref, ord).item(), rel=1e-14)
    np.testing.assert_allclose(x.grad.numpy(), ref.grad.numpy(), rtol=1e-13, atol=0)


def test_inverse_of_a_torch_matrix_is_checked_on_a_host_copy():
    m = cr.tensor(torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=torch.float64))
    np.testing.assert_allclose(cr.linalg.inv(m).numpy(), np.linalg.inv([[2.0, 1.0], [1.0, 3.0]]), rtol=1e-14)
    with pytest.raises(ValueError, match="singular"):
        cr.linalg.inv(cr.tensor(torch.tensor([[1.0, 2.0], [2.0, 4.0]], dtype=torch.float64)))
