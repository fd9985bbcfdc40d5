"""Training learns, and the ``chainrule train`` command: options, checkpoints, Ctrl-C and --resume."""

from __future__ import annotations

import io

import numpy as np
import pytest

import chainrule as cr
from chainrule import data, nn, optim
from chainrule import train as train_mod
from chainrule.cli import main


def test_bundled_digits():
    x, y = data.load_digits()
    assert x.shape == (1797, 64) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() == 1.0
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    xtr, ytr, xte, yte = data.train_test_split(x, y, 0.2, seed=0)
    assert len(xte) == 359 and len(xtr) == 1438  # round(0.2 * 1797)
    assert len(np.unique(np.concatenate([xtr, xte]), axis=0)) == len(np.unique(x, axis=0))  # a partition


def test_moons_generator():
    x, y = data.make_moons(200, noise=0.0, rng=0)
    assert x.shape == (200, 2) and sorted(np.bincount(y)) == [100, 100]
    upper = x[y == 0]
    np.testing.assert_allclose(np.hypot(upper[:, 0], upper[:, 1]), 1.0, atol=1e-6)  # a unit half circle
    np.testing.assert_array_equal(data.make_moons(50, rng=3)[0], data.make_moons(50, rng=3)[0])


def test_a_short_training_loop_learns_digits():
    x, y = data.load_digits()
    xtr, ytr, xte, yte = data.train_test_split(x, y, 0.2, seed=0)
    model = nn.MLP([64, 32, 10], rng=0)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(0)
    for _ in range(3):
        order = rng.permutation(len(xtr))
        for start in range(0, len(xtr), 64):
            idx = order[start : start + 64]
            loss = nn.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with cr.no_grad():
        acc = np.mean(np.argmax(model(xte).data, axis=1) == yte)
    assert acc > 0.85  # chance is 0.1


def test_fit_moons_with_hinge_loss():
    cfg = train_mod.Config(dataset="moons", hidden=[16, 16], epochs=60, lr=0.1, optimizer="sgd", batch_size=100)
    model, history, state, interrupted = train_mod.fit(cfg, quiet=True)
    assert interrupted is None and state["epoch"] == 60
    assert history.test_acc[-1] > 0.9  # chance is 0.5
    assert history.loss[-1] < history.loss[0]


def run_cli(*argv):
    import contextlib

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["train", *argv])
    return code, out.getvalue()


def test_cli_trains_and_writes_a_checkpoint(tmp_path):
    path = tmp_path / "d.npz"
    code, text = run_cli("--epochs", "2", "--hidden", "32", "--batch-size", "128", "--checkpoint", str(path))
    assert code == 0
    assert "epoch 1/2" in text and "epoch 2/2" in text and "test accuracy" in text
    state = cr.load(path)
    assert state["epoch"] == 2 and state["config"]["hidden"] == [32] and state["config"]["batch_size"] == 128
    model = nn.MLP([64, 32, 10])
    model.load_state_dict(state["model"])
    x, y = data.load_digits()
    with cr.no_grad():
        acc = np.mean(np.argmax(model(x).data, axis=1) == y)
    assert acc > 0.7
    assert len(state["history"]["test_acc"]) == 2


def test_cli_options_parse():
    parser = train_mod.argparse.ArgumentParser()
    train_mod.add_arguments(parser)
    args = parser.parse_args(
        "--dataset moons --hidden 8,4 --epochs 3 --lr 0.5 --optimizer adamw --batch-size 10 --seed 4 "
        "--schedule step --weight-decay 0.01".split()
    )
    cfg = train_mod._config(args, None)
    assert cfg == train_mod.Config("moons", [8, 4], 3, 0.5, "adamw", 10, 4, "step", 0.01)
    defaults = train_mod._config(parser.parse_args([]), None)
    assert defaults.dataset == "digits" and defaults.optimizer == "adam" and defaults.hidden == [64]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--hidden", "a,b"], "hidden sizes must be comma-separated integers"),
        (["--epochs", "0"], "expected a positive integer"),
        (["--optimizer", "lbfgs"], "invalid choice"),
        (["--lr", "-1"], "expected a number >= 0"),
        (["--seed", "-3"], "non-negative integer seed"),
    ],
)
def test_cli_rejects_bad_options(argv, message, capsys):
    code = main(["train", *argv])
    assert code == 2
    assert message in capsys.readouterr().err


def test_interrupt_saves_last_epoch_and_resume_matches_a_straight_run(tmp_path, monkeypatch):
    common = ["--hidden", "16", "--batch-size", "256", "--epochs", "4"]
    straight = tmp_path / "straight.npz"
    assert run_cli(*common, "--checkpoint", str(straight))[0] == 0

    calls = {"n": 0}
    real_accuracy = train_mod.accuracy

    def interrupt_in_epoch_3(*args):  # accuracy runs at the end of each epoch: epoch 3 never completes
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_accuracy(*args)

    monkeypatch.setattr(train_mod, "accuracy", interrupt_in_epoch_3)
    path = tmp_path / "run.npz"
    code, text = run_cli(*common, "--checkpoint", str(path))
    assert code == train_mod.EXIT_INTERRUPTED == 130
    assert "interrupted: saved epoch 2" in text
    assert cr.load(path)["epoch"] == 2
    monkeypatch.setattr(train_mod, "accuracy", real_accuracy)

    code, text = run_cli("--resume", "--epochs", "4", "--checkpoint", str(path))
    assert code == 0 and "resuming from" in text and "epoch 3/4" in text and "epoch 1/4" not in text
    a, b = cr.load(path), cr.load(straight)
    assert a["epoch"] == 4 and a["config"] == b["config"]
    for k in b["model"]:
        np.testing.assert_array_equal(a["model"][k].data, b["model"][k].data)  # bit-identical to no interruption
    assert a["history"]["test_acc"] == b["history"]["test_acc"]


def test_resume_errors(tmp_path):
    missing = tmp_path / "none.npz"
    code, _ = run_cli("--resume", "--checkpoint", str(missing))
    assert code == 2
    path = tmp_path / "m.npz"
    assert run_cli("--dataset", "moons", "--epochs", "2", "--checkpoint", str(path), "--quiet")[0] == 0
    import contextlib

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code, _ = run_cli("--resume", "--hidden", "8", "--checkpoint", str(path))
    assert code == 2 and "--hidden [8] (checkpoint: [16, 16])" in err.getvalue()
    state = cr.load(path)
    state["model"]["0.weight"] = np.zeros((3, 3), np.float32)  # a consistent file, but not this network
    cr.save(state, path)
    with contextlib.redirect_stderr(err):
        assert run_cli("--resume", "--epochs", "3", "--checkpoint", str(path))[0] == 2
    assert "does not fit this run" in err.getvalue() and "'0.weight' has shape (3, 3)" in err.getvalue()
    cr.save({"model": {}}, path)
    with contextlib.redirect_stderr(err):
        assert run_cli("--resume", "--checkpoint", str(path))[0] == 2
    assert "not one written by chainrule train" in err.getvalue()


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "curve.png"
    code, text = run_cli(
        "--dataset", "moons", "--epochs", "3", "--checkpoint", str(tmp_path / "c.npz"), "--plot", str(png)
    )
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
