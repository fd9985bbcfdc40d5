"""``chainrule train`` against crafted checkpoints, unwritable paths and badly timed Ctrl-C."""

from __future__ import annotations

import contextlib
import copy
import io
import os
import signal

import numpy as np
import pytest

import chainrule as cr
from chainrule import checkpoint, train_config
from chainrule import train as train_mod
from chainrule.cli import main


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["train", *argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A real two-epoch moons checkpoint (Adam, so the optimizer state has arrays and a step count)."""
    path = tmp_path_factory.mktemp("train") / "m.npz"
    code, _, _ = run_cli(
        "--dataset", "moons", "--epochs", "2", "--optimizer", "adam", "--checkpoint", str(path), "--quiet"
    )
    assert code == 0
    return cr.load(path)


def _set(path, value):
    def change(state):
        node = state
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value

    return change


def _drop(path):
    def change(state):
        node = state
        for k in path[:-1]:
            node = node[k]
        del node[path[-1]]

    return change


CRAFTED = {
    "epoch=inf": _set(["epoch"], float("inf")),
    "epoch=1.5": _set(["epoch"], 1.5),
    "epoch=-1": _set(["epoch"], -1),
    "epoch=True": _set(["epoch"], True),
    "epoch beyond epochs": _set(["epoch"], 50),
    "epoch='2'": _set(["epoch"], "2"),
    "batch_size=0": _set(["config", "batch_size"], 0),
    "batch_size=10**12": _set(["config", "batch_size"], 10**12),
    "batch_size=1.0": _set(["config", "batch_size"], 1.0),
    "hidden='abc'": _set(["config", "hidden"], "abc"),
    "hidden=[]": _set(["config", "hidden"], []),
    "hidden=[0]": _set(["config", "hidden"], [0]),
    "hidden=[40000, 40000]": _set(["config", "hidden"], [40000, 40000]),
    "hidden=[4096]*16": _set(["config", "hidden"], [4096] * 16),
    "hidden=[16.0]": _set(["config", "hidden"], [16.0]),
    "lr='0.01'": _set(["config", "lr"], "0.01"),
    "lr=nan": _set(["config", "lr"], float("nan")),
    "lr=-1": _set(["config", "lr"], -1.0),
    "lr=inf": _set(["config", "lr"], float("inf")),
    "weight_decay=None": _set(["config", "weight_decay"], None),
    "epochs=0": _set(["config", "epochs"], 0),
    "epochs=10**9": _set(["config", "epochs"], 10**9),
    "seed=-5": _set(["config", "seed"], -5),
    "seed=2**70": _set(["config", "seed"], 2**70),
    "dataset='mnist'": _set(["config", "dataset"], "mnist"),
    "optimizer='lbfgs'": _set(["config", "optimizer"], "lbfgs"),
    "schedule=['cosine']": _set(["config", "schedule"], ["cosine"]),
    "config missing lr": _drop(["config", "lr"]),
    "config extra field": _set(["config", "eval"], "os.system('x')"),
    "config a list": _set(["config"], [1, 2]),
    "history not a dict": _set(["history"], [1]),
    "history too short": _set(["history", "loss"], [0.5]),
    "history of strings": _set(["history", "loss"], ["a", "b"]),
    "no history": _drop(["history"]),
    "model a list": _set(["model"], [1]),
    "model wrong shape": _set(["model", "0.weight"], np.zeros((3, 3))),
    "model missing key": _drop(["model", "0.weight"]),
    "optimizer lr a string": _set(["optimizer", "param_groups", 0, "lr"], "fast"),
    "optimizer betas too short": _set(["optimizer", "param_groups", 0, "betas"], (0.9,)),
    "optimizer eps inf": _set(["optimizer", "param_groups", 0, "eps"], float("inf")),
    "optimizer step a string": _set(["optimizer", "state", 0, "step"], "abc"),
    "optimizer step negative": _set(["optimizer", "state", 0, "step"], -3),
    "optimizer state wrong shape": _set(["optimizer", "state", 0, "exp_avg"], np.zeros(7)),
    "optimizer state for a stranger": _set(["optimizer", "state", 99], {"step": 1}),
    "optimizer group lists others": _set(["optimizer", "param_groups", 0, "params"], [9, 8]),
    "optimizer no groups": _set(["optimizer", "param_groups"], []),
    "extra top-level entry": _set(["note"], "hi"),
    # issue 26, round 3: every field checked before anything runs
    "model='evil'": _set(["config", "model"], "evil"),
    "model=['mlp']": _set(["config", "model"], ["mlp"]),
    "optimizer betas=(2, -1)": _set(["optimizer", "param_groups", 0, "betas"], (2.0, -1.0)),
    "optimizer betas=(nan, 0.999)": _set(["optimizer", "param_groups", 0, "betas"], (float("nan"), 0.999)),
    "optimizer betas=(0.5, 0.5)": _set(["optimizer", "param_groups", 0, "betas"], (0.5, 0.5)),  # not this run's
    "optimizer eps=0": _set(["optimizer", "param_groups", 0, "eps"], 0.0),
    "optimizer eps=-1": _set(["optimizer", "param_groups", 0, "eps"], -1.0),
    "optimizer lr=-0.1": _set(["optimizer", "param_groups", 0, "lr"], -0.1),
    "optimizer lr=1e300": _set(["optimizer", "param_groups", 0, "lr"], 1e300),
    "optimizer initial_lr not --lr": _set(["optimizer", "param_groups", 0, "initial_lr"], 0.5),
    "optimizer weight_decay=-1": _set(["optimizer", "param_groups", 0, "weight_decay"], -1.0),
    "optimizer weight_decay not the run's": _set(["optimizer", "param_groups", 0, "weight_decay"], 0.5),
    "optimizer extra setting": _set(["optimizer", "param_groups", 0, "amsgrad"], True),
    "optimizer exp_avg nan": _set(["optimizer", "state", 0, "exp_avg"], np.full((16, 2), np.nan, np.float32)),
    "optimizer exp_avg_sq negative": _set(["optimizer", "state", 0, "exp_avg_sq"], -np.ones((16, 2), np.float32)),
    "optimizer exp_avg float64": _set(["optimizer", "state", 0, "exp_avg"], np.zeros((16, 2))),
    "optimizer exp_avg a string": _set(["optimizer", "state", 0, "exp_avg"], "zeros"),
    "optimizer state without exp_avg": _drop(["optimizer", "state", 0, "exp_avg"]),
    "optimizer step 2**70": _set(["optimizer", "state", 0, "step"], 2**70),
    "weights all nan": _set(["model", "0.weight"], cr.tensor(np.full((16, 2), np.nan, np.float32))),
    "a bias +inf": _set(["model", "0.bias"], cr.tensor(np.full(16, np.inf, np.float32))),
    "weights float64": _set(["model", "0.weight"], cr.tensor(np.zeros((16, 2)))),
    "weights int32": _set(["model", "0.weight"], cr.tensor(np.zeros((16, 2), np.int32))),
    "weights a string": _set(["model", "0.weight"], "w"),
    "weights a number": _set(["model", "0.bias"], 0.5),
    "history loss nan": _set(["history", "loss"], [float("nan"), 0.5]),
    "history accuracy 2": _set(["history", "test_acc"], [0.5, 2.0]),
    "history seconds -1": _set(["history", "seconds"], [0.1, -1.0]),
}


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_crafted_checkpoints_are_refused_with_one_line_and_no_traceback(tmp_path, saved, name, monkeypatch):
    state = copy.deepcopy(saved)
    CRAFTED[name](state)
    path = tmp_path / "crafted.npz"
    checkpoint.save(state, path)
    trained = []
    real_fit = train_mod.fit
    monkeypatch.setattr(train_mod, "fit", lambda *a, **k: trained.append(1) or real_fit(*a, **k))
    code, out, err = run_cli("--resume", "--epochs", "3", "--checkpoint", str(path), "--quiet")
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("chainrule train: --resume"), err
    assert "Traceback" not in err + out
    assert cr.load(path)["epoch"] == state["epoch"]  # the file is left as it was


def test_a_refusal_names_the_field(tmp_path, saved):
    cases = {
        "model='evil'": "the run configuration's 'model': expected one of mlp, cnn, got 'evil'",
        "optimizer betas=(2, -1)": "optimizer setting 'betas' is (2.0, -1.0); it must be two numbers in [0, 1)",
        "optimizer eps=0": "optimizer setting 'eps' is 0.0; it must be a number in (0, 1]",
        "optimizer weight_decay not the run's": "optimizer setting 'weight_decay' is 0.5; this run's is 0.0001",
        "weights all nan": "the model's '0.weight' holds NaN or infinite values",
        "weights float64": "the model's '0.weight' has dtype float64; this model's has dtype float32",
        "optimizer exp_avg_sq negative": "'exp_avg_sq' of parameter 0 holds negative values",
    }
    for name, message in cases.items():
        state = copy.deepcopy(saved)
        CRAFTED[name](state)
        checkpoint.save(state, tmp_path / "c.npz")
        code, _, err = run_cli("--resume", "--epochs", "3", "--checkpoint", str(tmp_path / "c.npz"), "--quiet")
        assert code == 2 and message in err, (name, err)


@pytest.fixture(scope="module")
def saved_sgd(tmp_path_factory):
    path = tmp_path_factory.mktemp("train") / "s.npz"
    argv = ("--dataset", "moons", "--epochs", "2", "--optimizer", "sgd", "--schedule", "none")
    assert run_cli(*argv, "--checkpoint", str(path), "--quiet")[0] == 0
    return cr.load(path)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"momentum": 1.5}, "'momentum' is 1.5; it must be a number in [0, 1)"),
        ({"momentum": 0.5}, "'momentum' is 0.5; this run's is 0.9"),
        ({"dampening": -1.0}, "'dampening' is -1.0; it must be a number in [0, 1]"),
        ({"nesterov": False}, "'nesterov' is False; this run's is True"),
        ({"lr": 0.2}, "starts from learning rate 0.2; this run's --lr is 0.1"),  # no schedule: the rate is --lr
        ({"lr": 5.0, "initial_lr": 0.1}, "starts from learning rate 5.0"),  # ... whatever initial_lr says
    ],
)
def test_sgd_settings_are_range_checked(tmp_path, saved_sgd, change, message):
    state = copy.deepcopy(saved_sgd)
    state["optimizer"]["param_groups"][0].update(change)
    checkpoint.save(state, tmp_path / "c.npz")
    code, _, err = run_cli("--resume", "--epochs", "3", "--checkpoint", str(tmp_path / "c.npz"), "--quiet")
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_every_optimizer_setting_has_a_range():
    from chainrule import nn, optim
    from chainrule.train_config import CONFIG_CHECKS
    from chainrule.train_resume import OPTIMIZER_SETTINGS

    for cls in (optim.SGD, optim.Adam, optim.AdamW, optim.RMSprop):
        assert set(cls(nn.Linear(2, 2).parameters()).defaults) <= set(OPTIMIZER_SETTINGS)
    assert set(CONFIG_CHECKS) == set(train_mod.Config.__dataclass_fields__)


def test_a_checkpoint_from_before_model_existed_resumes_as_mlp(tmp_path, saved):
    state = copy.deepcopy(saved)
    del state["config"]["model"]
    checkpoint.save(state, tmp_path / "old.npz")
    code, _, err = run_cli("--resume", "--epochs", "3", "--checkpoint", str(tmp_path / "old.npz"), "--quiet")
    assert code == 0 and err == "" and cr.load(tmp_path / "old.npz")["config"]["model"] == "mlp"


def test_training_that_turns_non_finite_stops_and_keeps_the_good_checkpoint(tmp_path, saved):
    """Finite but huge weights (a legal file) overflow float32 in the first step: exit 1, the file untouched."""
    state = copy.deepcopy(saved)
    state["model"] = {k: cr.tensor(np.full(v.shape, 1e30, np.float32)) for k, v in state["model"].items()}
    path = tmp_path / "huge.npz"
    checkpoint.save(state, path)
    before = path.read_bytes()
    with np.errstate(all="ignore"):
        code, out, err = run_cli("--resume", "--epochs", "4", "--checkpoint", str(path), "--quiet")
    assert code == 1 and "training diverged in epoch 3: the loss of batch 1 of 1 is inf" in err, err
    assert f"{path} was not overwritten" in err and "Traceback" not in err and out == ""
    assert path.read_bytes() == before


@pytest.mark.parametrize("compiled", [True, False])
def test_a_fresh_run_that_diverges_saves_nothing(tmp_path, monkeypatch, compiled):
    real = train_mod.load_data

    def poisoned(dataset):
        x, y, xt, yt = real(dataset)
        x = x.copy()
        x[5, 0] = np.inf  # one bad sample: its batch's loss is not finite
        return x, y, xt, yt

    monkeypatch.setattr(train_mod, "load_data", poisoned)
    path = tmp_path / "ck.npz"
    flag = "--compile" if compiled else "--no-compile"
    with np.errstate(all="ignore"):
        code, out, err = run_cli("--epochs", "2", flag, "--checkpoint", str(path), "--quiet")
    assert code == 1 and "training diverged in epoch 1: the loss of batch" in err and err.count("\n") == 1, err
    assert not path.exists()


def test_the_unchanged_checkpoint_resumes(tmp_path, saved):
    path = tmp_path / "ok.npz"
    checkpoint.save(saved, path)
    code, out, err = run_cli("--resume", "--epochs", "3", "--checkpoint", str(path), "--quiet")
    assert code == 0 and err == "" and cr.load(path)["epoch"] == 3


def test_flags_and_saved_config_share_one_validator():
    parser = train_mod.argparse.ArgumentParser()
    train_mod.add_arguments(parser)
    for flag, text, value in [("--hidden", "40000,40000", [40000, 40000]), ("--batch-size", "0", 0)]:
        with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
            parser.parse_args([flag, text])
        key = flag[2:].replace("-", "_")
        with pytest.raises(ValueError):
            train_config.CONFIG_CHECKS[key](value)
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        parser.parse_args(["--lr", "inf"])  # the flag used to accept inf


@pytest.mark.parametrize(
    "where,message",
    [
        ("nodir/x.npz", "the directory nodir does not exist"),
        (".", "is a directory"),
    ],
)
def test_unwritable_checkpoint_path_is_refused_before_training(tmp_path, monkeypatch, where, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(train_mod, "fit", lambda *a, **k: pytest.fail("trained before checking the path"))
    code, out, err = run_cli("--dataset", "moons", "--epochs", "1", "--checkpoint", where)
    assert code == 2 and message in err and err.count("\n") == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_as_checkpoint_is_refused_with_cr_saves_own_rule(tmp_path, monkeypatch):
    os.mkfifo(tmp_path / "ck.npz")
    os.symlink("ck.npz", tmp_path / "link.npz")
    monkeypatch.setattr(train_mod, "fit", lambda *a, **k: pytest.fail("trained before checking the path"))
    for name in ("ck.npz", "link.npz"):
        code, _, err = run_cli("--dataset", "moons", "--checkpoint", str(tmp_path / name))
        assert code == 2 and "is a FIFO (named pipe), not a regular file" in err and err.count("\n") == 1
    assert train_mod._writable_path_problem(str(tmp_path / "ck.npz")) == str(
        pytest.raises(checkpoint.NotAFileError, checkpoint.save, {}, tmp_path / "ck.npz").value
    ).removeprefix("save: ")  # the one rule, not a twin


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_a_symlinked_checkpoint_is_written_through(tmp_path):
    os.symlink("real.npz", tmp_path / "link.npz")
    code, _, err = run_cli("--dataset", "moons", "--epochs", "1", "--checkpoint", str(tmp_path / "link.npz"), "--quiet")
    assert code == 0 and err == ""
    assert os.path.islink(tmp_path / "link.npz") and cr.load(tmp_path / "real.npz")["epoch"] == 1


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_directory_is_refused_before_training(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    monkeypatch.setattr(train_mod, "fit", lambda *a, **k: pytest.fail("trained before checking the path"))
    code, _, err = run_cli("--dataset", "moons", "--checkpoint", str(ro / "x.npz"))
    assert code == 2 and "cannot write in" in err


def test_ctrl_c_during_start_up_exits_130_without_a_traceback(monkeypatch):
    def interrupted(*a):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "load_data", interrupted)
    code, out, err = run_cli("--dataset", "moons", "--checkpoint", os.devnull + "-never")
    assert code == 130 and "interrupted" in err and "Traceback" not in out + err


def test_ctrl_c_while_the_commands_are_imported_exits_130(monkeypatch):
    import chainrule.cli as cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["train"]) == 130


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs SIGINT")
@pytest.mark.parametrize("when", ["interrupt-save", "final-save"])
def test_a_second_ctrl_c_does_not_abort_the_save(tmp_path, monkeypatch, when):
    """Ctrl-C arrives while the checkpoint is written: the save completes and the command exits 130."""
    real_save = checkpoint.save
    hits = []

    def save_with_ctrl_c(state, path):
        os.kill(os.getpid(), signal.SIGINT)  # delivered to the main thread right away
        for _ in range(1000):  # give the handler bytecode boundaries to run at
            pass
        hits.append(state["epoch"])
        real_save(state, path)

    monkeypatch.setattr(checkpoint, "save", save_with_ctrl_c)
    if when == "interrupt-save":
        calls = {"n": 0}
        real_accuracy = train_mod.accuracy

        def interrupt_in_epoch_2(*args):
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt
            return real_accuracy(*args)

        monkeypatch.setattr(train_mod, "accuracy", interrupt_in_epoch_2)
    path = tmp_path / "ck.npz"
    code, out, err = run_cli("--dataset", "moons", "--epochs", "3", "--checkpoint", str(path), "--quiet")
    assert code == 130 and "Traceback" not in out + err
    want = 1 if when == "interrupt-save" else 3
    assert hits == [want] and cr.load(path)["epoch"] == want
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_a_plot_path_that_cannot_be_written_is_refused_before_training(tmp_path, capsys, monkeypatch):
    from chainrule.cli import main

    monkeypatch.chdir(tmp_path)  # where the default checkpoint would be written
    assert main(["train", "--epochs", "1", "--plot", str(tmp_path / "nodir" / "p.png")]) == 2
    assert "--plot: the directory" in capsys.readouterr().err
    assert main(["train", "--epochs", "1", "--plot", str(tmp_path / "p.txt")]) == 2
    assert "must end in one of .png" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.npz"))  # nothing trained, nothing saved
