"""``Module``: the base of every layer, and ``Sequential``.

A module owns *parameters* (tensors that require grad, assigned as attributes)
and *submodules* (modules assigned as attributes).  Both are found by
attribute assignment, as in ``torch.nn``, so a layer is written as::

    class Affine(cr.nn.Module):
        def __init__(self, n):
            super().__init__()
            self.scale = cr.nn.Parameter(np.ones(n, np.float32))

        def forward(self, x):
            return x * self.scale
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple, Optional

import numpy as np

from ..backend import to_numpy
from ..creation import tensor
from ..grad_mode import MODE, no_grad
from ..methods import clear_grads
from ..tensor import Tensor
from ..versions import mark_modified


def Parameter(data: Any, dtype: Any = None) -> Tensor:  # noqa: N802  (named like torch.nn.Parameter)
    """A trainable tensor: a float copy of ``data`` with ``requires_grad=True``.

    chainrule has no Parameter subclass: a module treats every tensor attribute
    that requires grad as a parameter.
    """
    arr = np.array(data.data if isinstance(data, Tensor) else data, dtype=dtype)
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float32)
    return Tensor(arr, True)


# Who registered each parameter and submodule, under which name: id(obj) -> (ref to obj, ref to owner, name).
# Read by qualified_name(), so the tools that show the work can call a model's tensors ``0.weight`` unasked.
_OWNERS: dict[int, tuple[weakref.ref, weakref.ref, str]] = {}


def _record_owner(obj: Any, owner: Any, name: str) -> None:
    key = id(obj)

    def forget(ref: weakref.ref, key: int = key) -> None:
        entry = _OWNERS.get(key)
        if entry is not None and entry[0] is ref:
            del _OWNERS[key]

    _OWNERS[key] = (weakref.ref(obj, forget), weakref.ref(owner), name)


def qualified_name(obj: Any) -> Optional[str]:
    """The dotted name under which ``obj`` was last registered, from its outermost module (``0.weight``).

    ``None`` for a tensor no module registered.  The name is relative to the
    module that nothing else registered, as ``named_parameters()`` of that
    module gives it.
    """
    parts: list[str] = []
    seen: set[int] = set()
    while True:
        entry = _OWNERS.get(id(obj))
        if entry is None or entry[0]() is not obj:
            break
        owner = entry[1]()
        if owner is None or id(owner) in seen:
            break
        parts.append(entry[2])
        seen.add(id(owner))
        obj = owner
    return ".".join(reversed(parts)) or None


class _Registered(OrderedDict):
    """A module's ``_parameters`` / ``_modules``: an ordered dict that records who holds each entry."""

    def __init__(self, owner: Any = None) -> None:
        super().__init__()
        self._owner = weakref.ref(owner) if owner is not None else None

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        owner = self._owner() if self._owner is not None else None
        if owner is not None and value is not None:
            _record_owner(value, owner, key)


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` skipped."""

    missing_keys: list[str]
    unexpected_keys: list[str]

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"  # what torch prints for a clean load
        return f"IncompatibleKeys(missing_keys={self.missing_keys!r}, unexpected_keys={self.unexpected_keys!r})"


class Module:
    """Base class of layers and models: call it like a function to run ``forward``."""

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", _Registered(self))
        object.__setattr__(self, "_modules", _Registered(self))
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "training", True)

    # --- registration through attributes ---------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_parameters")
        if params is None:
            raise AttributeError(
                f"{type(self).__name__}: call super().__init__() before assigning attributes in __init__"
            )
        buffers = self.__dict__.get("_buffers")
        if buffers is not None and name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(
                    f"{type(self).__name__}.{name} is a buffer: assign a Tensor or None, got {type(value).__name__}"
                )
            buffers[name] = value
            return
        params.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Tensor) and value.requires_grad:
            if value._node is not None:
                raise ValueError(
                    f"{type(self).__name__}.{name}: a parameter must be a leaf tensor, but this one was computed "
                    f"by '{value.op}'; use cr.nn.Parameter(value.detach())"
                )
            self.__dict__.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            self.__dict__.pop(name, None)
            self._modules[name] = value
        else:
            _refuse_unregistered_container(self, name, value)
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        if "_parameters" in d and name in d["_parameters"]:
            return d["_parameters"][name]
        if "_modules" in d and name in d["_modules"]:
            return d["_modules"][name]
        if "_buffers" in d and name in d["_buffers"]:
            return d["_buffers"][name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        if name in self._parameters:
            del self._parameters[name]
        elif name in self._modules:
            del self._modules[name]
        elif name in self._buffers:
            del self._buffers[name]
            self._non_persistent.discard(name)
        else:
            object.__delattr__(self, name)

    def register_parameter(self, name: str, value: Tensor | None) -> None:
        """Add a parameter under ``name`` (``None`` removes it)."""
        if value is None:
            self._parameters.pop(name, None)
            return
        if not isinstance(value, Tensor) or not value.requires_grad:
            raise TypeError(f"register_parameter: {name!r} must be a tensor that requires grad")
        setattr(self, name, value)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add a tensor that is state but not a parameter (BatchNorm's running statistics).

        Buffers are not trained, are moved by :meth:`to`, and are saved in
        :meth:`state_dict` unless ``persistent=False``.
        """
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"register_buffer: the name must be a non-empty string without dots, got {name!r}")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: {name!r} must be a Tensor or None, got {type(tensor).__name__}")
        if name in self._parameters or name in self._modules:
            raise KeyError(f"register_buffer: {name!r} is already a parameter or submodule of {type(self).__name__}")
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module, got {type(module).__name__}")
        setattr(self, name, module)

    # --- calling -----------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if MODE.observer is not None:  # cr.compile traces this thread: it guards the modules called
            MODE.observer.enter(self)
        if "_forward_hooks" in self.__dict__:  # torch's forward (pre-)hooks, registered through hooks.py
            return self._call_with_hooks(args, kwargs)
        return self.forward(*args, **kwargs)

    # --- traversal ---------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every submodule, depth first, each once."""
        seen: set[int] = set()
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            name, mod = stack.pop()
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            yield name, mod
            kids = [(f"{name}.{k}" if name else k, m) for k, m in mod._modules.items()]
            stack.extend(reversed(kids))

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        """``(dotted name, tensor)`` for every parameter; a shared tensor is listed once."""
        seen: set[int] = set()
        mods = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for mname, mod in mods:
            for pname, p in mod._parameters.items():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mname}.{pname}" if mname else pname), p

    def parameters(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        """``(dotted name, tensor)`` for every buffer that is not ``None``."""
        seen: set[int] = set()
        mods = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for mname, mod in mods:
            for bname, b in mod.__dict__.get("_buffers", {}).items():
                if b is None or id(b) in seen:
                    continue
                seen.add(id(b))
                yield (f"{mname}.{bname}" if mname else bname), b

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def _state_items(self) -> Iterator[tuple[str, Tensor]]:
        """What a state dict holds, in torch's order: each module's parameters, then its persistent buffers."""
        seen: set[int] = set()
        for mname, mod in self.named_modules():
            d = mod.__dict__
            entries = list(d["_parameters"].items()) + [
                (k, b)
                for k, b in d.get("_buffers", {}).items()
                if b is not None and k not in d.get("_non_persistent", ())
            ]
            for name, t in entries:
                if id(t) in seen:
                    continue
                seen.add(id(t))
                yield (f"{mname}.{name}" if mname else name), t

    def apply(self, fn: Any) -> Module:
        """Call ``fn(module)`` on every submodule, children before parents, then this one (``model.apply(init)``)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # --- modes and gradients ---------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode (Dropout active) on this module and its submodules."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Set evaluation mode (Dropout is the identity)."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of all parameters (to ``None``, or to zeros in place)."""
        if MODE.observer is not None:  # cr.compile traces this thread: it records the call, then makes it
            return MODE.observer.call(Module.zero_grad, self, set_to_none)
        clear_grads(self.parameters(), set_to_none)

    def to(self, *args: Any, device: Any = None, dtype: Any = None) -> Module:
        """Move and/or convert every parameter and floating buffer in place, as torch's ``Module.to``.

        ``to(dtype)``, ``to(device)``, ``to(device, dtype)`` or ``to(tensor)``.  A
        device is ``"cpu"``, ``"cuda"``/``"cuda:N"``, ``"numpy"`` or an array
        library's device object (``torch.device("cpu")`` runs the model on torch
        tensors); see :mod:`chainrule.backend`.  The parameter tensors stay the
        same objects, so an optimizer made earlier keeps working; their gradients
        are cleared.  Integer buffers (counters) keep their dtype, as in torch.
        """
        from ..backend import move

        for a in args:
            if isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            elif isinstance(a, str) and a.split(":")[0] in ("cpu", "cuda", "numpy"):
                device = a
            elif isinstance(a, (str, np.dtype)) or (isinstance(a, type) and issubclass(a, np.generic)):
                dtype = a
            else:
                device = a
        if dtype is not None:
            dtype = np.dtype(dtype)
            if dtype.kind != "f":
                raise TypeError(f"Module.to: parameters need a floating-point dtype, got {dtype}")
        moved = [(p, True) for p in self.parameters()] + [(b, False) for b in self.buffers()]
        new_values = []
        for t, is_param in moved:  # every move first, so a failure leaves the module as it was
            value = t._data
            if device is not None:
                value = move(value, device)
            if dtype is not None and (is_param or t.dtype.kind == "f"):
                value = tensor(value, dtype=dtype)._data
            new_values.append(value)
        with no_grad():
            for (t, is_param), value in zip(moved, new_values):
                if value is t._data:
                    continue
                t._data = value
                mark_modified(t)
                if is_param:
                    t.grad = None
        return self

    def cpu(self) -> Module:
        """Every parameter and buffer on the CPU, in place (``model.cpu()``): ``to("cpu")``."""
        return self.to("cpu")

    def cuda(self, device: Any = None) -> Module:
        """``to("cuda")`` or ``to("cuda:N")``: raises, naming the devices there are, where no GPU library is."""
        return self.to("cuda" if device is None else f"cuda:{getattr(device, 'index', device)}")

    def float(self) -> Module:
        return self.to(np.float32)

    def double(self) -> Module:
        return self.to(np.float64)

    # --- state -------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, Tensor]:
        """Every parameter and persistent buffer by dotted name, detached and sharing their memory, as in torch.

        Later updates show in the entries, and writes into an entry update the module (the EMA idiom
        ``ema.state_dict()[k].mul_(d)``); take ``copy.deepcopy(model.state_dict())`` for a snapshot."""
        return OrderedDict((name, p.detach()) for name, p in self._state_items())

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy values into the parameters by name.

        With ``strict=True`` (the default) a missing or unexpected key is an
        error; a value whose shape differs from its parameter's is always an
        error.  Everything is checked before anything is written, so a failed
        load leaves the module unchanged.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict: expected a mapping of names to arrays, got {type(state_dict).__name__}")
        own = dict(self._state_items())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise KeyError(
                f"load_state_dict for {type(self).__name__}: " + " and ".join(parts) + f"; the module has {list(own)}"
            )
        staged = []
        for name, p in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            arr = np.asarray(to_numpy(value._data if isinstance(value, Tensor) else value))
            if arr.shape != p.shape:
                raise ValueError(
                    f"load_state_dict for {type(self).__name__}: {name!r} has shape {arr.shape} in the state dict "
                    f"but the parameter has shape {p.shape}"
                )
            if arr.dtype.kind not in "biuf":
                raise TypeError(f"load_state_dict: {name!r} has non-numeric dtype {arr.dtype}")
            if p.dtype.kind in "iu" and arr.dtype.kind == "f":
                raise TypeError(f"load_state_dict: {name!r} is an integer buffer, got a {arr.dtype} value")
            staged.append((p, arr))
        with no_grad():
            for p, arr in staged:
                if type(p._data) is float:
                    p._data = float(arr)
                elif type(p._data) is not np.ndarray:  # another library's array: the values, moved there
                    p._data = tensor(arr, dtype=p.dtype, device=p.device)._data
                else:
                    np.copyto(p._data, arr, casting="unsafe")
                mark_modified(p)
        return IncompatibleKeys(missing, unexpected)

    # --- printing --------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text between the parentheses of this module's repr (override in layers)."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        if not self._modules:
            return f"{type(self).__name__}({extra})"
        lines = [f"{type(self).__name__}(" + extra]
        for name, m in self._modules.items():
            body = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"


_CONTAINERS = {list: "ModuleList", tuple: "ModuleList", dict: "ModuleDict"}


def _refuse_unregistered_container(module: Module, name: str, value: Any) -> None:
    """Refuse a plain list, tuple or dict of modules or parameters as an attribute.

    torch accepts one and silently leaves its contents unregistered: their
    parameters are missing from ``parameters()`` (so never trained) and from
    ``state_dict()``.  chainrule raises instead and names the container that
    registers them.  (To keep such a list unregistered on purpose, store it
    with ``object.__setattr__(self, name, value)``.)
    """
    kind = _CONTAINERS.get(type(value))
    if kind is None:
        return
    items = value.values() if isinstance(value, dict) else value
    has_module = any(isinstance(v, Module) for v in items)
    # a parameter is a leaf that requires grad; a computed tensor (an RNN's hidden state) is plain data
    has_param = any(isinstance(v, Tensor) and v.requires_grad and v.is_leaf for v in items)
    if not has_module and not has_param:
        return
    owner = type(module).__name__
    if has_module:
        container = f"cr.nn.{kind}"
    else:
        container = "cr.nn.ParameterDict" if kind == "ModuleDict" else "cr.nn.ParameterList"
    raise TypeError(
        f"{owner}.{name}: a plain {type(value).__name__} of {'modules' if has_module else 'parameters'} is not "
        f"registered (its parameters would be neither trained nor saved); use self.{name} = {container}(...). "
        f"To keep it unregistered on purpose: object.__setattr__(self, {name!r}, value)"
    )


class Sequential(Module):
    """Modules applied in order; submodules are named ``"0"``, ``"1"``, ..."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], Mapping):  # Sequential(OrderedDict(name=layer)), as torch
            for name, m in modules[0].items():
                self.add_module(str(name), m)
            return
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self._modules)), module)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def __getitem__(self, index: int | slice) -> Any:
        mods = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*mods[index])
        try:
            return mods[index]
        except IndexError:
            raise IndexError(f"Sequential: index {index} out of range for {len(mods)} modules") from None

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x
