"""Reading PyTorch's own ``torch.save`` files (the zip format of torch >= 1.6) without running their code.

A ``.pt`` file is a zip holding ``data.pkl`` (a pickle) and one raw byte file per storage.  The pickle
is read by an unpickler that knows a handful of names only (``collections.OrderedDict``, torch's
tensor and parameter rebuilders and storage types), each mapped to chainrule's own code; any other
global (a class, a function: the way pickles run code) is refused, as ``torch.load(weights_only=True)``
refuses it.  torch is never imported.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from typing import Any, BinaryIO

import numpy as np

from ..checkpoint import CheckpointError
from ..tensor import Tensor

_STORAGES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name, self.dtype = name, np.dtype(_STORAGES[name])


class _Storage:
    def __init__(self, array: np.ndarray) -> None:
        self.array = array


def _rebuild_tensor_v2(
    storage: _Storage, offset: int, size: tuple, stride: tuple, requires_grad: bool, hooks: Any, metadata: Any = None
) -> Tensor:
    base = storage.array
    item = base.itemsize
    need = offset + sum((s - 1) * st for s, st in zip(size, stride)) + 1 if all(size) else offset
    if need > base.size or offset < 0 or any(st < 0 for st in stride):
        raise CheckpointError(
            f"torch.load: a tensor of size {tuple(size)} and stride {tuple(stride)} does not fit its storage"
        )
    view = np.lib.stride_tricks.as_strided(base[offset:], shape=tuple(size), strides=tuple(st * item for st in stride))
    arr = np.array(view)  # a copy of its own
    return Tensor(arr, bool(requires_grad) and arr.dtype.kind == "f")


def _rebuild_parameter(data: Tensor, requires_grad: bool, hooks: Any, state: Any = None) -> Tensor:
    from .nn._parameter import Parameter  # noqa: PLC0415  (the facade's nn loads after this module)

    return Parameter(data, requires_grad=bool(requires_grad))


_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}


class _Restricted(pickle.Unpickler):
    def __init__(self, f: BinaryIO, zf: zipfile.ZipFile, prefix: str, byteorder: str) -> None:
        super().__init__(f)
        self._zf, self._prefix, self._byteorder = zf, prefix, byteorder
        self._storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _GLOBALS:
            return _GLOBALS[(module, name)]
        if module == "torch" and name in _STORAGES:
            return _StorageType(name)
        raise pickle.UnpicklingError(
            f"torch.load: the file refers to {module}.{name}, which chainrule.torch does not load: only tensors, "
            "parameters, state dicts and plain containers (dict, list, tuple, numbers, strings) are read, and no "
            "code is run (torch's weights_only=True); save a state dict (model.state_dict()) instead"
        )

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"torch.load: unsupported storage record {pid!r:.100}")
        _, stype, key, location, numel = pid
        if key not in self._storages:
            raw = self._zf.read(f"{self._prefix}data/{key}")
            arr = np.frombuffer(raw, dtype=stype.dtype.newbyteorder("<" if self._byteorder == "little" else ">"))
            if arr.size < numel:
                raise CheckpointError(f"torch.load: storage {key} holds {arr.size} elements, the file says {numel}")
            self._storages[key] = _Storage(arr.astype(stype.dtype))
        return self._storages[key]


def is_torch_zip(zf: zipfile.ZipFile) -> bool:
    return any(n.endswith("/data.pkl") for n in zf.namelist())


def load_torch_zip(zf: zipfile.ZipFile) -> Any:
    """The object in a torch zip checkpoint, its tensors as chainrule tensors."""
    pkl = next(n for n in zf.namelist() if n.endswith("/data.pkl"))
    prefix = pkl[: -len("data.pkl")]
    try:
        byteorder = zf.read(f"{prefix}byteorder").decode().strip()
    except KeyError:
        byteorder = "little"
    with zf.open(pkl) as f:
        return _Restricted(f, zf, prefix, byteorder).load()
