"""chainrule.torch's random numbers against torch 2.13 on the CPU, bit for bit.

After the same ``manual_seed`` both namespaces must give equal values for factory draws, in-place fills,
``nn.init``, every layer's default initialisation, dropout masks in training, a DataLoader's epochs and a
short training loop with dropout. Every comparison is ``np.array_equal`` of raw values (with dtype and
shape), except the training losses, which go through NumPy's and torch's own float32 arithmetic (rel 1e-5).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import chainrule as cr  # noqa: E402
import chainrule.torch as ct  # noqa: E402
from chainrule import torch_random as tr  # noqa: E402
from chainrule import torch_random_fill as tf  # noqa: E402
from chainrule import torch_random_math as trm  # noqa: E402
from chainrule.torch import _random as facade_random  # noqa: E402

SEEDS = [0, 1, 7, 42, 2024, 2**32 + 3]
INTEL = trm._cpu_vendor() == "intel"  # torch's bernoulli_(float p) takes MKL's stream there (documented)
needs_torch_bernoulli = pytest.mark.skipif(INTEL, reason="torch draws bernoulli_(p) from MKL on Intel CPUs")


def arr(x: object) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().numpy()
    return np.asarray(x._data if hasattr(x, "_data") else x)


def same(ours: object, theirs: object, what: str = "") -> None:
    a, b = arr(ours), arr(theirs)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != torch's {b.shape}"
    assert a.dtype == b.dtype, f"{what}: dtype {a.dtype} != torch's {b.dtype}"
    assert np.array_equal(a, b), f"{what}: values differ\n{a}\n{b}"


def seed_both(s: int) -> None:
    torch.manual_seed(s)
    ct.manual_seed(s)


# -- factory draws ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("s", SEEDS)
def test_factory_draws_are_torchs(s: int) -> None:
    seed_both(s)
    calls = [
        lambda T: T.rand(5),
        lambda T: T.randn(17),
        lambda T: T.randn(3, 4, dtype=T.float64),
        lambda T: T.rand((2, 9)),
        lambda T: T.randint(0, 10, (6,)),
        lambda T: T.randint(3, (2, 2)),
        lambda T: T.randperm(9),
        lambda T: T.normal(0.5, 2.0, (20,)),
        lambda T: T.normal(T.zeros(5), T.ones(5)),
        lambda T: T.rand_like(T.zeros(3, 2)),
        lambda T: T.randn_like(T.zeros(4, dtype=T.float64)),
        lambda T: T.randint_like(T.zeros(3), 4),
        lambda T: T.multinomial(T.tensor([0.1, 0.5, 0.4]), 4, replacement=True),
        lambda T: T.bernoulli(T.full((12,), 0.3)),
    ]
    for i, call in enumerate(calls):
        same(call(ct), call(torch), f"call {i}, seed {s}")
    same(ct.get_rng_state(), torch.get_rng_state(), "state after the draws")


def test_draws_are_facade_tensors_with_torchs_defaults() -> None:
    seed_both(0)
    x = ct.randn(3, requires_grad=True)
    assert isinstance(x, ct.Tensor) and x.dtype == np.float32 and x.requires_grad
    y = ct.rand(2, dtype=ct.float64)
    assert isinstance(y, ct.Tensor) and y.dtype == np.float64 and not y.requires_grad
    (x * 2).sum().backward()
    assert np.array_equal(arr(x.grad), np.full(3, 2, np.float32))
    with pytest.raises(RuntimeError, match="floating point"):
        ct.randint(0, 3, (2,), requires_grad=True)


@pytest.mark.parametrize("s", SEEDS[:3])
def test_generator_objects_and_state(s: int) -> None:
    g, tg = ct.Generator().manual_seed(s), torch.Generator().manual_seed(s)
    same(ct.randn((27, 2), generator=g), torch.randn((27, 2), generator=tg), "randn(generator=)")
    same(ct.randint(0, 27, (32,), generator=g), torch.randint(0, 27, (32,), generator=tg), "randint(generator=)")
    state = g.get_state()
    assert isinstance(state, ct.Tensor) and state.dtype == np.uint8
    same(state, tg.get_state(), "Generator.get_state")
    # states move both ways
    seed_both(s + 1)
    ct.randn(5)  # ours moves ahead; torch takes our state
    torch.set_rng_state(torch.from_numpy(arr(ct.get_rng_state()).copy()))
    same(ct.rand(4), torch.rand(4), "torch after set_rng_state(ours)")
    torch.randn(3)  # torch moves ahead; we take its state
    ct.set_rng_state(torch.get_rng_state())
    same(ct.randn(18), torch.randn(18), "ours after set_rng_state(torch's)")
    assert ct.initial_seed() == torch.initial_seed()
    with pytest.raises(TypeError, match="generator"):
        ct.rand(2, generator=np.random.default_rng(0))


# -- in-place fills -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("s", SEEDS[:4])
def test_tensor_in_place_draws(s: int) -> None:
    seed_both(s)
    fills = [
        ("uniform_", (-2.0, 3.0), (4, 5)),
        ("normal_", (1.0, 0.5), (7,)),
        ("normal_", (0.0, 0.02), (6, 8)),
        ("exponential_", (2.0,), (9,)),
        ("random_", (0, 7), (5,)),
    ]
    if not INTEL:
        fills.append(("bernoulli_", (0.3,), (10,)))
    for name, args, shape in fills:
        ours, theirs = ct.zeros(*shape), torch.zeros(*shape)
        out = getattr(ours, name)(*args)
        getattr(theirs, name)(*args)
        assert out is ours
        same(ours, theirs, f"{name}{args}")
    w, tw = ct.zeros(3, 5), torch.zeros(3, 5)
    w.data.normal_(0, 0.02)  # the old idiom
    tw.data.normal_(0, 0.02)
    same(w, tw, "w.data.normal_")
    g, tg = ct.Generator().manual_seed(s), torch.Generator().manual_seed(s)
    same(ct.zeros(20).uniform_(generator=g), torch.zeros(20).uniform_(generator=tg), "uniform_(generator=)")


def test_cr_manual_seed_keeps_chainrules_own_stream() -> None:
    cr.manual_seed(0)
    a = cr.zeros(3).uniform_()
    ct.manual_seed(0)
    cr.manual_seed(0)
    b = cr.zeros(3).uniform_()
    same(a, b, "cr's NumPy stream")
    assert not np.array_equal(arr(a), arr(torch.manual_seed(0) and torch.rand(3)))


@pytest.mark.parametrize("s", SEEDS[:3])
def test_fill_of_a_transposed_view_follows_memory_order(s: int) -> None:
    for name, args in (("uniform_", (-1.0, 1.0)), ("normal_", (0.0, 1.0)), ("random_", (0, 100))):
        seed_both(s)
        base = np.zeros((6, 5), np.float32)
        view = base.T  # not C-contiguous: torch visits w's memory order
        view[...] = tf.fill_values(view, name, args, {}, tr.default_generator)
        tb = torch.zeros(6, 5)
        getattr(tb.t(), name)(*args)
        same(base, tb, f"{name} into a transposed view")
    with pytest.raises(RuntimeError, match="overlapping"):
        tf.fill_values(np.broadcast_to(np.zeros(3, np.float32), (4, 3)), "uniform_", (), {}, tr.default_generator)


# -- nn.init and the layers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("s", SEEDS[:3])
def test_nn_init(s: int) -> None:
    seed_both(s)
    inits = [
        ("uniform_", (-0.5, 0.5)),
        ("normal_", (0.0, 0.1)),
        ("xavier_uniform_", ()),
        ("xavier_normal_", (2.0,)),
        ("kaiming_uniform_", ()),
        ("kaiming_normal_", (0, "fan_out", "relu")),
        ("trunc_normal_", (0.0, 0.02)),
        ("sparse_", (0.3,)),
    ]
    for name, args in inits:
        ours, theirs = ct.empty(8, 6), torch.empty(8, 6)
        getattr(ct.nn.init, name)(ours, *args)
        getattr(torch.nn.init, name)(theirs, *args)
        same(ours, theirs, f"nn.init.{name}")


def layers(T: object) -> list:
    nn = T.nn
    return [
        lambda: nn.Linear(3, 4),
        lambda: nn.Linear(5, 2, bias=False),
        lambda: nn.Conv1d(2, 3, 3),
        lambda: nn.Conv2d(3, 4, (3, 2), groups=1),
        lambda: nn.Conv2d(4, 4, 3, groups=2),
        lambda: nn.ConvTranspose2d(3, 2, 3),
        lambda: nn.Embedding(10, 4),
        lambda: nn.Embedding(6, 3, padding_idx=1),
        lambda: nn.RNN(3, 5),
        lambda: nn.LSTM(3, 4, num_layers=2),
        lambda: nn.GRU(2, 3, bidirectional=True, batch_first=True),
        lambda: nn.RNNCell(3, 4),
        lambda: nn.LSTMCell(2, 5),
        lambda: nn.GRUCell(4, 3),
        lambda: nn.MultiheadAttention(8, 2),
        lambda: nn.TransformerEncoderLayer(8, 2, dim_feedforward=16),
        lambda: nn.LayerNorm(5),
        lambda: nn.BatchNorm1d(4),
        lambda: nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)),
    ]


@pytest.mark.parametrize("s", SEEDS[:3])
def test_layer_initialisation_is_torchs(s: int) -> None:
    for i, (make_ours, make_theirs) in enumerate(zip(layers(ct), layers(torch))):
        seed_both(s)
        ours, theirs = make_ours(), make_theirs()
        ours_p = dict(ours.named_parameters())
        theirs_p = dict(theirs.named_parameters())
        assert list(ours_p) == list(theirs_p), f"layer {i}: parameter names"
        for name in theirs_p:
            same(ours_p[name], theirs_p[name], f"layer {i} ({type(theirs).__name__}).{name}, seed {s}")
        same(ct.rand(3), torch.rand(3), f"layer {i}: the generator after construction")


# -- dropout, the DataLoader, training ------------------------------------------------------------------------


@needs_torch_bernoulli
@pytest.mark.parametrize("s", SEEDS[:4])
def test_dropout_masks_in_training(s: int) -> None:
    seed_both(s)
    x = np.linspace(-1, 1, 60, dtype=np.float32).reshape(6, 10)
    same(ct.nn.functional.dropout(ct.tensor(x), 0.3), torch.nn.functional.dropout(torch.tensor(x), 0.3), "F.dropout")
    d, td = ct.nn.Dropout(0.5), torch.nn.Dropout(0.5)
    xs, txs = ct.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = d(xs), td(txs)
    same(y, ty, "nn.Dropout")
    y.sum().backward()
    ty.sum().backward()
    same(xs.grad, txs.grad, "nn.Dropout's gradient")
    d.eval()
    td.eval()
    same(d(ct.tensor(x)), td(torch.tensor(x)), "nn.Dropout in eval")
    m, tm = ct.nn.MultiheadAttention(4, 2, dropout=0.25), torch.nn.MultiheadAttention(4, 2, dropout=0.25)
    q = np.linspace(-1, 1, 24, dtype=np.float32).reshape(3, 2, 4)
    out, w = m(ct.tensor(q), ct.tensor(q), ct.tensor(q))
    tout, tw = tm(torch.tensor(q), torch.tensor(q), torch.tensor(q))
    np.testing.assert_allclose(arr(w), arr(tw), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(arr(out), arr(tout), rtol=1e-5, atol=1e-6)
    same(ct.rand(2), torch.rand(2), "generator after attention dropout")
    r, trn = ct.nn.GRU(4, 3, num_layers=2, dropout=0.5), torch.nn.GRU(4, 3, num_layers=2, dropout=0.5)
    np.testing.assert_allclose(arr(r(ct.tensor(q))[0]), arr(trn(torch.tensor(q))[0]), rtol=1e-5, atol=1e-6)
    same(ct.rand(2), torch.rand(2), "generator after RNN dropout")


@pytest.mark.parametrize("s", SEEDS[:4])
def test_dataloader_epochs(s: int) -> None:
    seed_both(s)
    data = np.arange(11, dtype=np.float32)
    loaders = [
        ct.utils.data.DataLoader(ct.utils.data.TensorDataset(ct.tensor(data)), batch_size=4, shuffle=True),
        torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(data)), batch_size=4, shuffle=True),
    ]
    for epoch in range(3):
        ours = [arr(b[0]).tolist() for b in loaders[0]]
        theirs = [arr(b[0]).tolist() for b in loaders[1]]
        assert ours == theirs, f"epoch {epoch}, seed {s}"
    plain = [
        ct.utils.data.DataLoader(ct.utils.data.TensorDataset(ct.tensor(data)), batch_size=5),
        torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(data)), batch_size=5),
    ]
    assert [arr(b[0]).tolist() for b in plain[0]] == [arr(b[0]).tolist() for b in plain[1]]
    same(ct.rand(2), torch.rand(2), "the base seed is drawn even without shuffle")
    g, tg = ct.Generator().manual_seed(s), torch.Generator().manual_seed(s)
    ours = ct.utils.data.random_split(ct.utils.data.TensorDataset(ct.tensor(data)), [0.6, 0.4], generator=g)
    theirs = torch.utils.data.random_split(torch.utils.data.TensorDataset(torch.tensor(data)), [0.6, 0.4], generator=tg)
    assert [list(map(int, o.indices)) for o in ours] == [list(t.indices) for t in theirs]


def train(T: object, s: int) -> list[float]:
    T.manual_seed(s)
    nn = T.nn
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))
    opt = T.optim.SGD(model.parameters(), lr=0.05)
    x = T.randn(32, 4)
    y = x.sum(1, keepdim=True) * 0.5 + 0.1 * T.randn(32, 1)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    return losses


@needs_torch_bernoulli
@pytest.mark.parametrize("s", SEEDS[:3])
def test_seeded_training_loop_prints_torchs_losses(s: int) -> None:
    ours, theirs = train(ct, s), train(torch, s)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)


# -- the comparisons catch a wrong rule ---------------------------------------------------------------------


def test_planted_wrong_dropout_mask_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep-probability p instead of 1 - p: the same draws, the wrong mask; the comparison must fail."""

    def wrong(shape: tuple, p: float, dtype: object) -> np.ndarray:
        return tr.dropout_mask(shape, 1 - p, dtype=np.dtype(dtype))

    monkeypatch.setattr(facade_random, "dropout_mask", wrong)
    with pytest.raises(AssertionError):
        test_dropout_masks_in_training(0)


