"""``torch.optim.lr_scheduler``: chainrule's schedules plus ``LambdaLR``, ``MultiplicativeLR``,
``MultiStepLR``, ``LinearLR`` and ``ConstantLR`` (each in torch's chainable form, so the rates agree)."""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Callable
from typing import Any

from ... import optim as _optim
from ...torch_names import module_getattr

LRScheduler = _optim.LRScheduler
StepLR = _optim.StepLR
CosineAnnealingLR = _optim.CosineAnnealingLR
ExponentialLR = _optim.ExponentialLR
ReduceLROnPlateau = _optim.ReduceLROnPlateau


def _per_group(optimizer: Any, value: Any, name: str) -> list:
    n = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name}: expected {n} functions (one per parameter group), got {len(value)}")
        return list(value)
    return [value] * n


class LambdaLR(LRScheduler):
    """``lr = initial_lr * lr_lambda(epoch)``."""

    def __init__(self, optimizer: Any, lr_lambda: Callable | list, last_epoch: int = -1) -> None:
        self.lr_lambdas = _per_group(optimizer, lr_lambda, "LambdaLR")
        self._group = 0
        super().__init__(optimizer, last_epoch)

    def step(self) -> None:
        self.last_epoch += 1
        for g, base, fn in zip(self.optimizer.param_groups, self.base_lrs, self.lr_lambdas):
            g["lr"] = base * fn(self.last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.lr_lambdas[0](epoch)

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}


class MultiplicativeLR(LRScheduler):
    """``lr *= lr_lambda(epoch)`` at each step after the first."""

    def __init__(self, optimizer: Any, lr_lambda: Callable | list, last_epoch: int = -1) -> None:
        self.lr_lambdas = _per_group(optimizer, lr_lambda, "MultiplicativeLR")
        super().__init__(optimizer, last_epoch)

    def step(self) -> None:
        self.last_epoch += 1
        if self.last_epoch > 0:
            for g, fn in zip(self.optimizer.param_groups, self.lr_lambdas):
                g["lr"] = g["lr"] * fn(self.last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        raise NotImplementedError("MultiplicativeLR has no closed form; resume it by replaying its steps")

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}


class MultiStepLR(LRScheduler):
    """Multiply by ``gamma`` at each epoch in ``milestones``."""

    def __init__(self, optimizer: Any, milestones: list, gamma: float = 0.1, last_epoch: int = -1) -> None:
        self.milestones = Counter(int(m) for m in milestones)
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** bisect_right(sorted(self.milestones.elements()), epoch)

    def next_lr(self, lr: float, base_lr: float, epoch: int) -> float:
        if epoch not in self.milestones:
            return lr
        return lr * self.gamma ** self.milestones[epoch]


class ConstantLR(LRScheduler):
    """``lr * factor`` until ``total_iters``, then the initial rate."""

    def __init__(self, optimizer: Any, factor: float = 1.0 / 3, total_iters: int = 5, last_epoch: int = -1) -> None:
        if not 0 <= factor <= 1:
            raise ValueError(f"ConstantLR: factor must lie in [0, 1], got {factor}")
        self.factor, self.total_iters = float(factor), int(total_iters)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * (self.factor if epoch < self.total_iters else 1.0)

    def next_lr(self, lr: float, base_lr: float, epoch: int) -> float:
        if epoch != self.total_iters:
            return lr
        return lr * (1.0 / self.factor)


class LinearLR(LRScheduler):
    """From ``start_factor * lr`` to ``end_factor * lr`` linearly over ``total_iters`` steps (torch's chained form)."""

    def __init__(
        self,
        optimizer: Any,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
        last_epoch: int = -1,
    ) -> None:
        if not 0 < start_factor <= 1 or not 0 <= end_factor <= 1:
            raise ValueError("LinearLR: start_factor must lie in (0, 1] and end_factor in [0, 1]")
        self.start_factor, self.end_factor, self.total_iters = float(start_factor), float(end_factor), int(total_iters)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        s, e, n = self.start_factor, self.end_factor, self.total_iters
        return base_lr * (s + (e - s) * min(n, epoch) / n)

    def next_lr(self, lr: float, base_lr: float, epoch: int) -> float:
        s, e, n = self.start_factor, self.end_factor, self.total_iters
        if epoch > n:
            return lr
        return lr * (1.0 + (e - s) / (n * s + (epoch - 1) * (e - s)))


__getattr__ = module_getattr("torch.optim.lr_scheduler")
