"""The CS231n backprop worked examples, to the digits the lecture notes give."""

import numpy as np

import chainrule as cr


def test_add_multiply_circuit():
    x, y, z = (cr.tensor(v, requires_grad=True) for v in (-2.0, 5.0, -4.0))
    f = (x + y) * z
    f.backward()
    assert f.item() == -12.0
    assert (x.grad.item(), y.grad.item(), z.grad.item()) == (-4.0, -4.0, 3.0)


def test_sigmoid_neuron():
    w = cr.tensor([2.0, -3.0, -3.0], requires_grad=True)
    x = cr.tensor([-1.0, -2.0], requires_grad=True)
    f = 1 / (1 + cr.exp(-(w[0] * x[0] + w[1] * x[1] + w[2])))
    f.backward()
    np.testing.assert_allclose(f.item(), 0.7310585786300049, rtol=1e-15)
    np.testing.assert_allclose(
        w.grad.data, [-0.19661193324148185, -0.3932238664829637, 0.19661193324148185], rtol=1e-14
    )
    np.testing.assert_allclose(x.grad.data, [0.3932238664829637, -0.5898357997244456], rtol=1e-14)
    np.testing.assert_allclose(np.round(w.grad.data, 4), [-0.1966, -0.3932, 0.1966])
    np.testing.assert_allclose(np.round(x.grad.data, 4), [0.3932, -0.5898])


def test_sigmoid_neuron_on_python_scalars():
    w0, w1, w2, x0, x1 = (cr.tensor(v, requires_grad=True) for v in (2.0, -3.0, -3.0, -1.0, -2.0))
    f = cr.sigmoid(w0 * x0 + w1 * x1 + w2)
    f.backward()
    assert type(f._data) is float
    np.testing.assert_allclose(
        [w0.grad.item(), w1.grad.item(), w2.grad.item()], [-0.1966119, -0.3932239, 0.1966119], rtol=1e-6
    )
    np.testing.assert_allclose([x0.grad.item(), x1.grad.item()], [0.3932239, -0.5898358], rtol=1e-6)


def test_squared_norm_of_matrix_vector_product():
    W = cr.tensor([[0.1, 0.5], [-0.3, 0.8]], requires_grad=True)
    x = cr.tensor([0.2, 0.4], requires_grad=True)
    f = ((W @ x) ** 2).sum()
    f.backward()
    np.testing.assert_allclose(f.item(), 0.116, rtol=1e-14)
    np.testing.assert_allclose(W.grad.data, [[0.088, 0.176], [0.104, 0.208]], rtol=1e-14)
    np.testing.assert_allclose(x.grad.data, [-0.112, 0.636], rtol=1e-14)


def test_main_command_prints_the_neuron(capsys):
    from chainrule.cli import main

    assert main([]) == 0
    out = capsys.readouterr().out
    assert "0.7311" in out and "-0.1966" in out and "-0.5898" in out
