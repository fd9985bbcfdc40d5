"""Resuming ``chainrule train``: every field, setting, state entry and weight of a checkpoint checked before anything
runs (each failure one line naming the field)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Optional

import numpy as np

from .train_config import ADDED_LATER, CONFIG_CHECKS, MAX_RATE, Config, History, ResumeError
from .train_model import build_model, build_optimizer, load_data


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
