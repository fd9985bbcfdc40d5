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
from dataclasses import asdict
from typing import Any, Optional, TextIO

import numpy as np

from .train_config import (  # noqa: F401
    EXIT_INTERRUPTED,
    FIXED_ON_RESUME,
    Config,
    DivergedError,
    History,
    ResumeError,
    _batch_size,
    _Bounded,
    _nonneg_float,
    _positive_int,
    _seed,
    _sizes,
)
from .train_model import (  # noqa: F401
    _compiled_step,
    _correct,
    accuracy,
    build_model,
    build_optimizer,
    build_scheduler,
    describe_model,
    load_data,
    loss_and_correct,
)
from .train_resume import check_resume, check_saved_config, check_saved_state, restore  # noqa: F401

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
        "for --model mlp, where it is faster; --no-compile runs every step eagerly (the cnn runs eagerly unless "
        "--compile is given; its replay repeats batch norm's running-statistics updates)",
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

    The MLP step compiles (twice as fast on the digits).  The CNN runs eagerly unless ``--compile``
    is given (its replay repeats batch norm's running-statistics updates, bit for bit, but was not
    measured to be clearly faster), and ``--distributed`` has no compiled allreduce.
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
