"""``chainrule train --model cnn``: options, the model it builds, and a checkpoint that resumes as a CNN."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule import train as train_mod
from chainrule.cli import main


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["train", *argv])
    return code, out.getvalue(), err.getvalue()


def _parse(*argv):
    parser = train_mod.argparse.ArgumentParser()
    train_mod.add_arguments(parser)
    return train_mod._config(parser.parse_args(list(argv)), None)


def test_model_option_defaults():
    assert _parse().model == "mlp"  # the default stays the MLP
    cfg = _parse("--model", "cnn")
    assert (cfg.model, cfg.lr, cfg.epochs) == ("cnn", 0.003, 15)
    assert _parse("--model", "cnn", "--lr", "0.01").lr == 0.01  # given options still win


def test_the_cnn_sees_images():
    cfg = train_mod.Config(epochs=2, model="cnn", lr=0.003)
    model = train_mod.build_model(cfg, 64, 10)
    kinds = [type(m).__name__ for m in model]
    assert kinds[:9] == [
        "Unflatten",
        "Conv2d",
        "BatchNorm2d",
        "ReLU",
        "Conv2d",
        "BatchNorm2d",
        "ReLU",
        "MaxPool2d",
        "Flatten",
    ]
    out = model(cr.tensor(np.zeros((3, 64), np.float32)))
    assert out.shape == (3, 10) and out.dtype == np.float32


def test_checkpoint_records_the_model_and_resume_rebuilds_it(tmp_path):
    path = str(tmp_path / "cnn.npz")
    fast = ("--batch-size", "128")
    code, text, _ = run_cli("--model", "cnn", "--epochs", "1", *fast, "--checkpoint", path)
    assert code == 0 and "CNN conv 16@3" in text
    state = cr.load(path)
    assert state["config"]["model"] == "cnn" and "0.weight" not in state["model"] and "1.weight" in state["model"]
    assert state["model"]["2.num_batches_tracked"].item() == 12  # BatchNorm's running statistics are saved
    code, text, err = run_cli("--resume", "--epochs", "2", "--checkpoint", path)  # no --model: from the checkpoint
    assert code == 0, err
    assert "resuming from" in text and "CNN conv" in text and "epoch 2/2" in text
    resumed = cr.load(path)
    assert resumed["epoch"] == 2
    straight = str(tmp_path / "straight.npz")
    assert run_cli("--model", "cnn", "--epochs", "2", *fast, "--checkpoint", straight)[0] == 0
    assert resumed["history"]["test_acc"][-1] > 0.9  # it learns: chance is 0.1
    for key, value in cr.load(straight)["model"].items():  # running statistics restored: the same end point
        np.testing.assert_array_equal(resumed["model"][key].data, value.data, err_msg=key)
    code, _, err = run_cli("--resume", "--model", "mlp", "--epochs", "3", "--checkpoint", path)
    assert code == 2 and "--model mlp (checkpoint: cnn)" in err


def test_checkpoints_from_before_model_resume_as_mlp(tmp_path):
    path = str(tmp_path / "old.npz")
    assert run_cli("--epochs", "1", "--hidden", "8", "--checkpoint", path)[0] == 0
    state = cr.load(path)
    del state["config"]["model"]  # what a checkpoint written before --model holds
    cr.save(state, path)
    code, text, err = run_cli("--resume", "--epochs", "2", "--checkpoint", path)
    assert code == 0, err
    assert "MLP 64 → 8 → 10" in text or "MLP 64 -> 8 -> 10" in text
    model = nn.MLP([64, 8, 10])
    model.load_state_dict(cr.load(path)["model"])


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--model", "cnn", "--dataset", "moons"], "needs image data"),
        (["--model", "rnn"], "invalid choice"),
        (["--model", "cnn", "--distributed"], "running statistics"),
    ],
)
def test_bad_model_options_exit_2_without_a_traceback(argv, message):
    code, _, err = run_cli(*argv, "--epochs", "1")
    assert code == 2
    assert "Traceback" not in err and message in err
