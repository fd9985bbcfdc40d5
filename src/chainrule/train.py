"""``chainrule train``: train an MLP on the bundled digits (or two moons) and watch backprop learn.

``chainrule train`` with no options trains ``MLP([64, 64, 10])`` on the UCI
digits with Adam and a cosine schedule, a fixed seed and a fixed 80/20 split,
prints a line per epoch (a live bar on a terminal), reports the held-out test
accuracy, and saves a checkpoint.  ``--dataset moons`` is the micrograd demo:
a small ReLU MLP with the max-margin hinge loss on two moons.  ``--model cnn``
trains a small convolutional net on the digits instead (as 1×8×8 images).

Ctrl-C stops training: the state after the last complete epoch is saved to the
checkpoint and the command exits with status 130 (128 + SIGINT, the shell
convention for an interrupted command); ``--resume`` continues from it.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, TextIO

import numpy as np

EXIT_INTERRUPTED = 130


class ResumeError(ValueError):
    """A checkpoint given to --resume does not fit the run it is meant to continue."""


class DivergedError(ArithmeticError):
    """Training produced a non-finite loss or weight; it stops there and nothing non-finite is saved."""

    def __init__(self, epoch: int, what: str) -> None:
        super().__init__(f"training diverged in epoch {epoch}: {what}")
        self.epoch = epoch


DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {
        "hidden": [64],
        "epochs": 20,
        "lr": 0.01,
        "optimizer": "adam",
        "batch_size": 64,
        "schedule": "cosine",
        "weight_decay": 0.0,
    },
    "moons": {
        "hidden": [16, 16],
        "epochs": 100,
        "lr": 0.1,
        "optimizer": "sgd",
        "batch_size": 100,
        "schedule": "cosine",
        "weight_decay": 1e-4,
    },
}
# What --model cnn changes in the digits defaults.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {"mlp": {}, "cnn": {"lr": 0.003, "epochs": 15}}
CNN_CHANNELS = (16, 32)  # two 3×3 convolutions (padding 1), each with BatchNorm, then a 2×2 max pool
# Options that fix the model, the data or the optimizer: a resumed run must keep them.
FIXED_ON_RESUME = ("dataset", "model", "hidden", "optimizer", "lr", "batch_size", "seed", "schedule", "weight_decay")


@dataclass
class Config:
    dataset: str = "digits"
    hidden: list[int] = field(default_factory=lambda: [64])
    epochs: int = 20
    lr: float = 0.01
    optimizer: str = "adam"
    batch_size: int = 64
    seed: int = 0
    schedule: str = "cosine"
    weight_decay: float = 0.0
    model: str = "mlp"  # last, so positional Config(...) calls from before --model keep their meaning


@dataclass
class History:
    loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


# --- the pieces -------------------------------------------------------------------------------
def load_data(dataset: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``; the split is fixed (it does not depend on ``--seed``)."""
    from .data import load_digits, make_moons, train_test_split

    if dataset == "digits":
        x, y = load_digits()
        return train_test_split(x, y, test_fraction=0.2, seed=0)
    if dataset == "moons":
        x, y = make_moons(100, noise=0.1, rng=0)
        xt, yt = make_moons(500, noise=0.1, rng=1)
        return x, y, xt, yt
    raise ValueError(f"train: unknown dataset {dataset!r}; choose digits or moons")


def build_model(cfg: Config, n_in: int, n_out: int) -> Any:
    from . import nn

    if cfg.model == "cnn":
        return build_cnn(cfg.hidden, n_in, n_out, cfg.seed)
    return nn.MLP([n_in, *cfg.hidden, n_out], activation="relu", rng=cfg.seed)


