"""``torch.optim.lr_scheduler``: chainrule's schedules plus ``LambdaLR``, ``MultiplicativeLR``,
``MultiStepLR``, ``LinearLR`` and ``ConstantLR`` (each in torch's chainable form, so the rates agree)."""

from __future__ import annotations

import math
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


class OneCycleLR(LRScheduler):
    """The one-cycle policy: warm up to ``max_lr``, then anneal far below the start (torch's phases and formulas);
    with ``cycle_momentum`` the momentum (or Adam's beta1) moves the other way."""

    def __init__(
        self, optimizer: Any, max_lr: Any, total_steps: Any = None, epochs: Any = None, steps_per_epoch: Any = None,
        pct_start: float = 0.3, anneal_strategy: str = "cos", cycle_momentum: bool = True, base_momentum: Any = 0.85,
        max_momentum: Any = 0.95, div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False,
        last_epoch: int = -1,
    ) -> None:  # fmt: skip
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError("OneCycleLR: you must define either total_steps OR (epochs AND steps_per_epoch)")
            total_steps = epochs * steps_per_epoch
        if total_steps <= 0:
            raise ValueError(f"OneCycleLR: expected a positive integer total_steps, but got {total_steps}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.total_steps, self.anneal_strategy, self.cycle_momentum = int(total_steps), anneal_strategy, cycle_momentum
        groups = optimizer.param_groups
        max_lrs = _per_group(optimizer, max_lr, "OneCycleLR")
        for g, m in zip(groups, max_lrs):
            g["initial_lr"] = m / div_factor
            g["lr"] = g["initial_lr"]
            g["max_lr"] = m
            g["min_lr"] = g["initial_lr"] / final_div_factor
        p = float(pct_start * self.total_steps)
        if three_phase:
            self._phases = [
                (p - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (2 * p - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                (self.total_steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        else:
            self._phases = [
                (p - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (self.total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]
        self._beta1 = "betas" in optimizer.defaults
        if cycle_momentum:
            if not self._beta1 and "momentum" not in optimizer.defaults:
                raise ValueError("optimizer must support momentum or beta1 with `cycle_momentum` option enabled")
            for g, lo, hi in zip(
                groups,
                _per_group(optimizer, base_momentum, "OneCycleLR"),
                _per_group(optimizer, max_momentum, "OneCycleLR"),
            ):
                if self._beta1:
                    g["betas"] = (hi, *g["betas"][1:])
                else:
                    g["momentum"] = hi
                g["max_momentum"], g["base_momentum"] = hi, lo
        super().__init__(optimizer, last_epoch)

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def step(self) -> None:
        self.last_epoch += 1
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"Tried to step {step} times. The specified number of total steps is {self.total_steps}")
        for g in self.optimizer.param_groups:
            start = 0.0
            for i, (end, lr0, lr1, m0, m1) in enumerate(self._phases):
                if step <= end or i == len(self._phases) - 1:
                    pct = (step - start) / (end - start)
                    g["lr"] = self._anneal(g[lr0], g[lr1], pct)
                    if self.cycle_momentum:
                        m = self._anneal(g[m0], g[m1], pct)
                        if self._beta1:
                            g["betas"] = (m, *g["betas"][1:])
                        else:
                            g["momentum"] = m
                    break
                start = end

    def lr_at(self, base_lr: float, epoch: int) -> float:
        raise NotImplementedError("OneCycleLR: resume it with load_state_dict of its own state")

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "optimizer"})


class SequentialLR(LRScheduler):
    """Run ``schedulers`` one after another, switching at the epochs in ``milestones`` (each restarts from its
    epoch 0, as torch does)."""

    def __init__(self, optimizer: Any, schedulers: list, milestones: list, last_epoch: int = -1) -> None:
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                f"Sequential Schedulers expects number of schedulers provided to be one more than the number of "
                f"milestone points, but got number of schedulers {len(schedulers)} and the number of milestones "
                f"to be equal to {len(milestones)}"
            )
        self.optimizer, self._schedulers, self._milestones = optimizer, list(schedulers), list(milestones)
        self.last_epoch = last_epoch + 1
        for g in optimizer.param_groups:
            g["lr"] = g["initial_lr"]
        first = self._schedulers[0]
        self._restart(first)
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]

    @staticmethod
    def _restart(s: Any) -> None:
        s.last_epoch = -1
        chain, s._chain = s._chain, False
        s.step()
        s._chain = chain

    def step(self) -> None:
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        s = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            self._restart(s)
        else:
            s.step()

    def lr_at(self, base_lr: float, epoch: int) -> float:
        raise NotImplementedError("SequentialLR: resume it with load_state_dict of its own state")

    def state_dict(self) -> dict[str, Any]:
        return {
            "last_epoch": self.last_epoch,
            "_milestones": self._milestones,
            "_schedulers": [s.state_dict() for s in self._schedulers],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.last_epoch, self._milestones = state_dict["last_epoch"], state_dict["_milestones"]
        for s, sd in zip(self._schedulers, state_dict["_schedulers"]):
            s.__dict__.update(sd)


class CosineAnnealingWarmRestarts(LRScheduler):
    """Cosine annealing restarted every ``T_0`` epochs, each period ``T_mult`` times longer (torch's formula)."""

    def __init__(self, optimizer: Any, T_0: int, T_mult: int = 1, eta_min: float = 0.0, last_epoch: int = -1) -> None:  # noqa: N803
        if T_0 <= 0 or not isinstance(T_0, int):
            raise ValueError(f"Expected positive integer T_0, but got {T_0}")
        if T_mult < 1 or not isinstance(T_mult, int):
            raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult}")
        self.T_0, self.T_i, self.T_mult, self.eta_min = T_0, T_0, T_mult, float(eta_min)
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def step(self) -> None:
        if self.last_epoch < 0:
            self.last_epoch, self.T_cur = 0, 0
        else:
            self.last_epoch += 1
            self.T_cur += 1
            if self.T_cur >= self.T_i:
                self.T_cur -= self.T_i
                self.T_i *= self.T_mult
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2

    def lr_at(self, base_lr: float, epoch: int) -> float:
        raise NotImplementedError


class PolynomialLR(LRScheduler):
    """Decay by ``(1 - epoch / total_iters) ** power`` until ``total_iters`` (torch's chained form)."""

    def __init__(self, optimizer: Any, total_iters: int = 5, power: float = 1.0, last_epoch: int = -1) -> None:
        self.total_iters, self.power = int(total_iters), float(power)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * (1.0 - min(self.total_iters, epoch) / self.total_iters) ** self.power

    def next_lr(self, lr: float, base_lr: float, epoch: int) -> float:
        if epoch > self.total_iters:
            return lr
        factor = ((1.0 - epoch / self.total_iters) / (1.0 - (epoch - 1) / self.total_iters)) ** self.power
        return lr * factor


__getattr__ = module_getattr("torch.optim.lr_scheduler")
