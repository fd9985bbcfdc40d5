"""``chainrule train``'s pieces: the data, the model (MLP or CNN), the optimizer and schedule, loss and accuracy."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .train_config import CNN_CHANNELS, Config


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
