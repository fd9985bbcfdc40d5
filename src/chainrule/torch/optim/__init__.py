"""``torch.optim``: chainrule's optimizers with torch's signatures, ``Adam(amsgrad=True)``, ``Adagrad``,
and ``lr_scheduler`` with ``LambdaLR``, ``MultiplicativeLR``, ``MultiStepLR``, ``LinearLR``, ``ConstantLR``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ... import optim as _optim
from ...torch_names import module_getattr
from . import lr_scheduler  # noqa: F401

Optimizer = _optim.Optimizer
RMSprop = _optim.RMSprop

_NEUTRAL = {"foreach": None, "maximize": False, "capturable": False, "differentiable": False, "fused": None}


def _refuse_options(op: str, options: dict[str, Any]) -> None:
    for k, v in options.items():
        if k not in _NEUTRAL:
            raise TypeError(f"{op}: unexpected argument {k!r}")
        if v != _NEUTRAL[k]:
            raise NotImplementedError(
                f"{op}({k}={v!r}) is not supported in chainrule.torch; leave {k} at {_NEUTRAL[k]!r}"
            )


class SGD(_optim.SGD):
    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        **options: Any,
    ) -> None:
        _refuse_options("SGD", options)
        super().__init__(params, lr, momentum, dampening, weight_decay, nesterov)


class _AMSGrad:
    """Adam's step with ``amsgrad``: the denominator uses the running maximum of ``exp_avg_sq``, as torch."""

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        if not group.get("amsgrad"):
            return super()._update(p, g, state, group)  # type: ignore[misc]
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        b1, b2 = group["betas"]
        if wd:
            if self.decoupled:  # type: ignore[attr-defined]
                p *= 1 - lr * wd
            else:
                g = g + wd * p
        if "step" not in state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p)
            state["exp_avg_sq"] = np.zeros_like(p)
            state["max_exp_avg_sq"] = np.zeros_like(p)
        state["step"] += 1
        t = state["step"]
        m, v, vmax = state["exp_avg"], state["exp_avg_sq"], state["max_exp_avg_sq"]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * (g * g)
        np.maximum(vmax, v, out=vmax)
        denom = np.sqrt(vmax) / math.sqrt(1 - b2**t)
        denom += eps
        p -= (lr / (1 - b1**t)) * (m / denom)
        return None


class Adam(_AMSGrad, _optim.Adam):
    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        **options: Any,
    ) -> None:
        _refuse_options("Adam", options)
        self._amsgrad = bool(amsgrad)
        super().__init__(params, lr, betas, eps, weight_decay)
        self.defaults["amsgrad"] = self._amsgrad
        for g in self.param_groups:
            g.setdefault("amsgrad", self._amsgrad)


class AdamW(_AMSGrad, _optim.AdamW):
    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        **options: Any,
    ) -> None:
        _refuse_options("AdamW", options)
        super().__init__(params, lr, betas, eps, weight_decay)
        self.defaults["amsgrad"] = bool(amsgrad)
        for g in self.param_groups:
            g.setdefault("amsgrad", bool(amsgrad))


class Adagrad(_optim.Optimizer):
    """As torch.optim.Adagrad: ``clr = lr / (1 + (t-1) lr_decay)``, ``sum += g²``, ``p -= clr g / (√sum + eps)``."""

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        **options: Any,
    ) -> None:
        _refuse_options("Adagrad", options)
        super().__init__(
            params,
            {
                "lr": lr,
                "lr_decay": lr_decay,
                "weight_decay": weight_decay,
                "initial_accumulator_value": initial_accumulator_value,
                "eps": eps,
            },
        )

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        if "step" not in state:
            state["step"] = 0
            state["sum"] = np.full_like(p, group["initial_accumulator_value"])
        state["step"] += 1
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        state["sum"] += g * g
        std = np.sqrt(state["sum"])
        std += group["eps"]
        p -= clr * (g / std)


__getattr__ = module_getattr("torch.optim")
