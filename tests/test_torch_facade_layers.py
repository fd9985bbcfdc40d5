"""chainrule.torch's layers against torch's: the same parameter names and shapes, the same initialisation
bounds in the same order, and (with torch's weights copied in) the same outputs and gradients."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import chainrule.torch as ct
from chainrule.torch import _random

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(7)


def _copy(src: Any, dst: Any) -> None:
    dst.load_state_dict({k: ct.tensor(v.detach().numpy()) for k, v in src.state_dict().items()})


def _first(out: Any) -> Any:
    return out[0] if isinstance(out, tuple) else out


LAYERS = {
    "lstm": (lambda T: T.nn.LSTM(3, 4), (5, 2, 3)),
    "lstm_deep_bi_bf": (lambda T: T.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True), (2, 5, 3)),
    "lstm_unbatched": (lambda T: T.nn.LSTM(3, 4, num_layers=2), (5, 3)),
    "gru": (lambda T: T.nn.GRU(3, 4, num_layers=2), (5, 2, 3)),
    "gru_bi_bf": (lambda T: T.nn.GRU(3, 4, batch_first=True, bidirectional=True), (2, 5, 3)),
    "rnn_relu_bi": (lambda T: T.nn.RNN(3, 4, nonlinearity="relu", bidirectional=True), (5, 2, 3)),
    "rnn_nobias": (lambda T: T.nn.RNN(3, 4, bias=False), (5, 2, 3)),
    "lstm_cell": (lambda T: T.nn.LSTMCell(3, 4), (2, 3)),
    "gru_cell": (lambda T: T.nn.GRUCell(3, 4), (2, 3)),
    "rnn_cell": (lambda T: T.nn.RNNCell(3, 4, nonlinearity="relu"), (3,)),
    "encoder_layer": (lambda T: T.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0), (5, 2, 8)),
    "encoder_layer_prenorm_gelu_bf": (
        lambda T: T.nn.TransformerEncoderLayer(8, 4, 16, 0.0, "gelu", batch_first=True, norm_first=True),
        (2, 5, 8),
    ),
    "conv1d": (lambda T: T.nn.Conv1d(2, 4, 3), (3, 2, 7)),
    "conv1d_strided_groups": (lambda T: T.nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2, bias=False), (2, 4, 9)),
    "conv1d_same_dilated": (lambda T: T.nn.Conv1d(2, 3, 3, padding="same", dilation=2), (2, 2, 8)),
    "conv_transpose": (lambda T: T.nn.ConvTranspose2d(3, 4, 3), (2, 3, 5, 4)),
    "conv_transpose_strided": (
        lambda T: T.nn.ConvTranspose2d(4, 6, (3, 2), stride=2, padding=1, output_padding=1, groups=2, dilation=(1, 2)),
        (2, 4, 4, 5),
    ),
    "conv_transpose_nobias_unbatched": (lambda T: T.nn.ConvTranspose2d(2, 3, 2, stride=2, bias=False), (2, 3, 3)),
    "adaptive_avg_1x1": (lambda T: T.nn.AdaptiveAvgPool2d((1, 1)), (2, 3, 4, 6)),
    "adaptive_avg_uneven": (lambda T: T.nn.AdaptiveAvgPool2d((3, 4)), (2, 3, 7, 5)),
    "adaptive_avg_1d": (lambda T: T.nn.AdaptiveAvgPool1d(3), (2, 3, 7)),
    "avg_pool1d": (lambda T: T.nn.AvgPool1d(3, 2), (2, 3, 9)),
    "max_pool1d": (lambda T: T.nn.MaxPool1d(2), (2, 3, 8)),
    "group_norm": (lambda T: T.nn.GroupNorm(2, 4), (3, 4, 5)),
    "prelu": (lambda T: T.nn.PReLU(), (2, 3, 4)),
    "prelu_channels": (lambda T: T.nn.PReLU(3, init=0.1), (2, 3, 4)),
    "upsample_scale": (lambda T: T.nn.Upsample(scale_factor=2), (1, 2, 3, 3)),
    "upsample_size": (lambda T: T.nn.Upsample(size=(5, 7)), (1, 2, 3, 4)),
    "zero_pad2d": (lambda T: T.nn.ZeroPad2d((1, 2, 0, 1)), (1, 2, 3, 3)),
    "mish": (lambda T: T.nn.Mish(), (3, 4)),
    "hardswish": (lambda T: T.nn.Hardswish(), (3, 4)),
    "hardsigmoid": (lambda T: T.nn.Hardsigmoid(), (3, 4)),
    "logsigmoid": (lambda T: T.nn.LogSigmoid(), (3, 4)),
    "softsign": (lambda T: T.nn.Softsign(), (3, 4)),
    "tanhshrink": (lambda T: T.nn.Tanhshrink(), (3, 4)),
    "selu": (lambda T: T.nn.SELU(), (3, 4)),
    "celu": (lambda T: T.nn.CELU(0.5), (3, 4)),
    "relu6": (lambda T: T.nn.ReLU6(), (3, 4)),
    "hardtanh": (lambda T: T.nn.Hardtanh(-0.5, 0.5), (3, 4)),
    "glu": (lambda T: T.nn.GLU(), (3, 4)),
    "softmin": (lambda T: T.nn.Softmin(1), (3, 4)),
    "encoder": (
        lambda T: T.nn.TransformerEncoder(T.nn.TransformerEncoderLayer(8, 2, 16, 0.0), 2, enable_nested_tensor=False),
        (5, 2, 8),
    ),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_matches_torch(name):
    make, shape = LAYERS[name]
    theirs, mine = make(torch), make(ct)
    assert list(mine.state_dict()) == list(theirs.state_dict())
    assert repr(mine) == repr(theirs)
    _copy(theirs, mine)
    x = (RNG.standard_normal(shape) * 3).astype(np.float32)
    tx, cx = torch.tensor(x, requires_grad=True), ct.tensor(x, requires_grad=True)
    t_out, c_out = theirs(tx), mine(cx)
    (_first(t_out) ** 2).sum().backward()
    (_first(c_out) ** 2).sum().backward()
    np.testing.assert_allclose(cx.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-5, err_msg="input gradient")
    np.testing.assert_allclose(_first(c_out).detach().numpy(), _first(t_out).detach().numpy(), rtol=1e-5, atol=1e-6)
    if isinstance(t_out, tuple):
        for t_part, c_part in zip(t_out[1:], c_out[1:]):
            t_part = t_part if isinstance(t_part, tuple) else (t_part,)
            c_part = c_part if isinstance(c_part, tuple) else (c_part,)
            for a, b in zip(t_part, c_part):
                np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-5, atol=1e-6)
    grads = dict(theirs.named_parameters())
    for k, p in mine.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), grads[k].grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=k)


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_draws_torchs_init_bounds(name, monkeypatch):
    make, _ = LAYERS[name]
    want = []
    real = torch.Tensor.uniform_

    def spy_torch(self: Any, a: float = 0.0, b: float = 1.0, generator: Any = None) -> Any:
        want.append((tuple(self.shape), a, b))
        return real(self, a, b, generator=generator)

    monkeypatch.setattr(torch.Tensor, "uniform_", spy_torch)
    make(torch)
    got = []
    mine = _random.uniform_
    monkeypatch.setattr(
        _random, "uniform_", lambda t, a=0.0, b=1.0, g=None: got.append((tuple(t.shape), a, b)) or mine(t, a, b, g)
    )
    make(ct)
    assert got == want


def test_lstm_with_initial_state_and_planted_gate_order(monkeypatch):
    theirs, mine = torch.nn.LSTM(3, 4), ct.nn.LSTM(3, 4)
    _copy(theirs, mine)
    x = RNG.standard_normal((4, 2, 3)).astype(np.float32)
    h0 = RNG.standard_normal((1, 2, 4)).astype(np.float32)
    c0 = RNG.standard_normal((1, 2, 4)).astype(np.float32)
    t_out, (t_h, t_c) = theirs(torch.tensor(x), (torch.tensor(h0), torch.tensor(c0)))
    c_out, (c_h, c_c) = mine(ct.tensor(x), (ct.tensor(h0), ct.tensor(c0)))
    np.testing.assert_allclose(c_c.detach().numpy(), t_c.detach().numpy(), rtol=1e-5, atol=1e-6)
    # a wrong gate order (i, g, f, o) must be caught by the same comparison
    from chainrule.torch.nn import _rnn

    real_chunk = _rnn.ops.chunk

    def swapped(x: Any, n: int, dim: int = 0) -> Any:
        parts = real_chunk(x, n, dim=dim)
        return (parts[0], parts[2], parts[1], parts[3]) if n == 4 else parts

    monkeypatch.setattr(_rnn.ops, "chunk", swapped)
    bad, _ = mine(ct.tensor(x), (ct.tensor(h0), ct.tensor(c0)))
    assert not np.allclose(bad.detach().numpy(), t_out.detach().numpy(), atol=1e-3)


def test_multihead_attention_with_masks_matches_torch(monkeypatch):
    theirs, mine = torch.nn.MultiheadAttention(8, 2), ct.nn.MultiheadAttention(8, 2)
    assert list(mine.state_dict()) == list(theirs.state_dict()) and repr(mine) == repr(theirs)
    _copy(theirs, mine)
    q = RNG.standard_normal((5, 3, 8)).astype(np.float32)
    kv = RNG.standard_normal((6, 3, 8)).astype(np.float32)
    mask = np.triu(np.ones((5, 6), bool), 2)
    pad = np.zeros((3, 6), bool)
    pad[1, 4:] = True
    t_out, t_w = theirs(
        torch.tensor(q),
        torch.tensor(kv),
        torch.tensor(kv),
        attn_mask=torch.tensor(mask),
        key_padding_mask=torch.tensor(pad),
    )
    c_out, c_w = mine(
        ct.tensor(q), ct.tensor(kv), ct.tensor(kv), attn_mask=ct.tensor(mask), key_padding_mask=ct.tensor(pad)
    )
    np.testing.assert_allclose(c_out.detach().numpy(), t_out.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c_w.detach().numpy(), t_w.detach().numpy(), rtol=1e-5, atol=1e-7)
    t_out.sum().backward()
    c_out.sum().backward()
    for k, p in mine.named_parameters():
        np.testing.assert_allclose(
            p.grad.numpy(), dict(theirs.named_parameters())[k].grad.numpy(), rtol=1e-4, atol=1e-5
        )
    _, t_heads = theirs(torch.tensor(q), torch.tensor(q), torch.tensor(q), average_attn_weights=False)
    _, c_heads = mine(ct.tensor(q), ct.tensor(q), ct.tensor(q), average_attn_weights=False)
    np.testing.assert_allclose(c_heads.detach().numpy(), t_heads.detach().numpy(), rtol=1e-5, atol=1e-7)


def test_multihead_attention_draws_in_torchs_order(monkeypatch):
    want, got = [], []
    real = torch.Tensor.uniform_
    monkeypatch.setattr(
        torch.Tensor,
        "uniform_",
        lambda self, a=0.0, b=1.0, generator=None: (
            want.append((tuple(self.shape), a, b)) or real(self, a, b, generator=generator)
        ),
    )
    torch.nn.MultiheadAttention(8, 2)
    mine = _random.uniform_
    monkeypatch.setattr(
        _random, "uniform_", lambda t, a=0.0, b=1.0, g=None: got.append((tuple(t.shape), a, b)) or mine(t, a, b, g)
    )
    ct.nn.MultiheadAttention(8, 2)
    assert [s for s, _, _ in got] == [s for s, _, _ in want]
    np.testing.assert_allclose([b for _, _, b in got], [b for _, _, b in want], rtol=1e-12)
