"""``chainrule train``'s run configuration: the fields, their limits and choices, and the errors of a bad resume."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

EXIT_INTERRUPTED = 130


class ResumeError(ValueError):
    """A checkpoint given to --resume does not fit the run it is meant to continue."""


class DivergedError(ArithmeticError):
    """Training produced a non-finite loss or weight; it stops there and nothing non-finite is saved."""

    def __init__(self, epoch: int, what: str) -> None:
        super().__init__(f"training diverged in epoch {epoch}: {what}")
        self.epoch = epoch


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
