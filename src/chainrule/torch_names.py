"""torch's names that chainrule lacks: one clear error, on modules and on ``Tensor``.

A public name that is not there raises :class:`NotSupportedError`, which is both an
``AttributeError`` (so ``hasattr`` and ``getattr(x, name, default)`` work as usual) and a
``NotImplementedError``.  The message says that chainrule does not support the name and, where
there is one, the chainrule way to do the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

from .tensor import Tensor


class NotSupportedError(AttributeError, NotImplementedError):
    """A torch name that chainrule (or ``chainrule.torch``) does not provide."""


# torch name -> the chainrule way (shown in the error).  Keys are bare names; they apply on every module.
HINTS: dict[str, str] = {
    "cuda": "chainrule computes with NumPy on the CPU; t.to('cuda') moves a tensor onto a GPU array library "
    "(CuPy or torch) when one is installed, see docs/backends.md",
    "compile": "use chainrule.compile (cr.compile) for a compiled replay of a traced step",
    "jit": "chainrule has no TorchScript; cr.compile replays a traced step",
    "vmap": "loop over the batch, or use per-sample gradients with cr.jacobian",
    "atan2": "compose it: torch.atan(y / x) with the quadrant fixed by torch.where",
    "cumprod": "compose it: torch.exp(torch.cumsum(torch.log(x), dim)) for positive x",
    "kron": "compose it from reshape and broadcasting: (a[:, None, :, None] * b[None, :, None, :]).reshape(...)",
    "cross": "compose it from indexing: torch.stack([a[1]*b[2]-a[2]*b[1], ...])",
    "sparse": "chainrule has dense tensors only",
    "distributions": "draw with torch.rand / torch.randn and write the log-density as an expression",
    "quantization": "chainrule has float tensors only; no quantization",
    "fft": "no FFT in chainrule",
    "complex": "chainrule has real (float, int, bool) tensors only",
    "register_full_backward_hook": "use a tensor hook: out.register_hook(fn) on the module's output",
    "register_backward_hook": "use a tensor hook: out.register_hook(fn) on the module's output",
    "share_memory_": "chainrule has no multiprocessing tensors; cr.distributed trains on several processes",
    "pin_memory": "no pinned memory in chainrule (it computes on the CPU)",
    "is_cuda": "tensors live on the CPU unless moved to another array library (t.device says where)",
}

WHERE = "chainrule.torch"


def refusal(where: str, name: str) -> NotSupportedError:
    """The error for ``where.name``: not supported, and the chainrule way if :data:`HINTS` knows one."""
    hint = HINTS.get(name)
    text = f"{where}.{name} is not supported in chainrule.torch (chainrule has no such name)"
    if hint:
        text += f"; the chainrule way: {hint}"
    else:
        text += "; see docs/torch.md for what chainrule.torch provides"
    return NotSupportedError(text)


def module_getattr(where: str) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` that refuses every missing public name of module ``where`` clearly."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__") or name.startswith("_"):
            raise AttributeError(f"module {where!r} has no attribute {name!r}")
        raise refusal(where, name)

    return __getattr__


def _tensor_getattr(self: Tensor, name: str) -> Any:
    """Reached only when normal lookup fails: private names stay plain AttributeErrors (unset slots)."""
    if name.startswith("_"):
        raise AttributeError(f"'Tensor' object has no attribute {name!r}")
    raise refusal("Tensor", name)


def install_tensor_fallback(hints: Optional[dict[str, str]] = None) -> None:
    """Attach the ``Tensor`` fallback (done once, when chainrule is imported)."""
    if hints:
        HINTS.update(hints)
    Tensor.__getattr__ = _tensor_getattr  # type: ignore[attr-defined]


install_tensor_fallback()
