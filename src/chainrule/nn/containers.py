"""Containers that register what they hold: ``ModuleList``, ``ModuleDict``, ``ParameterList``, ``ParameterDict``.

A plain Python list of layers assigned to a module is refused (see
``Module.__setattr__``): its parameters would be neither trained nor saved.
These containers name their entries ``"0"``, ``"1"``, ... (lists) or by key
(dicts), so ``state_dict()`` keys read ``layers.0.weight`` as in torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Optional, Union

from ..tensor import Tensor
from .module import Module


def _index(i: int, n: int, owner: str) -> int:
    if not isinstance(i, int):
        raise TypeError(f"{owner}: indices must be integers or slices, got {type(i).__name__}")
    if not -n <= i < n:
        raise IndexError(f"{owner}: index {i} out of range for {n} entries")
    return i % n


def _module(m: Any, owner: str) -> Module:
    if not isinstance(m, Module):
        raise TypeError(f"{owner}: entries must be Modules, got {type(m).__name__}")
    return m


class ModuleList(Module):
    """A list of submodules, each registered (``model.layers[0]``, ``for layer in model.layers``).

    It has no ``forward``: iterate over it in your own module's ``forward``.
    """

    def __init__(self, modules: Optional[Iterable[Module]] = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _values(self) -> list[Module]:
        return list(self._modules.values())

    def _renumber(self, mods: list[Module]) -> None:
        self._modules.clear()
        for i, m in enumerate(mods):
            self._modules[str(i)] = m

    def __repr__(self) -> str:
        """As torch: consecutive identical entries print once, as ``(0-2): 3 x Linear(...)``."""
        reprs = [repr(m) for m in self._values()]
        if not reprs:
            return f"{type(self).__name__}()"
        runs: list[list] = []
        for i, r in enumerate(reprs):
            if runs and runs[-1][2] == r:
                runs[-1][1] = i
            else:
                runs.append([i, i, r])
        lines = []
        for first, last, r in runs:
            head = f"({first}): " if first == last else f"({first}-{last}): {last - first + 1} x "
            lines.append((head + r).replace("\n", "\n  "))
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self._modules)), _module(module, "ModuleList.append"))
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        if isinstance(modules, Module) and not hasattr(modules, "__iter__"):
            raise TypeError("ModuleList.extend: expected an iterable of Modules, got a single Module; use append")
        for m in list(modules):
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        mods = self._values()
        mods.insert(index, _module(module, "ModuleList.insert"))
        self._renumber(mods)

    def pop(self, index: int = -1) -> Module:
        mods = self._values()
        m = mods.pop(_index(index, len(mods), "ModuleList.pop"))
        self._renumber(mods)
        return m

    def __getitem__(self, index: Union[int, slice]) -> Any:
        mods = self._values()
        if isinstance(index, slice):
            return ModuleList(mods[index])
        return mods[_index(index, len(mods), "ModuleList")]

    def __setitem__(self, index: int, module: Module) -> None:
        i = _index(index, len(self._modules), "ModuleList")
        self._modules[str(i)] = _module(module, "ModuleList")

    def __delitem__(self, index: Union[int, slice]) -> None:
        mods = self._values()
        if isinstance(index, slice):
            del mods[index]
        else:
            del mods[_index(index, len(mods), "ModuleList")]
        self._renumber(mods)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._values())

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def __add__(self, other: Iterable[Module]) -> ModuleList:
        return ModuleList([*self, *other])

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "ModuleList has no forward(): loop over it in your module's forward, or use cr.nn.Sequential"
        )


class ModuleDict(Module):
    """A dict of submodules, each registered under its key (``model.heads["cls"]``)."""

    def __init__(self, modules: Optional[Union[Mapping[str, Module], Iterable[tuple[str, Module]]]] = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def _check_key(self, key: Any) -> str:
        if not isinstance(key, str) or not key or "." in key:
            raise KeyError(f"ModuleDict: keys must be non-empty strings without dots, got {key!r}")
        return key

    def __getitem__(self, key: str) -> Module:
        try:
            return self._modules[key]
        except KeyError:
            raise KeyError(f"ModuleDict: no entry {key!r}; keys are {list(self._modules)}") from None

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(self._check_key(key), _module(module, "ModuleDict"))

    def __delitem__(self, key: str) -> None:
        self[key]  # noqa: B018  (raises the clear KeyError)
        del self._modules[key]

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._modules))

    def keys(self) -> list[str]:
        return list(self._modules.keys())

    def values(self) -> list[Module]:
        return list(self._modules.values())

    def items(self) -> list[tuple[str, Module]]:
        return list(self._modules.items())

    def pop(self, key: str) -> Module:
        m = self[key]
        del self._modules[key]
        return m

    def clear(self) -> None:
        self._modules.clear()

    def update(self, modules: Union[Mapping[str, Module], Iterable[tuple[str, Module]]]) -> None:
        pairs = modules.items() if isinstance(modules, (Mapping, ModuleDict)) else modules
        for key, m in pairs:
            self[key] = m

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ModuleDict has no forward(): pick entries by key in your module's forward")


def _parameter(p: Any, owner: str) -> Tensor:
    if not isinstance(p, Tensor) or not p.requires_grad or not p.is_leaf:
        raise TypeError(f"{owner}: entries must be leaf tensors with requires_grad=True (cr.nn.Parameter(...))")
    return p


class ParameterList(Module):
    """A list of parameters, each registered under ``"0"``, ``"1"``, ..."""

    def __init__(self, values: Optional[Iterable[Tensor]] = None) -> None:
        super().__init__()
        for p in values or ():
            self.append(p)

    def append(self, value: Tensor) -> ParameterList:
        self.register_parameter(str(len(self._parameters)), _parameter(value, "ParameterList.append"))
        return self

    def extend(self, values: Iterable[Tensor]) -> ParameterList:
        for p in values:
            self.append(p)
        return self

    def __getitem__(self, index: int) -> Tensor:
        ps = list(self._parameters.values())
        return ps[_index(index, len(ps), "ParameterList")]

    def __setitem__(self, index: int, value: Tensor) -> None:
        i = _index(index, len(self._parameters), "ParameterList")
        self._parameters[str(i)] = _parameter(value, "ParameterList")

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self) -> Iterator[Tensor]:
        return iter(list(self._parameters.values()))


class ParameterDict(Module):
    """A dict of parameters, each registered under its key."""

    def __init__(self, values: Optional[Mapping[str, Tensor]] = None) -> None:
        super().__init__()
        for k, p in (values or {}).items():
            self[k] = p

    def __getitem__(self, key: str) -> Tensor:
        try:
            return self._parameters[key]
        except KeyError:
            raise KeyError(f"ParameterDict: no entry {key!r}; keys are {list(self._parameters)}") from None

    def __setitem__(self, key: str, value: Tensor) -> None:
        if not isinstance(key, str) or not key or "." in key:
            raise KeyError(f"ParameterDict: keys must be non-empty strings without dots, got {key!r}")
        self.register_parameter(key, _parameter(value, "ParameterDict"))

    def __contains__(self, key: object) -> bool:
        return key in self._parameters

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._parameters))

    def keys(self) -> list[str]:
        return list(self._parameters.keys())

    def values(self) -> list[Tensor]:
        return list(self._parameters.values())

    def items(self) -> list[tuple[str, Tensor]]:
        return list(self._parameters.items())
