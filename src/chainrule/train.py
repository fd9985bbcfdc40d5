"""``chainrule train``: train an MLP on the bundled digits (or two moons) and watch backprop learn.

``chainrule train`` with no options trains ``MLP([64, 64, 10])`` on the UCI
digits with Adam and a cosine schedule, a fixed seed and a fixed 80/20 split,
prints a line per epoch (a live bar on a terminal), reports the held-out test
accuracy, and saves a checkpoint.  ``--dataset moons`` is the micrograd demo:
a small ReLU MLP with the max-margin hinge loss on two moons.

Ctrl-C stops training: the state after the last complete epoch is saved to the
checkpoint and the command exits with status 130 (128 + SIGINT, the shell
convention for an interrupted command); ``--resume`` continues from it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, TextIO

import numpy as np

EXIT_INTERRUPTED = 130


class ResumeError(ValueError):
    """A checkpoint given to --resume does not fit the run it is meant to continue."""


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
# Options that fix the model, the data or the optimizer: a resumed run must keep them.
FIXED_ON_RESUME = ("dataset", "hidden", "optimizer", "lr", "batch_size", "seed", "schedule", "weight_decay")


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

    return nn.MLP([n_in, *cfg.hidden, n_out], activation="relu", rng=cfg.seed)


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
    from .tensor import Tensor, no_grad

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
        "model": model.state_dict(),
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
    compiled: bool = False,
) -> tuple[Any, History, dict[str, Any], Optional[KeyboardInterrupt]]:
    """Train per ``cfg``; returns ``(model, history, last complete state, interruption or None)``.

    ``on_epoch`` is called with the state after each complete epoch.  A
    KeyboardInterrupt mid-epoch is caught and returned, with the state of the
    last complete epoch, so the caller can save it.
    """
    from .tensor import Tensor

    x_train, y_train, x_test, y_test = load_data(cfg.dataset)
    n_out = 1 if cfg.dataset == "moons" else int(y_train.max()) + 1
    model = build_model(cfg, x_train.shape[1], n_out)
    opt = build_optimizer(cfg, model.parameters())
    history = History()
    start = 0
    if resume_state is not None:
        try:
            model.load_state_dict(resume_state["model"])
            opt.load_state_dict(resume_state["optimizer"])
            start = int(resume_state["epoch"])
            history = History(**{k: list(v) for k, v in resume_state["history"].items()})
        except (KeyError, ValueError, TypeError) as exc:
            raise ResumeError(f"--resume: the checkpoint does not fit this run: {exc}") from None
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
                if train_step is not None:  # --compile: the same step, replayed (see _compiled_step)
                    loss, out = train_step(Tensor(x_train[idx]), Tensor(y_train[idx]))
                    c = _correct(cfg, out, y_train[idx])
                else:
                    out = model(Tensor(x_train[idx]))
                    loss, c = loss_and_correct(cfg, out, y_train[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                total_loss += float(loss.item()) * len(idx)
                correct += c
                seen += len(idx)
                progress.update(epoch, b + 1, n_batches, total_loss / seen, correct / seen)
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


# --- the command ------------------------------------------------------------------------------
def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"hidden sizes must be comma-separated integers, got {text!r}") from None
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"hidden sizes must be positive integers, got {text!r}")
    return sizes


def _bounded(convert: Callable[[str], Any], low: float, strict: bool, what: str) -> Callable[[str], Any]:
    """An argparse type: ``convert(text)``, which must be above ``low`` (or at least ``low``)."""

    def parse(text: str) -> Any:
        try:
            v = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (v > low if strict else v >= low):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return v

    return parse


_positive_int = _bounded(int, 0, True, "a positive integer")
_seed = _bounded(int, 0, False, "a non-negative integer seed")
_nonneg_float = _bounded(float, 0, False, "a number >= 0")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d, m = DEFAULTS["digits"], DEFAULTS["moons"]
    parser.epilog = (
        "Ctrl-C saves the last complete epoch to the checkpoint and exits with status 130; --resume continues from it."
    )
    parser.add_argument("--dataset", choices=("digits", "moons"), help="data set (default: digits)")
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
        "--batch-size", type=_positive_int, help=f"minibatch size (default: {d['batch_size']}; moons: the whole set)"
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
        "--compile", action="store_true", help="trace the training step once and replay it (cr.compile; same results)"
    )


def _config(args: argparse.Namespace, saved: Optional[dict[str, Any]]) -> Config:
    """Options given on the command line, else the checkpoint's, else the data set's defaults."""
    dataset = saved["dataset"] if saved is not None else (args.dataset or "digits")
    base = {**DEFAULTS[dataset], "seed": 0, "dataset": dataset}
    if saved is not None:
        base.update(saved)
    given = {k: getattr(args, k) for k in ("hidden", "epochs", "lr", "optimizer", "batch_size", "seed", "schedule")}
    given["weight_decay"] = args.weight_decay
    given["dataset"] = args.dataset
    if saved is not None:
        clashes = [
            f"--{k.replace('_', '-')} {given[k]} (checkpoint: {saved[k]})"
            for k in FIXED_ON_RESUME
            if given.get(k) is not None and given[k] != saved[k]
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


def run(args: argparse.Namespace) -> int:
    from .checkpoint import CheckpointError, load, save
    from .compile import CompileError

    err = sys.stderr
    path = args.checkpoint or f"chainrule-{args.dataset or 'digits'}.npz"
    saved_state = None
    if args.resume:
        try:
            saved_state = load(path)
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
        cfg = _config(args, saved_state["config"] if saved_state else None)
    except (KeyError, TypeError) as exc:
        print(f"chainrule train: --resume: {path} has a malformed run configuration ({exc})", file=err)
        return 2
    except ValueError as exc:
        print(f"chainrule train: {exc}", file=err)
        return 2
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("chainrule train: --plot needs matplotlib: pip install 'chainrule[plot]'", file=err)
            return 2

    out = sys.stdout
    fancy = can_encode(out, "→×")
    arch = (" → " if fancy else " -> ").join(
        str(s) for s in [64 if cfg.dataset == "digits" else 2, *cfg.hidden, 10 if cfg.dataset == "digits" else 1]
    )
    loss_name = "cross-entropy" if cfg.dataset == "digits" else "hinge loss"
    if not args.quiet:
        x_train, _, x_test, _ = load_data(cfg.dataset)
        name = ("UCI digits 8×8" if fancy else "UCI digits 8x8") if cfg.dataset == "digits" else "two moons"
        what = f"{name} ({len(x_train)} train / {len(x_test)} test)"
        print(f"{what}; MLP {arch}, ReLU, {loss_name}", file=out)
        print(
            f"{cfg.optimizer} lr {cfg.lr:g} ({cfg.schedule} schedule), batch {cfg.batch_size}, "
            f"{cfg.epochs} epoch{'s' if cfg.epochs != 1 else ''}, seed {cfg.seed}",
            file=out,
        )
        if saved_state is not None:
            print(f"resuming from {path} after epoch {saved_state['epoch']}", file=out)
    if saved_state is not None and saved_state["epoch"] >= cfg.epochs:
        print(f"{path} already holds {saved_state['epoch']} epochs; raise --epochs to train further", file=out)

    t0 = time.perf_counter()
    try:
        model, history, state, interrupted = fit(
            cfg, resume_state=saved_state, stream=out, quiet=args.quiet, compiled=getattr(args, "compile", False)
        )
    except ResumeError as exc:
        print(f"chainrule train: {exc}", file=err)
        return 2
    except CompileError as exc:
        print(f"chainrule train: --compile: {exc}", file=err)
        return 2
    wall = time.perf_counter() - t0
    if interrupted is not None:
        if state["epoch"] == 0 or (saved_state is not None and state["epoch"] == saved_state["epoch"]):
            print("\ninterrupted before an epoch completed; nothing new saved", file=out)
        else:
            save(state, path)
            print(f"\ninterrupted: saved epoch {state['epoch']} to {path}; continue with --resume", file=out)
        return EXIT_INTERRUPTED

    save(state, path)
    final = history.test_acc[-1] if history.test_acc else float("nan")
    print(
        f"test accuracy {100 * final:.1f}% ({cfg.dataset}, {state['epoch']} epochs) in {wall:.1f}s; "
        f"checkpoint saved to {path}",
        file=out,
    )
    if args.plot:
        _save_plot(history, args.plot, f"chainrule train: {cfg.dataset}, MLP {arch}")
        print(f"plot saved to {args.plot}", file=out)
    return 0
