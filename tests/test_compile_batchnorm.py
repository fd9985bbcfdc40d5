"""cr.compile of training steps with BatchNorm in training mode: the replay repeats the running-statistics update.

Eager and compiled copies of the same model take the same batches; after every step the loss, every
parameter and every buffer (running_mean, running_var, num_batches_tracked) must be equal bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.compile import CompileError

F = cr.nn.functional


def _cnn(momentum=0.1, dtype=np.float32):
    nn = cr.nn
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, rng=0, dtype=dtype),
        nn.BatchNorm2d(4, momentum=momentum, dtype=dtype),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, padding=1, rng=1, dtype=dtype),
        nn.BatchNorm2d(6, momentum=momentum, dtype=dtype),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(6 * 4 * 4, 3, rng=2, dtype=dtype),
    )


def _step(model, opt):
    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def _state(model):
    return {k: np.array(v.data) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("momentum", [0.1, None], ids=["momentum 0.1", "cumulative average"])
def test_compiled_cnn_step_updates_running_statistics_as_eager(momentum):
    eager_model, compiled_model = _cnn(momentum), _cnn(momentum)
    eager = _step(eager_model, cr.optim.SGD(eager_model.parameters(), lr=0.05, momentum=0.9))
    compiled = cr.compile(_step(compiled_model, cr.optim.SGD(compiled_model.parameters(), lr=0.05, momentum=0.9)))
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = cr.tensor(rng.standard_normal((6, 3, 8, 8)).astype(np.float32) * 2 + 1)
        y = cr.tensor(rng.integers(0, 3, 6))
        assert eager(x, y).item() == compiled(x, y).item()
        a, b = _state(eager_model), _state(compiled_model)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert compiled.traces == 1 and compiled.replays == 4
    assert int(compiled_model[1].num_batches_tracked.data) == 5
    assert not np.allclose(_state(compiled_model)["1.running_mean"], 0)  # the statistics did move
    assert "BatchNorm running statistics" in compiled.code()


def test_functional_batch_norm_with_running_statistics_compiles():
    rm, rv = cr.tensor(np.zeros(3)), cr.tensor(np.ones(3))
    rm2, rv2 = cr.tensor(np.zeros(3)), cr.tensor(np.ones(3))
    w = cr.tensor(np.ones(3), requires_grad=True)

    def f(x, rm, rv):
        return (F.batch_norm(x, rm, rv, w, None, training=True, momentum=0.3) ** 2).sum()

    compiled = cr.compile(lambda x: f(x, rm2, rv2))
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = cr.tensor(rng.standard_normal((4, 3, 2)))
        assert f(x, rm, rv).item() == compiled(x).item()
        np.testing.assert_array_equal(rm.data, rm2.data)
        np.testing.assert_array_equal(rv.data, rv2.data)
    assert compiled.replays == 2


def test_eval_replay_follows_statistics_that_training_steps_update():
    """A compiled evaluation step sees the running statistics that (compiled) training steps update in place."""
    model = _cnn()
    train = cr.compile(_step(model, cr.optim.SGD(model.parameters(), lr=0.05)))

    def evaluate(x):
        return model(x)

    infer = cr.compile(evaluate)
    rng = np.random.default_rng(2)
    x = cr.tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    seen = []
    for _ in range(3):
        model.train()
        batch = cr.tensor(rng.standard_normal((6, 3, 8, 8)).astype(np.float32) + 1)
        train(batch, cr.tensor(rng.integers(0, 3, 6)))
        model.eval()
        got = infer(x).numpy()
        np.testing.assert_array_equal(got, model(x).numpy())
        seen.append(got)
    assert infer.replays == 2 and train.replays == 2
    assert not np.array_equal(seen[0], seen[2])


def test_a_replay_that_skipped_the_update_would_be_caught(monkeypatch):
    """The comparison above can fail: a recorded update that does nothing on replays leaves stale statistics."""
    from chainrule.compile import schedule

    real = schedule.Writer.update

    def dropped(self, label, fn, stats):
        real(self, label, lambda *values: None, stats)

    monkeypatch.setattr(schedule.Writer, "update", dropped)
    eager_model, compiled_model = _cnn(), _cnn()
    eager = _step(eager_model, cr.optim.SGD(eager_model.parameters(), lr=0.05))
    compiled = cr.compile(_step(compiled_model, cr.optim.SGD(compiled_model.parameters(), lr=0.05)))
    rng = np.random.default_rng(0)
    for _ in range(2):
        x = cr.tensor(rng.standard_normal((6, 3, 8, 8)).astype(np.float32))
        y = cr.tensor(rng.integers(0, 3, 6))
        eager(x, y), compiled(x, y)
    assert not np.array_equal(_state(eager_model)["1.running_mean"], _state(compiled_model)["1.running_mean"])


@pytest.mark.parametrize("when", ["before", "after"])
def test_in_place_buffer_writes_by_hand_are_still_refused(when):
    """Running statistics written by hand inside the function (before or after the layer's own update) would be
    lost on replays: refused, although the layer's recorded update writes the same buffer."""
    model = _cnn()

    def f(x):
        if when == "before":
            with cr.no_grad():
                model[1].running_mean.zero_()
        out = model(x).sum()
        if when == "after":
            with cr.no_grad():
                model[1].running_var.fill_(1.0)
        return out

    x = cr.tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32))
    with pytest.raises(CompileError, match="updated in place during the call"):
        cr.compile(f)(x)