def test_planted_wrong_fill_order_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Filling a transposed view in its logical (C) order instead of memory order must be caught."""
    monkeypatch.setattr(tf, "_memory_order", lambda a, where: tuple(range(a.ndim)))
    with pytest.raises(AssertionError):
        test_fill_of_a_transposed_view_follows_memory_order(0)


def test_planted_wrong_init_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Linear whose bias bound used fan_out would draw the same bits scaled wrongly: caught."""
    from chainrule.torch.nn import _layers

    monkeypatch.setattr(_layers, "_bias_bound", lambda w: 1 / np.sqrt(w.shape[0]))
    with pytest.raises(AssertionError):
        test_layer_initialisation_is_torchs(0)


def test_autograd_variable_is_a_detached_alias() -> None:
    """``torch.autograd.Variable`` (old tutorials): the same data, no history, requires_grad as given."""
    for T in (ct, torch):
        t = T.ones(2)
        v = T.autograd.Variable(t, requires_grad=True)
        assert v is not t and v.requires_grad and not t.requires_grad and isinstance(t, T.autograd.Variable)
        h = T.autograd.Variable(T.ones(2, requires_grad=True) * 2)
        assert not h.requires_grad and h.grad_fn is None
        with pytest.raises(TypeError, match="has to be a tensor"):
            T.autograd.Variable([1.0])
    t = ct.ones(2)
    v = ct.autograd.Variable(t)
    v.data.mul_(3)
    same(t, np.full(2, 3, np.float32), "Variable shares t's memory")