def build_cnn(hidden: list[int], n_in: int, n_out: int, seed: int) -> Any:
    """(Conv 3×3 → BatchNorm → ReLU) × 2 → MaxPool(2) → Flatten → the ``hidden`` dense layers → ``n_out``.

    The model takes the flat rows of the data set and views them as square
    one-channel images first, so the training loop is the MLP's.  BatchNorm's
    running statistics are buffers, so the checkpoint carries them.
    """
    import math

    from . import nn

    side = math.isqrt(n_in)
    if side * side != n_in or side % 2:
        raise ValueError(f"train: --model cnn needs square images of even side, got {n_in} features")
    gen = nn.init.get_rng(seed)
    c1, c2 = CNN_CHANNELS
    flat = c2 * (side // 2) ** 2
    return nn.Sequential(
        nn.Unflatten(1, (1, side, side)),
        nn.Conv2d(1, c1, 3, padding=1, rng=gen),
        nn.BatchNorm2d(c1),
        nn.ReLU(),
        nn.Conv2d(c1, c2, 3, padding=1, rng=gen),
        nn.BatchNorm2d(c2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.MLP([flat, *hidden, n_out], activation="relu", rng=gen),
    )


def describe_model(cfg: Config, fancy: bool) -> str:
    """The architecture as one line: ``MLP 64 → 64 → 10`` or the conv net's layers."""
    arrow = " → " if fancy else " -> "
    n_in, n_out = (64, 10) if cfg.dataset == "digits" else (2, 1)
    dense = arrow.join(str(s) for s in [n_in, *cfg.hidden, n_out])
    if cfg.model != "cnn":
        return f"MLP {dense}"
    k, c1, c2 = ("3×3", *CNN_CHANNELS) if fancy else ("3x3", *CNN_CHANNELS)
    flat = c2 * 16
    head = arrow.join(str(s) for s in [flat, *cfg.hidden, n_out])
    return f"CNN conv {c1}@{k}, BN{arrow}conv {c2}@{k}, BN{arrow}maxpool 2{arrow}{head}"


def build_optimizer(cfg: Config, params: Any) -> Any:
    from . import optim

    if cfg.optimizer == "sgd":
        return optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"train: unknown optimizer {cfg.optimizer!r}; choose sgd, adam or adamw")


def build_scheduler(cfg: Config, opt: Any, epochs_done: int) -> Any:
    from . import optim

    if cfg.schedule == "cosine":
        return optim.CosineAnnealingLR(opt, T_max=cfg.epochs, last_epoch=epochs_done - 1)
    if cfg.schedule == "step":
        return optim.StepLR(opt, step_size=max(1, cfg.epochs // 3), gamma=0.1, last_epoch=epochs_done - 1)
    return None


def loss_and_correct(cfg: Config, out: Any, y: np.ndarray) -> tuple[Any, int]:
    """The training loss and the number of correct predictions in a batch."""
    from . import nn

    if cfg.dataset == "moons":
        signs = 2 * y - 1
        loss = nn.hinge_loss(out, signs)
        correct = int(np.sum((out.data[:, 0] > 0) == (y == 1)))
    else:
        loss = nn.cross_entropy(out, y)
        correct = int(np.sum(np.argmax(out.data, axis=1) == y))
    return loss, correct


def _compiled_step(cfg: Config, model: Any, opt: Any) -> Callable[[Any, Any], tuple[Any, Any]]:
    """``train --compile``: forward, loss, backward and update under ``cr.compile``.

    The labels enter as tensors; the hinge loss's -1/+1 targets are made with tensor
    operations so the replay recomputes them for every batch.
    """
    from . import nn, ops
    from .compile import compile as cr_compile

    def step(x: Any, y: Any) -> tuple[Any, Any]:
        out = model(x)
        if cfg.dataset == "moons":  # nn.hinge_loss's formula, on labels kept as a tensor
            signs = (y * 2 - 1).astype(out.dtype).reshape(out.shape)
            loss = ops.mean(ops.relu(1.0 - signs * out))
        else:
            loss = nn.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss, out

    return cr_compile(step)


def _correct(cfg: Config, out: Any, y: np.ndarray) -> int:
    """Correct predictions in a batch (what loss_and_correct counts)."""
    if cfg.dataset == "moons":
        return int(np.sum((out.data[:, 0] > 0) == (y == 1)))
    return int(np.sum(np.argmax(out.data, axis=1) == y))


def accuracy(cfg: Config, model: Any, x: np.ndarray, y: np.ndarray) -> float:
    from .grad_mode import no_grad
    from .tensor import Tensor

    model.eval()
    with no_grad():
        out = model(Tensor(x))
    model.train()
    return loss_and_correct(cfg, out, y)[1] / len(y)


# --- progress ---------------------------------------------------------------------------------
class Progress:
    """One line per epoch; redrawn in place as a bar when the stream is a terminal."""

    WIDTH = 24

    def __init__(self, stream: TextIO, epochs: int, quiet: bool = False) -> None:
        self.stream = stream
        self.live = hasattr(stream, "isatty") and stream.isatty() and not quiet
        self.quiet = quiet
        self.width = len(str(epochs))
        self.epochs = epochs
        self.full, self.empty = ("█", "·") if can_encode(stream, "█·") else ("#", ".")

    def _line(self, epoch: int, done: int, total: int, text: str) -> str:
        filled = self.WIDTH * done // max(total, 1)
        bar = self.full * filled + self.empty * (self.WIDTH - filled)
        return f"epoch {epoch:>{self.width}}/{self.epochs} {bar} {text}"

    def update(self, epoch: int, done: int, total: int, loss: float, acc: float) -> None:
        if self.live:
            text = f"{done}/{total} loss {loss:.4f} acc {100 * acc:5.1f}%"
            self.stream.write("\r" + self._line(epoch, done, total, text) + "\x1b[K")
            self.stream.flush()

    def finish(self, epoch: int, total: int, loss: float, acc: float, test_acc: float, lr: float, secs: float) -> None:
        if self.quiet:
            return
        text = f"loss {loss:.4f}  train {100 * acc:5.1f}%  test {100 * test_acc:5.1f}%  lr {lr:.2g}  {secs:.2f}s"
        self.stream.write(("\r" if self.live else "") + self._line(epoch, total, total, text) + "\n")
        self.stream.flush()


def can_encode(stream: TextIO, text: str) -> bool:
    """Whether ``stream`` can print ``text`` (a cp1252 or ASCII console cannot print a block bar)."""
    try:
        text.encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


# --- training ---------------------------------------------------------------------------------
def make_state(cfg: Config, model: Any, opt: Any, epoch: int, history: History) -> dict[str, Any]:
    """Everything a checkpoint holds: copies, so later training does not change it."""
    return {
        "kind": "chainrule train",
        "config": asdict(cfg),
        "epoch": epoch,
        "model": OrderedDict((k, v.clone()) for k, v in model.state_dict().items()),  # (state_dict shares memory)
        "optimizer": opt.state_dict(),
        "history": asdict(history),
    }


def fit(
    cfg: Config,
    *,
    resume_state: Optional[dict[str, Any]] = None,
    on_epoch: Optional[Callable[[dict[str, Any]], None]] = None,
    stream: TextIO = sys.stdout,
    quiet: bool = False,
    distributed: bool = False,
    compiled: bool = False,
) -> tuple[Any, History, dict[str, Any], Optional[KeyboardInterrupt]]:
    """Train per ``cfg``; returns ``(model, history, last complete state, interruption or None)``.

    ``on_epoch`` is called with the state after each complete epoch.  A
    KeyboardInterrupt mid-epoch is caught and returned, with the state of the
    last complete epoch, so the caller can save it.

    ``distributed``: this process is one rank of an MPI job (see
    :mod:`chainrule.distributed`): every rank walks the same global batches,
    trains on its shard of each, and averages gradients before each step.
    """
    from .tensor import Tensor

    x_train, y_train, x_test, y_test = load_data(cfg.dataset)
    n_out = 1 if cfg.dataset == "moons" else int(y_train.max()) + 1
    model = build_model(cfg, x_train.shape[1], n_out)
    ddp = None
    if distributed:
        from . import distributed as dist

        ddp = dist.DistributedDataParallel(model)
    opt = build_optimizer(cfg, model.parameters())
    history = History()
    start = 0
    if resume_state is not None:
        start, history = restore(cfg, model, opt, resume_state)
    sched = build_scheduler(cfg, opt, start)
    state = make_state(cfg, model, opt, start, history)
    progress = Progress(stream, cfg.epochs, quiet)
    n = len(x_train)
    bs = min(cfg.batch_size, n)
    train_step = _compiled_step(cfg, model, opt) if compiled else None
    try:
        for epoch in range(start + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
            order = np.random.default_rng([cfg.seed, epoch]).permutation(n)
            total_loss = 0.0
            correct = 0
            seen = 0
            n_batches = (n + bs - 1) // bs
            for b in range(n_batches):
                idx = order[b * bs : (b + 1) * bs]
                if ddp is not None:
                    idx = dist.shard(idx)
                if train_step is not None:  # --compile: the same step, replayed (see _compiled_step)
                    loss, out = train_step(Tensor(x_train[idx]), Tensor(y_train[idx]))
                    c = _correct(cfg, out, y_train[idx])
                else:
                    out = model(Tensor(x_train[idx]))
                    loss, c = loss_and_correct(cfg, out, y_train[idx])
                    opt.zero_grad()
                    loss.backward()
                    if ddp is not None:
                        ddp.all_reduce_gradients(num_samples=len(idx))
                    opt.step()
                loss_value = float(loss.item())
                if ddp is None and not math.isfinite(loss_value):  # (ranks compare their sums after the epoch)
                    raise DivergedError(epoch, f"the loss of batch {b + 1} of {n_batches} is {loss_value}")
                total_loss += loss_value * len(idx)
                correct += c
                seen += len(idx)
                progress.update(epoch, b + 1, n_batches, total_loss / seen, correct / seen)
            if ddp is not None:
                total_loss, correct, seen = dist.all_reduce_totals(total_loss, correct, seen)
            if not math.isfinite(total_loss):
                raise DivergedError(epoch, f"the epoch's loss is {total_loss / seen}")
            bad = _nonfinite_entry(model)
            if bad is not None:
                raise DivergedError(epoch, f"the model's {bad!r} holds NaN or infinite values")
            lr = opt.param_groups[0]["lr"]
            if sched is not None:
                sched.step()
            secs = time.perf_counter() - t0
            test_acc = accuracy(cfg, model, x_test, y_test)
            history.loss.append(total_loss / seen)
            history.train_acc.append(correct / seen)
            history.test_acc.append(test_acc)
            history.seconds.append(secs)
            progress.finish(epoch, n_batches, total_loss / seen, correct / seen, test_acc, lr, secs)
            state = make_state(cfg, model, opt, epoch, history)
            if on_epoch is not None:
                on_epoch(state)
    except KeyboardInterrupt as exc:
        if progress.live:
            stream.write("\n")
        return model, history, state, exc
    return model, history, state, None


def _nonfinite_entry(model: Any) -> Optional[str]:
    """The name of the first weight or buffer of ``model`` holding NaN or an infinity, or None."""
    for name, t in model.state_dict().items():
        data = np.asarray(t._data)  # (the command trains on NumPy)
        if data.dtype.kind == "f" and not np.isfinite(data).all():
            return name
    return None


# --- the command ------------------------------------------------------------------------------
# The largest run the command accepts: the same bounds for flags and for a checkpoint's saved config.
MAX_EPOCHS = 100_000
MAX_BATCH = 1_000_000
MAX_LAYERS = 16
MAX_WIDTH = 4096
MAX_PARAMETERS = 10_000_000  # weights and biases of the MLP (80 MB in float64, x3 with Adam's state)
MAX_SEED = 2**63 - 1
MAX_RATE = 1e6


class _Bounded:
    """A bounded number, checked the same way from a command-line flag and from a checkpoint.

    Called with text it is an argparse type; :meth:`check` takes a value read
    from a checkpoint, which must already have the right type (a saved ``"0.01"``
    or ``1.5`` epochs is refused, not converted).
    """

    def __init__(self, kind: type, low: float, strict: bool, what: str, high: float) -> None:
        self.kind, self.low, self.strict, self.what, self.high = kind, low, strict, what, high

    def check(self, v: Any) -> Any:
        ok_type = type(v) is int or (self.kind is float and type(v) is float)
        if not ok_type:
            raise ValueError(f"expected {self.what}, got {type(v).__name__} {str(v)[:40]!r}")
        above = v > self.low if self.strict else v >= self.low
        if not (above and v <= self.high and math.isfinite(v)):
            raise ValueError(f"expected {self.what}, got {v!r}")
        return self.kind(v)

    def __call__(self, text: str) -> Any:
        try:
            v = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {self.what}, got {text!r}") from None
        try:
            return self.check(v)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None


def _check_sizes(sizes: Any) -> list[int]:
    """Hidden layer sizes: 1 to MAX_LAYERS positive ints, each at most MAX_WIDTH, MAX_PARAMETERS in all."""
    if not isinstance(sizes, list) or not all(type(s) is int for s in sizes):
        raise ValueError(f"hidden sizes must be a list of integers, got {str(sizes)[:60]}")
    if not 1 <= len(sizes) <= MAX_LAYERS or any(not 1 <= s <= MAX_WIDTH for s in sizes):
        raise ValueError(
            f"hidden sizes must be 1 to {MAX_LAYERS} layers of 1 to {MAX_WIDTH} units, got {str(sizes)[:60]}"
        )
    widths = [64, *sizes, 10]  # the larger data set's input and output sizes
    n = sum(a * b + b for a, b in zip(widths, widths[1:]))
    if n > MAX_PARAMETERS:
        raise ValueError(f"hidden sizes {sizes} make {n:,} parameters; at most {MAX_PARAMETERS:,}")
    return sizes


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"hidden sizes must be comma-separated integers, got {text!r}") from None
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"hidden sizes must be positive integers, got {text!r}")
    try:
        return _check_sizes(sizes)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_positive_int = _Bounded(int, 0, True, f"a positive integer up to {MAX_EPOCHS:,}", MAX_EPOCHS)
_batch_size = _Bounded(int, 0, True, f"a positive integer up to {MAX_BATCH:,}", MAX_BATCH)
_seed = _Bounded(int, 0, False, "a non-negative integer seed", MAX_SEED)
_nonneg_float = _Bounded(float, 0, False, f"a number >= 0 (finite, at most {MAX_RATE:g})", MAX_RATE)
CHOICES = {
    "dataset": ("digits", "moons"),
    "optimizer": ("sgd", "adam", "adamw"),
    "schedule": ("cosine", "step", "none"),
    "model": ("mlp", "cnn"),
}


def _choice(field_name: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v not in CHOICES[field_name] or type(v) is not str:
            raise ValueError(f"expected one of {', '.join(CHOICES[field_name])}, got {str(v)[:40]!r}")
        return v

    return check


# One validator per Config field, used by the flags (through argparse) and by --resume.
CONFIG_CHECKS: dict[str, Callable[[Any], Any]] = {
    "dataset": _choice("dataset"),
    "hidden": _check_sizes,
    "epochs": _positive_int.check,
    "lr": _nonneg_float.check,
    "optimizer": _choice("optimizer"),
    "batch_size": _batch_size.check,
    "seed": _seed.check,
    "schedule": _choice("schedule"),
    "weight_decay": _nonneg_float.check,
    "model": _choice("model"),
}
ADDED_LATER = {"model": "mlp"}  # config fields that older checkpoints lack, and the value they meant


def check_saved_config(saved: Any) -> dict[str, Any]:
    """A checkpoint's run configuration, every field checked as strictly as its command-line flag."""
    if not isinstance(saved, dict):
        raise ValueError(f"the run configuration is a {type(saved).__name__}, not a dict")
    fields = Config.__dataclass_fields__
    unknown = [k for k in saved if k not in fields]
    if unknown:
        raise ValueError(f"the run configuration has unknown fields {unknown[:5]}")
    out = {}
    for name in fields:
        if name not in saved:
            if name not in ADDED_LATER:
                raise ValueError(f"the run configuration has no {name!r}")
            out[name] = ADDED_LATER[name]
            continue
        try:
            out[name] = CONFIG_CHECKS[name](saved[name])
        except ValueError as exc:
            raise ValueError(f"the run configuration's {name!r}: {exc}") from None
    return out


def check_saved_state(state: Any) -> None:
    """The rest of a ``chainrule train`` checkpoint: epoch, history, and the shape of the model/optimizer entries."""
    keys = {"kind", "config", "epoch", "model", "optimizer", "history"}
    if set(state) != keys:
        raise ValueError(f"expected the entries {sorted(keys)}, found {sorted(map(str, state))[:8]}")
    cfg = state["config"]
    epoch = state["epoch"]
    if type(epoch) is not int or not 0 <= epoch <= cfg["epochs"]:
        raise ValueError(f"its epoch {str(epoch)[:40]!r} is not a whole number from 0 to {cfg['epochs']}")
    history = state["history"]
    names = list(History.__dataclass_fields__)
    if not isinstance(history, dict) or sorted(history) != sorted(names):
        raise ValueError(f"its history must have exactly the lists {names}")
    for name in names:
        values = history[name]
        if not isinstance(values, list) or len(values) != epoch:
            raise ValueError(f"its history {name!r} must be a list of {epoch} numbers (one per epoch)")
        if not all(type(v) in (int, float) for v in values):
            raise ValueError(f"its history {name!r} holds something other than numbers")
        low, high = (0.0, 1.0) if name.endswith("_acc") else (0.0, math.inf)
        if not all(math.isfinite(v) and low <= v <= high for v in values):
            raise ValueError(f"its history {name!r} holds a value that is negative, non-finite or above {high}")
    if not isinstance(state["model"], dict) or not isinstance(state["optimizer"], dict):
        raise ValueError("its model and optimizer entries must be state dicts")


# The range of every setting of the optimizers in chainrule.optim, as a checkpoint may hold it.
OPTIMIZER_SETTINGS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "lr": (lambda v: 0 <= v <= MAX_RATE, f"a number from 0 to {MAX_RATE:g}"),
    "initial_lr": (lambda v: 0 <= v <= MAX_RATE, f"a number from 0 to {MAX_RATE:g}"),
    "weight_decay": (lambda v: 0 <= v <= MAX_RATE, f"a number from 0 to {MAX_RATE:g}"),
    "momentum": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "dampening": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "nesterov": (lambda v: type(v) is bool, "True or False"),
    "betas": (lambda v: len(v) == 2 and all(0 <= b < 1 for b in v), "two numbers in [0, 1)"),
    "eps": (lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "alpha": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "centered": (lambda v: type(v) is bool, "True or False"),
}
# What each optimizer keeps per parameter once it has stepped (an entry is empty before that).
OPTIMIZER_STATE = {
    "sgd": {"momentum_buffer"},
    "adam": {"step", "exp_avg", "exp_avg_sq"},
    "adamw": {"step", "exp_avg", "exp_avg_sq"},
}
NONNEGATIVE_STATE = ("exp_avg_sq", "square_avg")  # running means of squares
MAX_STEP = 2**62


def _as_array(v: Any) -> Optional[np.ndarray]:
    from .tensor import Tensor

    if isinstance(v, Tensor):
        return np.asarray(v._data)
    return v if isinstance(v, np.ndarray) else None


def check_saved_weights(saved: Any, model: Any) -> None:
    """Every weight and buffer the model has, and no other: the model's shape and dtype, finite values."""
    if not isinstance(saved, dict):
        raise ValueError(f"the model entry is a {type(saved).__name__}, not a state dict")
    own = model.state_dict()
    missing = [k for k in own if k not in saved]
    unexpected = [str(k)[:40] for k in saved if k not in own]
    if missing or unexpected:
        raise ValueError(f"the model entry lacks {missing[:5]} and has unexpected {unexpected[:5]}")
    for name, t in own.items():
        arr = _as_array(saved[name])
        where = f"the model's {name!r}"
        if arr is None:
            raise ValueError(f"{where} is a {type(saved[name]).__name__}, not an array")
        if arr.shape != tuple(t.shape):
            raise ValueError(f"{where} has shape {arr.shape}; this model's has shape {tuple(t.shape)}")
        if arr.dtype != t.dtype:
            raise ValueError(f"{where} has dtype {arr.dtype}; this model's has dtype {t.dtype}")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError(f"{where} holds NaN or infinite values")
        if (arr.dtype.kind in "iu" or name.endswith("running_var")) and (arr < 0).any():
            raise ValueError(f"{where} holds negative values")


def check_saved_optimizer(saved: Any, opt: Any, cfg: Config) -> None:
    """The optimizer entry: this run's optimizer and settings (each in its range), finite state of the right shapes."""
    if not isinstance(saved, dict) or set(saved) != {"state", "param_groups"}:
        raise ValueError("the optimizer entry must be a dict of 'state' and 'param_groups'")
    fresh = opt.state_dict()
    _check_optimizer_like(saved, fresh)
    for gi, (group, own) in enumerate(zip(saved["param_groups"], fresh["param_groups"])):
        for k, v in group.items():
            if k == "params":
                continue
            ok, what = OPTIMIZER_SETTINGS[k]
            if not ok(v):
                raise ValueError(f"optimizer setting {k!r} is {str(v)[:40]}; it must be {what}")
        for k, v in own.items():  # what this run's flags give (the learning rate moves with the schedule)
            if k not in ("params", "lr") and group[k] != v:
                raise ValueError(f"optimizer setting {k!r} is {str(group[k])[:40]}; this run's is {v!r}")
        # a schedule starts from initial_lr (from lr where none is saved); without one the rate stays --lr
        starts = [group["initial_lr"]] if "initial_lr" in group else []
        if cfg.schedule == "none" or not starts:
            starts.append(group["lr"])
        for base in starts:
            if base != cfg.lr:
                raise ValueError(
                    f"optimizer group {gi} starts from learning rate {base!r}; this run's --lr is {cfg.lr!r}"
                )
    params = dict(enumerate(p for g in opt.param_groups for p in g["params"]))  # state_dict's numbering
    expected = OPTIMIZER_STATE[cfg.optimizer]
    for key, entry in saved["state"].items():
        p = params.get(key)
        if p is None:
            raise ValueError(f"optimizer: state for parameter {str(key)[:20]}, which this model does not have")
        if entry and set(entry) != expected:
            raise ValueError(
                f"optimizer: the state of parameter {key} holds {sorted(map(str, entry))[:5]}; "
                f"{cfg.optimizer} keeps {sorted(expected)}"
            )
        for name, v in entry.items():
            where = f"optimizer state {name!r} of parameter {key}"
            if name == "step":
                if type(v) is not int or not 0 <= v <= MAX_STEP:
                    raise ValueError(f"{where} is {str(v)[:40]!r}; it must be a whole number from 0 to 2**62")
                continue
            arr = _as_array(v)
            if arr is None or arr.shape != tuple(p.shape) or arr.dtype != p.dtype:
                got = f"{arr.dtype} of shape {arr.shape}" if arr is not None else type(v).__name__
                raise ValueError(f"{where} is {got}; the parameter is {p.dtype} of shape {p.shape}")
            if not np.isfinite(arr).all():
                raise ValueError(f"{where} holds NaN or infinite values")
            if name in NONNEGATIVE_STATE and (arr < 0).any():
                raise ValueError(f"{where} holds negative values (it is a mean of squares)")


def restore(cfg: Config, model: Any, opt: Any, state: dict[str, Any]) -> tuple[int, History]:
    """Check a checkpoint's weights and optimizer state against this run's, then load them: ``(epoch, history)``.

    Everything is checked before anything is loaded; a problem raises :class:`ResumeError` naming the field.
    """
    try:
        check_saved_weights(state["model"], model)
        check_saved_optimizer(state["optimizer"], opt, cfg)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start = int(state["epoch"])
        history = History(**{k: list(v) for k, v in state["history"].items()})
    except (KeyError, ValueError, TypeError) as exc:
        raise ResumeError(f"--resume: the checkpoint does not fit this run: {exc}") from None
    return start, history


def check_resume(cfg: Config, state: dict[str, Any]) -> None:
    """All of :func:`restore`'s checks on a fresh model and optimizer, before the run prints or trains anything."""
    x_train, y_train, _, _ = load_data(cfg.dataset)
    n_out = 1 if cfg.dataset == "moons" else int(y_train.max()) + 1
    model = build_model(cfg, x_train.shape[1], n_out)
    restore(cfg, model, build_optimizer(cfg, model.parameters()), state)


def _check_optimizer_like(saved: Any, fresh: dict[str, Any]) -> None:
    """The saved optimizer state has the same hyperparameters, of the same types, as a fresh optimizer."""
    groups = saved.get("param_groups")
    if not isinstance(groups, list) or len(groups) != len(fresh["param_groups"]):
        raise ValueError("optimizer: the parameter groups do not match this run")
    for saved_g, own in zip(groups, fresh["param_groups"]):
        if not isinstance(saved_g, dict) or set(saved_g) - {"initial_lr"} != set(own):
            raise ValueError("optimizer: a parameter group's settings differ from this optimizer's")
        if "initial_lr" in saved_g:  # set by the learning-rate schedule
            own = {**own, "initial_lr": 0.0}
        for k, v in own.items():
            w = saved_g[k]
            if k == "params":
                if w != v:
                    raise ValueError("optimizer: a parameter group lists other parameters")
            elif type(w) is not type(v) or (isinstance(v, float) and not math.isfinite(w)):
                raise ValueError(f"optimizer: setting {k!r} is {str(w)[:40]!r}, expected a {type(v).__name__}")
            elif (
                isinstance(v, tuple)
                and not all(type(a) is type(b) for a, b in zip(w, v))
                or (isinstance(v, tuple) and len(w) != len(v))
            ):
                raise ValueError(f"optimizer: setting {k!r} is {str(w)[:40]!r}")
    state = saved.get("state")
    if not isinstance(state, dict):
        raise ValueError("optimizer: its state is not a dict")
    for key, entry in state.items():
        if type(key) is not int or not isinstance(entry, dict):
            raise ValueError(f"optimizer: state entry {str(key)[:20]!r} is malformed")
        for name, v in entry.items():
            if isinstance(v, np.ndarray) or (hasattr(v, "data") and hasattr(v, "requires_grad")):
                continue  # shapes and dtypes are checked by load_state_dict
            if type(v) is not int or v < 0:
                raise ValueError(f"optimizer: state {name!r} of parameter {key} is {str(v)[:40]!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d, m = DEFAULTS["digits"], DEFAULTS["moons"]
    parser.epilog = (
        "Ctrl-C saves the last complete epoch to the checkpoint and exits with status 130; --resume continues from it."
    )
    parser.add_argument("--dataset", choices=("digits", "moons"), help="data set (default: digits)")
    parser.add_argument(
        "--model",
        choices=("mlp", "cnn"),
        help="mlp (default) or cnn: two 3x3 convolutions with batch norm and a max pool before the dense layers "
        "(digits only; "
        f"default lr {MODEL_DEFAULTS['cnn']['lr']}, {MODEL_DEFAULTS['cnn']['epochs']} epochs)",
    )
    parser.add_argument(
        "--hidden",
        type=_sizes,
        help=f"hidden layer sizes, comma-separated (default: {d['hidden'][0]} for digits, 16,16 for moons)",
    )
    parser.add_argument(
        "--epochs", type=_positive_int, help=f"total epochs (default: {d['epochs']}; moons {m['epochs']})"
    )
    parser.add_argument("--lr", type=_nonneg_float, help=f"learning rate (default: {d['lr']}; moons {m['lr']})")
    parser.add_argument(
        "--optimizer",
        choices=("sgd", "adam", "adamw"),
        help="optimizer (default: adam; moons sgd); sgd uses Nesterov momentum 0.9",
    )
    parser.add_argument(
        "--batch-size", type=_batch_size, help=f"minibatch size (default: {d['batch_size']}; moons: the whole set)"
    )
    parser.add_argument("--seed", type=_seed, help="seed for the weights and the shuffling (default: 0)")
    parser.add_argument(
        "--schedule", choices=("cosine", "step", "none"), help="learning-rate schedule (default: cosine)"
    )
    parser.add_argument(
        "--weight-decay",
        type=_nonneg_float,
        help=f"weight decay (default: {d['weight_decay']}; moons {m['weight_decay']})",
    )
    parser.add_argument(
        "--checkpoint", metavar="PATH", help="where to save (default: chainrule-digits.npz or chainrule-moons.npz)"
    )
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint up to --epochs")
    parser.add_argument("--plot", metavar="PNG", help="save a loss/accuracy plot (needs matplotlib)")
    parser.add_argument("--quiet", action="store_true", help="print only the final result")
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="one worker of an MPI job (mpirun -n N chainrule train --distributed): each trains on its share of "
        "every batch and gradients are averaged; rank 0 prints and saves (each epoch)",
    )
    parser.add_argument(
        "--dist-timeout",
        type=_Bounded(float, 0, True, "a positive number of seconds up to a day", 86400.0),
        default=60.0,
        metavar="SECONDS",
        help="with --distributed: abort the job if a worker is silent this long (default: 60)",
    )
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="trace the training step once and replay it (cr.compile; the same results, bit for bit); the default "
        "for --model mlp, where it is faster; --no-compile runs every step eagerly (the cnn's batch norm updates "
        "running statistics, which a replay cannot repeat, so it runs eagerly)",
    )


def _config(args: argparse.Namespace, saved: Optional[dict[str, Any]]) -> Config:
    """Options given on the command line, else the checkpoint's, else the data set's defaults."""
    dataset = saved["dataset"] if saved is not None else (args.dataset or "digits")
    model = saved.get("model", "mlp") if saved is not None else (getattr(args, "model", None) or "mlp")
    if model == "cnn" and dataset != "digits":
        raise ValueError(f"--model cnn needs image data: use --dataset digits (got {dataset})")
    if model == "cnn" and getattr(args, "distributed", False):
        raise ValueError(
            "--model cnn with --distributed is not supported: each worker's BatchNorm would keep its own running "
            "statistics (DistributedDataParallel averages gradients, not buffers); train the CNN in one process"
        )
    base = {**DEFAULTS[dataset], **MODEL_DEFAULTS[model], "seed": 0, "dataset": dataset, "model": "mlp"}
    if saved is not None:
        base.update(saved)
    given = {k: getattr(args, k) for k in ("hidden", "epochs", "lr", "optimizer", "batch_size", "seed", "schedule")}
    given["weight_decay"] = args.weight_decay
    given["dataset"] = args.dataset
    given["model"] = getattr(args, "model", None)
    if saved is not None:
        clashes = [
            f"--{k.replace('_', '-')} {given[k]} (checkpoint: {saved[k]})"
            for k in FIXED_ON_RESUME
            if given.get(k) is not None and given[k] != saved.get(k, "mlp" if k == "model" else None)
        ]
        if clashes:
            raise ValueError("--resume: these options differ from the checkpoint's run: " + ", ".join(clashes))
    base.update({k: v for k, v in given.items() if v is not None})
    return Config(**{k: base[k] for k in Config.__dataclass_fields__})


def _save_plot(history: History, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history.loss) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(epochs, history.loss, marker=".")
    ax1.set(xlabel="epoch", ylabel="training loss", title="loss")
    ax2.plot(epochs, 100 * np.asarray(history.train_acc), marker=".", label="train")
    ax2.plot(epochs, 100 * np.asarray(history.test_acc), marker=".", label="test")
    ax2.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    ax2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


class _DeferInterrupt:
    """Inside the block Ctrl-C is remembered, not raised, so the save in it completes (main thread only)."""

    def __enter__(self) -> _DeferInterrupt:
        self.hit = False
        self.previous: Any = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous is not None:  # (None: a handler not installed from Python, which we could not restore)
                self.previous = previous
                signal.signal(signal.SIGINT, self._remember)
        return self

    def _remember(self, signum: int, frame: Any) -> None:
        self.hit = True

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


PLOT_FORMATS = ("png", "svg", "pdf", "jpg", "jpeg")


def _writable_path_problem(path: str) -> Optional[str]:
    """Why a file cannot be written at ``path`` (checked before training), or None.

    The rules are :func:`chainrule.checkpoint.save_target`'s, the ones ``cr.save`` itself applies: only a
    regular file or a new name, symbolic links followed to their end.
    """
    from .checkpoint import NotAFileError, save_target

    try:
        target = save_target(path)
    except NotAFileError as exc:
        return exc.problem
    except FileNotFoundError as exc:
        return exc.strerror or f"the directory of {path} does not exist"
    except OSError as exc:
        return f"{path} cannot be used: {exc.strerror or exc}"
    directory = os.path.dirname(target) or "."
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        return f"cannot write in {directory}: {exc.strerror or exc}"
    return None


def _save(state: dict[str, Any], path: str) -> tuple[Optional[str], bool]:
    """Save with Ctrl-C held off until the file is complete: ``(error text or None, interrupted meanwhile)``."""
    from .checkpoint import save

    with _DeferInterrupt() as guard:
        try:
            save(state, path)
            problem = None
        except OSError as exc:
            problem = f"could not save the checkpoint to {path}: {exc.strerror or exc}"
    return problem, guard.hit


def run(args: argparse.Namespace) -> int:
    """``chainrule train``: Ctrl-C at any point exits with status 130 and no traceback."""
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("\nchainrule train: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _compiles(args: argparse.Namespace, cfg: Config) -> bool:
    """``--compile`` / ``--no-compile`` as given; by default compiled where a replay can run and is faster.

    The MLP step compiles (twice as fast on the digits); the CNN's batch norm updates running
    statistics, which a replay cannot repeat, and ``--distributed`` has no compiled allreduce.
    """
    given = getattr(args, "compile", None)
    if given is not None:
        return bool(given)
    return cfg.model == "mlp" and not args.distributed


def _run(args: argparse.Namespace) -> int:
    from .checkpoint import CheckpointError, load, save
    from .compile import CompileError
    from .distributed import RanksDifferError

    err, out = sys.stderr, sys.stdout
    if args.distributed and getattr(args, "compile", None):
        print(
            "chainrule train: --compile and --distributed do not combine yet (the compiled step has no allreduce); "
            "use one of them",
            file=err,
        )
        return 2
    if args.distributed:
        from . import distributed as dist

        try:
            out, err = dist.start_job(args.dist_timeout)
            # every rank must run the same command: compared before any other collective, so a rank started
            # with other options is named here instead of failing inside MPI or drifting apart later
            options = {f"--{k.replace('_', '-')}": repr(v) for k, v in vars(args).items()}
            dist.check_same_on_all_ranks(options, "the workers were started with different options")
        except dist.DistributedError as exc:
            print(f"chainrule train: --distributed: {exc}", file=err)
            return 2
    path = args.checkpoint or f"chainrule-{args.dataset or 'digits'}.npz"
    problem = _writable_path_problem(path)
    if problem:
        print(f"chainrule train: --checkpoint: {problem}", file=err)
        return 2
    saved_state = None
    if args.resume:
        try:
            saved_state = dist.load_from_main(path, load) if args.distributed else load(path)
        except FileNotFoundError:
            print(f"chainrule train: --resume: no checkpoint at {path} (give its path with --checkpoint)", file=err)
            return 2
        except CheckpointError as exc:
            print(f"chainrule train: --resume: {exc}", file=err)
            return 2
        if not isinstance(saved_state, dict) or saved_state.get("kind") != "chainrule train":
            print(
                f"chainrule train: --resume: {path} is a checkpoint, but not one written by chainrule train", file=err
            )
            return 2
        try:
            saved_state["config"] = check_saved_config(saved_state.get("config"))
            check_saved_state(saved_state)
        except ValueError as exc:
            print(f"chainrule train: --resume: {path} does not hold a usable run: {exc}", file=err)
            return 2
    try:
        cfg = _config(args, saved_state["config"] if saved_state else None)
    except ValueError as exc:
        print(f"chainrule train: {exc}", file=err)
        return 2
    if saved_state is not None:
        try:
            check_resume(cfg, saved_state)  # every weight and optimizer setting, before anything runs
        except ResumeError as exc:
            print(f"chainrule train: {exc}", file=err)
            return 2
    if args.distributed:
        try:
            dist.check_batches(len(load_data(cfg.dataset)[0]), cfg.batch_size, dist.get_world_size())
        except ValueError as exc:
            print(f"chainrule train: {exc}", file=err)
            return 2
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("chainrule train: --plot needs matplotlib: pip install 'chainrule[plot]'", file=err)
            return 2
        problem = _writable_path_problem(args.plot)
        suffix = os.path.splitext(args.plot)[1].lower().lstrip(".")
        if problem is None and suffix not in PLOT_FORMATS:
            problem = f"{args.plot}: the file name must end in one of {', '.join('.' + f for f in PLOT_FORMATS)}"
        if problem:
            print(f"chainrule train: --plot: {problem}", file=err)
            return 2

    fancy = can_encode(out, "→×")
    arch = describe_model(cfg, fancy)
    loss_name = "cross-entropy" if cfg.dataset == "digits" else "hinge loss"
    if not args.quiet:
        x_train, _, x_test, _ = load_data(cfg.dataset)
        name = ("UCI digits 8×8" if fancy else "UCI digits 8x8") if cfg.dataset == "digits" else "two moons"
        what = f"{name} ({len(x_train)} train / {len(x_test)} test)"
        print(f"{what}; {arch}, ReLU, {loss_name}", file=out)
        print(
            f"{cfg.optimizer} lr {cfg.lr:g} ({cfg.schedule} schedule), batch {cfg.batch_size}, "
            f"{cfg.epochs} epoch{'s' if cfg.epochs != 1 else ''}, seed {cfg.seed}",
            file=out,
        )
        if args.distributed:
            print(dist.describe(cfg.batch_size), file=out)
        if saved_state is not None:
            print(f"resuming from {path} after epoch {saved_state['epoch']}", file=out)
    if saved_state is not None and saved_state["epoch"] >= cfg.epochs:
        print(f"{path} already holds {saved_state['epoch']} epochs; raise --epochs to train further", file=out)

    t0 = time.perf_counter()
    try:
        model, history, state, interrupted = fit(
            cfg,
            resume_state=saved_state,
            stream=out,
            quiet=args.quiet,
            distributed=args.distributed,
            on_epoch=dist.epoch_saver(path, save) if args.distributed else None,
            compiled=_compiles(args, cfg),
        )
    except ResumeError as exc:
        print(f"chainrule train: {exc}", file=err)
        return 2
    except RanksDifferError as exc:  # (raised on every rank alike: the ranks compared before raising)
        print(f"chainrule train: --distributed: {exc}", file=err)
        return 2
    except DivergedError as exc:
        print(
            f"chainrule train: {exc}; stopped there, and {path} was not overwritten with it (a lower --lr may help)",
            file=err,
        )
        return 1
    except CompileError as exc:
        how = "--compile" if args.compile else "the compiled step (the default for the MLP; --no-compile runs eagerly)"
        print(f"chainrule train: {how}: {exc}", file=err)
        return 2
    wall = time.perf_counter() - t0
    if args.distributed and not dist.is_main_process():  # rank 0 reports and saves
        return 0 if interrupted is None else EXIT_INTERRUPTED
    if interrupted is not None:
        if state["epoch"] == 0 or (saved_state is not None and state["epoch"] == saved_state["epoch"]):
            print("\ninterrupted before an epoch completed; nothing new saved", file=out)
        else:
            problem, _ = _save(state, path)  # a second Ctrl-C waits for the save to finish
            if problem:
                print(f"chainrule train: {problem}", file=err)
                return 1
            print(f"\ninterrupted: saved epoch {state['epoch']} to {path}; continue with --resume", file=out)
        return EXIT_INTERRUPTED

    problem, hit = _save(state, path)
    if problem:
        print(f"chainrule train: {problem}", file=err)
        return 1
    if hit:
        print(f"\ninterrupted while saving: the checkpoint {path} is complete (epoch {state['epoch']})", file=out)
        return EXIT_INTERRUPTED
    final = history.test_acc[-1] if history.test_acc else float("nan")
    print(
        f"test accuracy {100 * final:.1f}% ({cfg.dataset}, {state['epoch']} epoch{'s' if state['epoch'] != 1 else ''}) "
        f"in {wall:.1f}s; "
        f"checkpoint saved to {path}",
        file=out,
    )
    if args.plot:
        _save_plot(history, args.plot, f"chainrule train: {cfg.dataset}, {arch}")
        print(f"plot saved to {args.plot}", file=out)
    return 0
