"""Gaps found by running public PyTorch programs with only their imports changed
(``scripts/dropin_check.py``, issue 25): each idiom is run in torch and in ``chainrule.torch`` and must
give the same printed text or values."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.torch as ct

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("spec", ["", ".4f", ".2e", "10.3f", "g"])
def test_format_of_a_zero_dim_tensor_is_its_numbers(spec):
    # makemore part 1: print(f'{nll/n}') prints a Python float under torch, not the tensor's repr
    for lib in (torch, ct):
        assert format(lib.tensor(2.0) / 3, spec) == format(torch.tensor(2.0).div(3).item(), spec)
    for lib in (torch, ct):  # a float64 value keeps its 53 bits
        assert f"{lib.tensor(1.0, dtype=lib.float64) / 3}" == str(1.0 / 3)


def test_format_of_a_vector_is_still_refused_or_repr():
    t, c = torch.tensor([1.0, 2.0]), ct.tensor([1.0, 2.0])
    with pytest.raises(TypeError):
        format(t, ".2f")
    with pytest.raises(TypeError):
        format(c, ".2f")
    assert f"{c}" == str(c)


def test_data_numpy_shares_memory():
    # Morvan's 202_variable.py: print(variable.data.numpy())
    for lib in (torch, ct):
        v = lib.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
        a = v.data.numpy()
        assert type(a) is np.ndarray and a.dtype == np.float32
        np.testing.assert_array_equal(a, [[1.0, 2.0], [3.0, 4.0]])
        a[0, 0] = 7.0
        assert v[0, 0].item() == 7.0


def test_data_cpu_numpy():
    # Atcold's 05-regression notebook: plt.scatter(X.data.cpu().numpy(), ...)
    for lib in (torch, ct):
        x = lib.linspace(-1, 1, 5).unsqueeze(1)
        np.testing.assert_array_equal(x.data.cpu().numpy(), np.linspace(-1, 1, 5, dtype=np.float32)[:, None])


def test_a_zero_dim_tensor_is_not_iterable():
    # matplotlib's unit check calls np.iterable on each axis limit: plt.axis(torch.tensor((-1.1, 1.1, -1, 1)))
    for lib in (torch, ct):
        assert not np.iterable(lib.tensor(1.5))
        assert np.iterable(lib.tensor([1.5]))
        with pytest.raises(TypeError, match="0-d"):
            iter(lib.tensor(1.5))
        assert [float(v) for v in lib.tensor([1.0, 2.0])] == [1.0, 2.0]


def test_matplotlib_axis_takes_a_tensor(tmp_path):
    plt = pytest.importorskip("matplotlib.pyplot")
    limits = []
    for lib in (torch, ct):
        plt.figure()
        plt.axis(lib.tensor((-1.1, 1.1, -1.1, 1.1)) * 2)
        limits.append(plt.gca().get_xlim() + plt.gca().get_ylim())
        plt.close()
    assert limits[0] == limits[1]


def test_numpy_ufunc_on_a_tensor_without_grad_gives_a_tensor():
    got = {}
    for lib in (torch, ct):
        sin = np.sin(lib.tensor([0.5, 1.0]))
        finite = np.isfinite(lib.tensor(1.5))
        got[lib] = (sin.dtype, sin.shape, sin.tolist(), finite.dtype, finite.shape, finite.item(), sin.requires_grad)
        assert str(finite.dtype).endswith("uint8") and finite.item() == 1
    assert got[torch][1:3] == got[ct][1:3] and got[torch][4:] == got[ct][4:]
    with pytest.raises(RuntimeError):  # torch refuses a tensor that requires grad ...
        np.sin(torch.tensor([0.5], requires_grad=True))
    with pytest.raises(TypeError, match=r"cr\.sin"):  # ... and chainrule names its own function
        np.sin(ct.tensor([0.5], requires_grad=True))


def test_module_cpu_keeps_the_parameters():
    # Atcold's plot_lib.plot_model: model.cpu() before predicting on a NumPy mesh
    for lib in (torch, ct):
        lib.manual_seed(0)
        model = lib.nn.Sequential(lib.nn.Linear(2, 3), lib.nn.ReLU(), lib.nn.Linear(3, 1))
        weight = model[0].weight
        assert model.cpu() is model and model[0].weight is weight
    np.testing.assert_array_equal(
        ct.nn.Linear(2, 3).cpu().weight.detach().numpy().shape, torch.nn.Linear(2, 3).cpu().weight.shape
    )


def test_version_names_the_torch_release_followed():
    # mrdbourke's 01_pytorch_workflow prints torch.__version__
    assert ct.__version__.split("+")[0] == torch.__version__.split("+")[0] == "2.13.0"
    assert ct.__version__.endswith("+chainrule")


def test_load_state_dict_result_prints_as_torchs():
    for lib in (torch, ct):
        lib.manual_seed(0)
        model = lib.nn.Linear(2, 1)
        assert repr(model.load_state_dict(lib.nn.Linear(2, 1).state_dict())) == "<All keys matched successfully>"
    got = ct.nn.Linear(2, 1).load_state_dict({"weight": ct.zeros(1, 2)}, strict=False)
    want = torch.nn.Linear(2, 1).load_state_dict({"weight": torch.zeros(1, 2)}, strict=False)
    assert repr(got) == repr(want).replace("_IncompatibleKeys", "IncompatibleKeys")


@pytest.mark.parametrize("cls", ["FloatTensor", "LongTensor", "DoubleTensor", "IntTensor", "ByteTensor"])
def test_type_with_a_legacy_tensor_class(cls):
    # Morvan's 302_classification.py: torch.cat((x0, x1), 0).type(torch.FloatTensor)
    got = ct.tensor([[1.5, -2.0]]).type(getattr(ct, cls))
    want = torch.tensor([[1.5, -2.0]]).type(getattr(torch, cls))
    assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
    assert got.tolist() == want.tolist()
    assert got.type() == want.type()


def test_type_with_a_class_without_dtype_names_the_way():
    with pytest.raises(TypeError, match="names no dtype"):
        ct.tensor([1.0]).type(ct.Tensor)


@pytest.mark.parametrize("shape", [(), (1,), (1, 1)])
def test_implicit_gradient_of_a_one_element_output(shape):
    # rasbt's L06 pytorch-autograd: grad(F.relu(x*w + b), w) with tensors of shape (1,)
    got = {}
    for lib in (torch, ct):
        w = lib.tensor([2.0], requires_grad=True)
        a = lib.nn.functional.relu(lib.tensor([3.0]) * w + 1.0).reshape(shape)
        (gw,) = lib.autograd.grad(a, w, retain_graph=True)
        a.backward()
        got[lib] = (gw.tolist(), w.grad.tolist())
    assert got[torch] == got[ct] == ([3.0], [3.0])


def test_implicit_gradient_of_two_elements_is_refused():
    for lib, err in ((torch, RuntimeError), (ct, RuntimeError)):
        w = lib.tensor([2.0, 1.0], requires_grad=True)
        with pytest.raises(err, match="scalar output"):
            (w * 2).backward()


def _grad_steps(lib):
    """rasbt's L06 adaline-with-autograd: the parameters become non-leaf tensors (w = w + lr * g) and each
    step takes grad(loss, w, retain_graph=True) and then grad(loss, b), which frees the graph."""
    lib.manual_seed(0)
    x, y = lib.randn(8, 2), lib.randn(8)
    w = lib.zeros(2, 1, requires_grad=True)
    b = lib.zeros(1, requires_grad=True)
    losses = []
    for _ in range(4):
        loss = (((x @ w).view(-1) + b - y) ** 2).mean()
        gw = lib.autograd.grad(loss, w, retain_graph=True)[0]
        gb = lib.autograd.grad(loss, b)[0]
        w = w - 0.1 * gw
        b = b - 0.1 * gb
        losses.append(loss.item())
    return losses


def test_grad_toward_non_leaf_parameters_step_after_step():
    np.testing.assert_allclose(_grad_steps(ct), _grad_steps(torch), rtol=1e-6)


def test_a_freed_graph_that_is_needed_still_raises():
    for lib in (torch, ct):
        w = lib.tensor([2.0], requires_grad=True)
        h = (w * w).sin()
        loss = h * 3
        lib.autograd.grad(loss, w)  # frees the graph between loss and w
        with pytest.raises(RuntimeError, match="(?i)backward through the graph a second time|already backprop"):
            lib.autograd.grad(loss, w)


def test_inverse_is_linalg_inv():
    # rasbt's L05 linear-regr-gd: torch.inverse(torch.matmul(Xb.t(), Xb))
    a = [[4.0, 1.0, 0.5], [1.0, 3.0, 0.25], [0.5, 0.25, 2.0]]
    want = torch.inverse(torch.tensor(a))
    got = ct.inverse(ct.tensor(a))
    np.testing.assert_allclose(got.detach().numpy(), want.numpy(), rtol=1e-6)
    assert str(got.dtype).endswith("float32")
    x = ct.tensor(a, requires_grad=True)
    ct.inverse(x).sum().backward()
    tx = torch.tensor(a, requires_grad=True)
    torch.inverse(tx).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"density": True}, {"bins": 7}, {"bins": 5, "range": (-1.0, 0.5)}, {"bins": 3, "density": True}],
)
def test_histogram_as_torchs(seed, kwargs):
    # makemore part 3: hy, hx = torch.histogram(t, density=True)
    torch.manual_seed(seed)
    t = torch.randn(32, 100).tanh()
    want = torch.histogram(t, **kwargs)
    got = ct.histogram(ct.tensor(t.numpy()), **kwargs)
    np.testing.assert_array_equal(got.bin_edges.numpy(), want.bin_edges.numpy())  # torch's linspace, bit for bit
    np.testing.assert_allclose(got.hist.numpy(), want.hist.numpy(), rtol=1e-6)
    assert str(got.hist.dtype).endswith("float32") and got.hist.shape == tuple(want.hist.shape)
    hy, hx = got  # unpacks as torch's pair
    assert hx.shape == (len(hy) + 1,)


def test_histogram_edges_weights_and_a_constant_input():
    cases = [
        (lambda L: L.tensor([2.0, 2.0, 2.0]), {"bins": 4}),
        (lambda L: L.tensor([0.0, 1.0, 2.0, 3.0]), {"bins": 3, "range": (0.0, 2.0)}),
        (lambda L: L.tensor([[0.0, 1.0], [2.0, 3.0]]), {"bins": 2, "weight": "w"}),
        (lambda L: L.tensor([0.0, 1.0, 2.0, 3.0]), {"bins": "edges", "density": True}),
    ]
    for make, kw in cases:
        results = []
        for lib in (torch, ct):
            args = dict(kw)
            if args.get("weight") == "w":
                args["weight"] = lib.tensor([[1.0, 2.0], [3.0, 4.0]])
            if args.get("bins") == "edges":
                args["bins"] = lib.tensor([0.0, 1.0, 3.0])
            r = lib.histogram(make(lib), **args)
            results.append((np.asarray(r.hist.tolist()), np.asarray(r.bin_edges.tolist())))
        np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-6)
        np.testing.assert_array_equal(results[1][1], results[0][1])
    with pytest.raises(RuntimeError, match="floating-point"):
        ct.histogram(ct.tensor([1, 2, 3]))


def test_the_docs_section_prints_what_it_shows(capsys):
    import pathlib
    import re

    text = (pathlib.Path(__file__).parent.parent / "docs" / "torch.md").read_text(encoding="utf-8")
    start = text.index("## Public programs run with only the imports changed")
    code, shown = re.findall(r"```python\n(.*?)```\n```\n(.*?)```", text[start:], re.S)[0]
    exec(compile(code, "docs/torch.md", "exec"), {"__name__": "__doc__"})  # the project's own docs
    assert capsys.readouterr().out == shown


def test_setitem_drops_leading_ones_of_the_value_as_torch():
    """makemore part 5: ``logits[0] = out`` with ``out`` of shape (1, 27) into a (27,) selection."""
    import torch

    for T in (ct, torch):
        x = T.zeros(8, 27)
        x[0] = T.arange(27.0).reshape(1, 27)
        w = T.ones(1, 1, 27, requires_grad=True)
        y = T.zeros(8, 27)
        y[1] = w * 2
        (y * y).sum().backward()
        assert float(x[0].sum()) == 351.0 and tuple(w.grad.shape) == (1, 1, 27) and float(w.grad.sum()) == 216.0
    with pytest.raises(ValueError, match="setitem"):
        z = ct.zeros(8, 27)
        z[0] = ct.ones(2, 27)