def test_a_module_may_keep_a_tuple_of_computed_tensors() -> None:
    """``self.hidden = lstm(x, self.hidden)[1]`` (the sequence-models tutorial): activations, not parameters."""

    class Tagger(ct.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = ct.nn.LSTM(2, 3)
            self.hidden = (ct.zeros(1, 1, 3), ct.zeros(1, 1, 3))

        def forward(self, x: object) -> object:
            out, self.hidden = self.lstm(x, self.hidden)
            return out

    ct.manual_seed(0)
    m = Tagger()
    m(ct.randn(4, 1, 2)).sum().backward()
    assert m.hidden[0].requires_grad and len(list(m.parameters())) == 4
    with pytest.raises(TypeError, match="ParameterList"):
        m.extra = (ct.zeros(2, requires_grad=True),)  # leaves that require grad: refused as before


@needs_torch_bernoulli
@pytest.mark.parametrize("s", SEEDS[:2])
def test_transformer_layer_dropout_in_training(s: int) -> None:
    """Attention, feed-forward and residual dropouts draw in torch's order: same outputs, same generator after."""
    seed_both(s)
    m = ct.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.1)
    tm = torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.1)
    x = np.linspace(-2, 2, 120, dtype=np.float32).reshape(5, 3, 8)
    np.testing.assert_allclose(arr(m(ct.tensor(x))), arr(tm(torch.tensor(x))), rtol=1e-5, atol=1e-6)
    same(ct.rand(3), torch.rand(3), "generator after the layer")


