"""torch's module conveniences on :class:`Module`: forward hooks and pre-hooks, ``requires_grad_``,
``get_submodule`` / ``get_parameter`` / ``get_buffer``.  Attached to the class when ``chainrule.nn`` loads."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .module import Module

_IDS = itertools.count()


class RemovableHandle:
    """What ``register_*_hook`` returns: ``handle.remove()`` unregisters the hook."""

    def __init__(self, table: OrderedDict, key: int) -> None:
        self._table, self.id = table, key

    def remove(self) -> None:
        self._table.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def _tables(module: Module) -> tuple[OrderedDict, OrderedDict]:
    d = module.__dict__
    if "_forward_hooks" not in d:
        object.__setattr__(module, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(module, "_forward_hooks", OrderedDict())
    return d["_forward_pre_hooks"], d["_forward_hooks"]


def register_forward_pre_hook(
    self: Module, hook: Callable, *, prepend: bool = False, with_kwargs: bool = False
) -> RemovableHandle:
    """``hook(module, args)`` runs before ``forward``; a non-None result replaces the positional args."""
    pre, _ = _tables(self)
    key = next(_IDS)
    pre[key] = (hook, with_kwargs)
    if prepend:
        pre.move_to_end(key, last=False)
    return RemovableHandle(pre, key)


def register_forward_hook(
    self: Module, hook: Callable, *, prepend: bool = False, with_kwargs: bool = False, always_call: bool = False
) -> RemovableHandle:
    """``hook(module, args, output)`` runs after ``forward``; a non-None result replaces the output."""
    _, post = _tables(self)
    key = next(_IDS)
    post[key] = (hook, with_kwargs)
    if prepend:
        post.move_to_end(key, last=False)
    return RemovableHandle(post, key)


def _call_with_hooks(self: Module, args: tuple, kwargs: dict) -> Any:
    pre, post = _tables(self)
    for hook, with_kwargs in list(pre.values()):
        if with_kwargs:
            result = hook(self, args, kwargs)
            if result is not None:
                args, kwargs = result
        else:
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
    out = self.forward(*args, **kwargs)
    for hook, with_kwargs in list(post.values()):
        result = hook(self, args, kwargs, out) if with_kwargs else hook(self, args, out)
        if result is not None:
            out = result
    return out


def requires_grad_(self: Module, requires_grad: bool = True) -> Module:
    """Switch ``requires_grad`` of every parameter (freeze with ``False``)."""
    for p in self.parameters():
        p.requires_grad_(requires_grad)
    return self


def get_submodule(self: Module, target: str) -> Module:
    """The submodule at dotted path ``target`` (``''`` is the module itself)."""
    mod = self
    if target == "":
        return mod
    for part in target.split("."):
        kids = mod.__dict__["_modules"]
        if part not in kids:
            raise AttributeError(f"{type(mod).__name__} has no submodule {part!r} (looking up {target!r})")
        mod = kids[part]
    return mod


def _owner_and_name(self: Module, target: str) -> tuple[Module, str]:
    path, _, name = target.rpartition(".")
    return get_submodule(self, path), name


def get_parameter(self: Module, target: str) -> Any:
    mod, name = _owner_and_name(self, target)
    if name not in mod.__dict__["_parameters"]:
        raise AttributeError(f"{type(mod).__name__} has no parameter {name!r} (looking up {target!r})")
    return mod.__dict__["_parameters"][name]


def get_buffer(self: Module, target: str) -> Any:
    mod, name = _owner_and_name(self, target)
    if name not in mod.__dict__.get("_buffers", {}):
        raise AttributeError(f"{type(mod).__name__} has no buffer {name!r} (looking up {target!r})")
    return mod.__dict__["_buffers"][name]


for _name, _fn in (
    ("register_forward_pre_hook", register_forward_pre_hook),
    ("register_forward_hook", register_forward_hook),
    ("_call_with_hooks", _call_with_hooks),
    ("requires_grad_", requires_grad_),
    ("get_submodule", get_submodule),
    ("get_parameter", get_parameter),
    ("get_buffer", get_buffer),
):
    if not hasattr(Module, _name) or _name == "_call_with_hooks":
        setattr(Module, _name, _fn)
