"""Optimizers (SGD, Adam, AdamW, RMSprop) and learning-rate schedules, with ``torch.optim`` semantics.

An optimizer takes an iterable of tensors, or of parameter groups (dicts with a
``"params"`` entry and per-group hyperparameters), exactly as in PyTorch::

    opt = cr.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt = cr.optim.Adam([{"params": body.parameters()}, {"params": head.parameters(), "lr": 1e-3}], lr=1e-2)

``step()`` updates the parameters in place with NumPy operations and records
nothing in the graph; each updated tensor's version counter is bumped, so a
graph that saved the old value refuses to backpropagate through it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any, Optional

import numpy as np

from .grad_mode import MODE, no_grad
from .methods import clear_grads
from .tensor import Tensor
from .versions import mark_modified


def _array(d: Any) -> np.ndarray:
    """A parameter's value as an array to update in place (float64 scalars are Python floats)."""
    return d if type(d) is np.ndarray else np.array(d, dtype=np.float64)


class Optimizer:
    """Base class: parameter groups, per-parameter state, ``zero_grad`` and state dicts."""

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        if isinstance(params, Tensor):
            raise TypeError(
                f"{type(self).__name__}: params must be an iterable of tensors or of parameter groups, "
                "got a single tensor; wrap it in a list"
            )
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[int, dict[str, Any]] = {}  # keyed by id(param)
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: dict[str, Any]) -> None:
        name = type(self).__name__
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{name}: a parameter group must be a dict with a 'params' entry")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: parameter {i} is a {type(p).__name__}, not a Tensor")
            if not p.requires_grad or not p.is_leaf:
                raise ValueError(
                    f"{name}: parameter {i} (shape {p.shape}) must be a leaf tensor with requires_grad=True"
                )
            if id(p) in seen:
                raise ValueError(f"{name}: parameter {i} (shape {p.shape}) appears in more than one place")
            seen.add(id(p))
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise ValueError(f"{name}: unknown options {sorted(unknown)}; valid ones are {sorted(self.defaults)}")
        full = {**self.defaults, **group, "params": params}
        self._validate(full)
        self.param_groups.append(full)

    def _validate(self, group: dict[str, Any]) -> None:
        name = type(self).__name__
        if not group["lr"] >= 0:
            raise ValueError(f"{name}: lr must be >= 0, got {group['lr']}")
        if not group.get("weight_decay", 0.0) >= 0:
            raise ValueError(f"{name}: weight_decay must be >= 0, got {group['weight_decay']}")

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient (to ``None`` by default, as in PyTorch 2)."""
        if MODE.observer is not None:  # cr.compile traces this thread: it records the call, then makes it
            return MODE.observer.call(Optimizer.zero_grad, self, set_to_none)
        clear_grads((p for g in self.param_groups for p in g["params"]), set_to_none)

    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        """Update every parameter that has a gradient; ``closure`` (re-evaluates the loss) is optional."""
        if MODE.observer is not None:  # cr.compile traces this thread: it records the call, then makes it
            return MODE.observer.call(Optimizer.step, self, closure)
        loss = None
        if closure is not None:
            from .grad_mode import enable_grad

            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    g = p.grad._data
                    d = p._data
                    if type(d) is not np.ndarray and type(d) is not float:
                        self._update_foreign(p, group)
                        continue
                    arr = _array(d)
                    if type(g) is not np.ndarray:
                        g = np.asarray(g, dtype=arr.dtype)
                    self._update(arr, g, self.state.setdefault(id(p), {}), group)
                    if type(p._data) is not np.ndarray:
                        p._data = float(arr)
                    mark_modified(p)
        return loss

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError

    def _update_native(self, p: Any, g: Any, group: dict[str, Any]) -> bool:
        """Update another library's parameter with that library's own in-place kernels; False: not here."""
        return False

    def _update_foreign(self, p: Tensor, group: dict[str, Any]) -> None:
        """The same NumPy update on another library's parameter: in place through a shared host view
        (torch and array-api-strict on the CPU: the arithmetic, and so the result, is NumPy's); for a
        device array, on a host copy that is then moved back (correct, not fast).  State stays NumPy."""
        from .backend import host_view, move, to_numpy

        d = p._data
        g = p.grad._data
        if self._update_native(d, g, group):
            mark_modified(p)
            return
        view = host_view(d)
        arr = view if view is not None else np.array(to_numpy(d))
        g_host = g if type(g) is np.ndarray else host_view(g)  # read in place where the library allows
        if g_host is None:
            g_host = to_numpy(g)
        self._update(arr, np.asarray(g_host, dtype=arr.dtype), self.state.setdefault(id(p), {}), group)
        if view is None:
            p._data = move(arr, p.device)
        mark_modified(p)

    # --- state dicts (indices instead of tensors, as torch.optim does) ------------------
    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}``, as copies."""
        index: dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ids})
        state = {index[k]: copy.deepcopy(v) for k, v in self.state.items() if k in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and state saved by :meth:`state_dict` from an optimizer over the same shapes.

        Everything is checked before anything changes, so a mismatched state dict
        leaves the optimizer as it was.
        """
        name = type(self).__name__
        try:
            groups = state_dict["param_groups"]
            saved_state = state_dict["state"]
        except (KeyError, TypeError):
            raise ValueError(f"{name}.load_state_dict: expected a dict with 'state' and 'param_groups'") from None
        if len(groups) != len(self.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: the state dict has {len(groups)} parameter groups, "
                f"this optimizer has {len(self.param_groups)}"
            )
        by_index: dict[int, Tensor] = {}
        for gi, (saved, own) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: group {gi} has {len(saved['params'])} parameters in the state dict "
                    f"but {len(own['params'])} here"
                )
            for i, p in zip(saved["params"], own["params"]):
                by_index[int(i)] = p
        new_state: dict[int, dict[str, Any]] = {}
        for key, st in saved_state.items():
            p = by_index.get(int(key))
            if p is None:
                raise ValueError(f"{name}.load_state_dict: state for parameter {key}, which no group lists")
            entry = {}
            for k, v in st.items():
                if isinstance(v, (np.ndarray, Tensor)):
                    v = np.array(v.data if isinstance(v, Tensor) else v, dtype=p.dtype)
                    if v.shape != p.shape:
                        raise ValueError(
                            f"{name}.load_state_dict: state {k!r} of parameter {key} has shape {v.shape}, "
                            f"but the parameter has shape {p.shape}"
                        )
                entry[k] = v
            new_state[id(p)] = entry
        new_groups = []
        for saved, own in zip(groups, self.param_groups):
            g = {**own, **{k: v for k, v in saved.items() if k != "params"}}
            if isinstance(g.get("betas"), list):
                g["betas"] = tuple(g["betas"])
            unknown = set(g) - set(self.defaults) - {"params", "initial_lr"}
            if unknown:
                raise ValueError(f"{name}.load_state_dict: unknown options {sorted(map(str, unknown))[:5]}")
            try:
                self._validate(g)  # the ranges the constructor enforces (betas in [0, 1), lr >= 0, ...)
            except TypeError:
                raise ValueError(f"{name}.load_state_dict: a setting has the wrong type") from None
            except ValueError as exc:
                raise ValueError(f"{name}.load_state_dict: {exc}") from None
            new_groups.append(g)
        self.param_groups = new_groups
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        return "\n".join(lines) + "\n)"


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay.

    As ``torch.optim.SGD``: ``g += weight_decay * p``; ``buf = momentum * buf + (1 - dampening) * g``
    (``buf = g`` on the first step); ``g = g + momentum * buf`` (Nesterov) or ``g = buf``; ``p -= lr * g``.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(
            params,
            {
                "lr": lr,
                "momentum": momentum,
                "dampening": dampening,
                "weight_decay": weight_decay,
                "nesterov": nesterov,
            },
        )

    def _validate(self, group: dict[str, Any]) -> None:
        super()._validate(group)
        if not group["momentum"] >= 0:
            raise ValueError(f"SGD: momentum must be >= 0, got {group['momentum']}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        wd, momentum, lr = group["weight_decay"], group["momentum"], group["lr"]
        keep = 1 - group["dampening"]
        if not _same_kind(p, g, lr, wd, momentum, keep):
            self._update_allocating(p, g, state, group)
            return
        # In place: every product goes into a scratch buffer shared by all parameters, so a step
        # allocates no arrays, and each value is rounded exactly as the allocating form rounds it.
        s2 = self._scratch(p, 0)
        if wd:
            s1 = self._scratch(p, 1)
            np.multiply(p, wd, out=s1)
            s1 += g  # g + wd * p (addition commutes exactly)
            g = s1
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(g, dtype=p.dtype)
            else:
                buf *= momentum
                if keep == 1:
                    buf += g
                else:
                    np.multiply(g, keep, out=s2)
                    buf += s2
            if group["nesterov"]:
                np.multiply(buf, momentum, out=s2)
                s2 += g  # g + momentum * buf
                g = s2
            else:
                g = buf
        np.multiply(g, lr, out=s2)
        p -= s2

    def _update_native(self, p: Any, g: Any, group: dict[str, Any]) -> bool:
        """Plain SGD (no momentum) on a torch tensor: ``p.add_(g, alpha=-lr)``, torch's own update.

        The kernel torch.optim.SGD runs, so a chainrule step on torch tensors leaves the same bits
        as torch's, on any device, without a host round trip.  With momentum (state) the NumPy
        update of :meth:`_update` runs through a host view instead.
        """
        from .backend import library_name

        if group["momentum"] or library_name(p) != "torch" or library_name(g) != "torch":
            return False
        if p.dtype != g.dtype or p.device != g.device or p.shape != g.shape:
            return False
        wd = group["weight_decay"]
        p.add_(g.add(p, alpha=wd) if wd else g, alpha=-group["lr"])
        return True

    def _scratch(self, p: np.ndarray, which: int) -> np.ndarray:
        """A scratch array shaped like ``p``: a view of one flat buffer per dtype, as large as the largest parameter."""
        pool = self.__dict__.setdefault("_scratch_pool", {})
        key = (p.dtype, which)
        flat = pool.get(key)
        if flat is None or flat.size < p.size:
            flat = pool[key] = np.empty(p.size, p.dtype)
        return flat[: p.size].reshape(p.shape)

    def _update_allocating(self, p: np.ndarray, g: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        """The straightforward form, for mixed dtypes or shapes (where NumPy's promotion decides the rounding)."""
        wd, momentum = group["weight_decay"], group["momentum"]
        if wd:
            g = g + wd * p
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(g, dtype=p.dtype)
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * g
            g = g + momentum * buf if group["nesterov"] else buf
        p -= group["lr"] * g


def _same_kind(p: np.ndarray, g: np.ndarray, *scalars: Any) -> bool:
    """Whether ``g`` matches ``p`` and every hyperparameter is a weak Python number (so products stay in p's dtype)."""
    if g.shape != p.shape or g.dtype != p.dtype:
        return False
    return all(type(v) in (int, float) for v in scalars)


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; ``weight_decay`` adds ``wd * p`` to the gradient (L2).

    As ``torch.optim.Adam``: ``m = b1 m + (1-b1) g``, ``v = b2 v + (1-b2) g²``,
    ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``.
    """

    decoupled = False

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})

    def _validate(self, group: dict[str, Any]) -> None:
        super()._validate(group)
        b1, b2 = group["betas"]
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"{type(self).__name__}: betas must lie in [0, 1), got {group['betas']}")
        if not group["eps"] >= 0:
            raise ValueError(f"{type(self).__name__}: eps must be >= 0, got {group['eps']}")

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        b1, b2 = group["betas"]
        if wd:
            if self.decoupled:
                p *= 1 - lr * wd
            else:
                g = g + wd * p
        if "step" not in state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p)
            state["exp_avg_sq"] = np.zeros_like(p)
        state["step"] += 1
        t = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * (g * g)
        denom = np.sqrt(v) / math.sqrt(1 - b2**t)
        denom += eps
        p -= (lr / (1 - b1**t)) * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p *= 1 - lr * weight_decay`` before the Adam step."""

    decoupled = True

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)


class RMSprop(Optimizer):
    """RMSprop (Hinton), as ``torch.optim.RMSprop``.

    ``v = alpha v + (1 - alpha) g²``; centered: ``m = alpha m + (1 - alpha) g`` and
    ``v - m²`` replaces ``v``; ``d = g / (sqrt(v) + eps)``; with momentum
    ``buf = momentum buf + d`` and ``p -= lr buf``, else ``p -= lr d``.
    ``weight_decay`` adds ``wd * p`` to the gradient first.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        super().__init__(
            params,
            {
                "lr": lr,
                "alpha": alpha,
                "eps": eps,
                "weight_decay": weight_decay,
                "momentum": momentum,
                "centered": centered,
            },
        )

    def _validate(self, group: dict[str, Any]) -> None:
        super()._validate(group)
        if not 0 <= group["alpha"] <= 1:
            raise ValueError(f"RMSprop: alpha must lie in [0, 1], got {group['alpha']}")
        if not group["eps"] >= 0:
            raise ValueError(f"RMSprop: eps must be >= 0, got {group['eps']}")
        if not group["momentum"] >= 0:
            raise ValueError(f"RMSprop: momentum must be >= 0, got {group['momentum']}")

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        alpha, eps, wd, momentum = group["alpha"], group["eps"], group["weight_decay"], group["momentum"]
        if wd:
            g = g + wd * p
        if "step" not in state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(p)
            if momentum > 0:
                state["momentum_buffer"] = np.zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = np.zeros_like(p)
        state["step"] += 1
        v = state["square_avg"]
        v *= alpha
        v += (1 - alpha) * (g * g)
        if group["centered"]:
            m = state["grad_avg"]
            m *= alpha
            m += (1 - alpha) * g
            avg = np.sqrt(v - m * m)
        else:
            avg = np.sqrt(v)
        avg += eps
        if momentum > 0:
            buf = state.setdefault("momentum_buffer", np.zeros_like(p))
            buf *= momentum
            buf += g / avg
            p -= group["lr"] * buf
        else:
            p -= group["lr"] * (g / avg)


# --- learning-rate schedules -------------------------------------------------------------
class LRScheduler:
    """Base of the schedules: call ``step()`` once per epoch, after ``optimizer.step()``.

    Each ``step()`` updates every group's current learning rate as torch's
    schedules do (the chainable form: ``ExponentialLR`` multiplies the current
    rate by ``gamma``), so a rate changed by hand between steps carries on from
    the new value, as in torch.  A schedule resumed from its state dict sets the
    rate from the closed form of the epoch count and the group's ``initial_lr``.
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._chain = False  # the first step (here) sets the closed form: a resumed schedule starts exactly
        self.step()
        self._chain = True

    def lr_at(self, base_lr: float, epoch: int) -> float:
        """The closed form: the rate at ``epoch`` for a group that started at ``base_lr``."""
        raise NotImplementedError

    def next_lr(self, lr: float, base_lr: float, epoch: int) -> float:
        """The rate at ``epoch`` from the current rate ``lr`` (torch's chainable form; the closed form if none)."""
        return self.lr_at(base_lr, epoch)

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def step(self) -> None:
        self.last_epoch += 1
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            epoch = self.last_epoch
            g["lr"] = self.next_lr(g["lr"], base, epoch) if self._chain and epoch > 0 else self.lr_at(base, epoch)

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "optimizer"})
        self.base_lrs = list(self.base_lrs)
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["initial_lr"] = base
            g["lr"] = self.lr_at(base, self.last_epoch)


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be a positive number of epochs, got {step_size}")
        self.step_size = int(step_size)
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)

    def next_lr(self, lr: float, base_lr: float, epoch: int) -> float:
        return lr * self.gamma if epoch % self.step_size == 0 else lr