def test_binary_functions_take_torchs_keyword_names() -> None:
    """``torch.matmul(input=a, other=b)`` (the polynomial tutorial) and friends, as torch spells them."""
    a = np.linspace(-1, 1, 6, dtype=np.float32)
    b = np.linspace(2, 3, 6, dtype=np.float32)
    for name in ("matmul", "add", "mul", "sub", "maximum", "eq"):
        ours = getattr(ct, name)(input=ct.tensor(a), other=ct.tensor(b))
        theirs = getattr(torch, name)(input=torch.tensor(a), other=torch.tensor(b))
        same(ours, theirs, f"{name}(input=, other=)")
        same(getattr(ct, name)(ct.tensor(a), other=ct.tensor(b)), theirs, f"{name}(a, other=)")
    same(ct.pow(input=ct.tensor(a), exponent=2), torch.pow(input=torch.tensor(a), exponent=2), "pow")
    same(
        ct.dot(input=ct.tensor(a), tensor=ct.tensor(b)), torch.dot(input=torch.tensor(a), tensor=torch.tensor(b)), "dot"
    )


def test_format_spec_of_a_scalar_tensor() -> None:
    """``f"{loss:.4f}"`` (Karpathy's bigram.py) formats the number, as torch; other tensors refuse a spec, as torch."""
    for T in (ct, torch):
        assert f"{T.tensor(2.5):.4f}" == "2.5000"
        assert f"{T.tensor(7):>3d}" == "  7"
        with pytest.raises(TypeError, match="unsupported format string"):
            f"{T.ones(2):.4f}"  # noqa: B018
    assert f"{ct.tensor(1.5)}" == f"{torch.tensor(1.5)}" == "1.5"  # no spec, 0-d: the number, as torch


@pytest.mark.parametrize("s", SEEDS[:2])
def test_facade_fill_through_a_transposed_view(s: int) -> None:
    """``w.t().uniform_()`` / ``normal_()`` write into ``w`` in torch's memory order."""
    for name in ("uniform_", "normal_"):
        seed_both(s)
        w, tw = ct.zeros(5, 4), torch.zeros(5, 4)
        getattr(w.t(), name)()
        getattr(tw.t(), name)()
        same(w, tw, f"w.t().{name}()")


def test_torch_func_vmap_and_a_clear_benchmark_refusal():
    import chainrule.torch as ctorch
    import chainrule.torch.utils.benchmark as bench
    from chainrule.torch.func import grad, vmap
    from chainrule.torch_names import NotSupportedError

    x = ctorch.randn(5, 3)
    per_row = vmap(grad(lambda r: (r * r).sum()))(x)
    assert isinstance(per_row, ctorch.Tensor) and np.allclose(np.asarray(per_row.data), 2 * np.asarray(x.data))
    with pytest.raises(NotSupportedError, match="timeit"):
        _ = bench.Timer