class CosineAnnealingLR(LRScheduler):
    """Anneal from the initial learning rate to ``eta_min`` along half a cosine over ``T_max`` epochs."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:  # noqa: N803
        if T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be a positive number of epochs, got {T_max}")
        self.T_max = int(T_max)
        self.eta_min = float(eta_min)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2

    def next_lr(self, lr: float, base_lr: float, epoch: int) -> float:
        # torch's recursive form; where the cosine's denominator vanishes it adds the step from its trough
        t_max, eta_min = self.T_max, self.eta_min
        if (epoch - 1 - t_max) % (2 * t_max) == 0:
            return lr + (base_lr - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
        return (1 + math.cos(math.pi * epoch / t_max)) / (1 + math.cos(math.pi * (epoch - 1) / t_max)) * (
            lr - eta_min
        ) + eta_min


class ExponentialLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every epoch."""

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma**epoch

    def next_lr(self, lr: float, base_lr: float, epoch: int) -> float:
        return lr * self.gamma


class ReduceLROnPlateau:
    """Cut the learning rate by ``factor`` when a metric has stopped improving for ``patience`` epochs.

    Call ``step(metric)`` once per epoch with the validation loss (``mode="min"``)
    or accuracy (``mode="max"``).  As ``torch.optim.lr_scheduler.ReduceLROnPlateau``:
    an improvement must beat the best value by ``threshold`` (relative in
    ``"rel"`` mode, absolute in ``"abs"``); after a cut, ``cooldown`` epochs pass
    before bad epochs count again; no group goes below its ``min_lr``, and a cut
    smaller than ``eps`` is skipped.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: Any = 0.0,
        eps: float = 1e-8,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"ReduceLROnPlateau: expected an Optimizer, got {type(optimizer).__name__}")
        if factor >= 1.0 or factor < 0:
            raise ValueError(f"ReduceLROnPlateau: factor must lie in [0, 1), got {factor}")
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        n = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n:
                raise ValueError(f"ReduceLROnPlateau: expected {n} min_lr values (one per group), got {len(min_lr)}")
            self.min_lrs = [float(m) for m in min_lr]
        else:
            self.min_lrs = [float(min_lr)] * n
        self.optimizer = optimizer
        self.mode, self.factor, self.patience = mode, float(factor), int(patience)
        self.threshold, self.threshold_mode = float(threshold), threshold_mode
        self.cooldown, self.eps = int(cooldown), float(eps)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0
        self._last_lr = [g["lr"] for g in optimizer.param_groups]

    def is_better(self, a: float, best: float) -> bool:
        if self.mode == "min":
            return a < (best * (1.0 - self.threshold) if self.threshold_mode == "rel" else best - self.threshold)
        return a > (best * (1.0 + self.threshold) if self.threshold_mode == "rel" else best + self.threshold)

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def step(self, metrics: Any) -> None:
        current = float(metrics.item() if hasattr(metrics, "item") else metrics)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for g, floor in zip(self.optimizer.param_groups, self.min_lrs):
                new = max(g["lr"] * self.factor, floor)
                if g["lr"] - new > self.eps:
                    g["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "optimizer"})


class _LRSchedulerNamespace:
    """``cr.optim.lr_scheduler.StepLR`` and friends, where a PyTorch user looks for them."""

    LRScheduler = LRScheduler
    StepLR = StepLR
    CosineAnnealingLR = CosineAnnealingLR
    ExponentialLR = ExponentialLR
    ReduceLROnPlateau = ReduceLROnPlateau


lr_scheduler = _LRSchedulerNamespace()

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "ExponentialLR",
    "LRScheduler",
    "Optimizer",
    "RMSprop",
    "ReduceLROnPlateau",
    "StepLR",
    "lr_scheduler",
]
