"""``torch.save`` / ``torch.load`` over chainrule's checkpoint format (a zip of ``.npy`` arrays and a JSON
index, so loading never runs code): paths and file objects (``BytesIO``), ``map_location`` and
``weights_only``."""

from __future__ import annotations

import os
import tempfile
import zipfile
from typing import Any

from .. import checkpoint as _ckpt
from . import _torch_pickle as _tp
from ._core import device


def _is_file_object(f: Any) -> bool:
    return hasattr(f, "write") or hasattr(f, "read")


def save(
    obj: Any, f: Any, pickle_module: Any = None, pickle_protocol: int = 2, _use_new_zipfile_serialization: bool = True
) -> None:  # noqa: ARG001
    """Write ``obj`` (tensors, state dicts, and dicts/lists/tuples/numbers/strings of them) to a path or file object.

    chainrule writes its own safe format, not torch's pickle: ``torch.load`` of chainrule.torch reads it back;
    real torch cannot (move state dicts to torch through safetensors, see docs/torch.md).
    """
    if pickle_module is not None:
        raise NotImplementedError("torch.save(pickle_module=...): chainrule never pickles; leave it out")
    if not _is_file_object(f):
        _ckpt.save(obj, f)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "checkpoint.pt")
        _ckpt.save(obj, path)
        with open(path, "rb") as src:
            f.write(src.read())


def _cpu_location(map_location: Any) -> None:
    if map_location is None or callable(map_location):
        if callable(map_location):
            raise NotImplementedError(
                "torch.load(map_location=<function>): chainrule loads onto the CPU; "
                "pass map_location='cpu' or leave it out"
            )
        return
    if isinstance(map_location, dict):
        targets = set(map_location.values())
        if all(str(device(t)) == "cpu" for t in targets):
            return
    elif isinstance(map_location, (str, device)) and device(map_location).type == "cpu":
        return
    raise RuntimeError(
        f"torch.load(map_location={map_location!r}): chainrule.torch loads onto the CPU only; use map_location='cpu'"
    )


def load(
    f: Any,
    map_location: Any = None,
    pickle_module: Any = None,
    *,
    weights_only: Any = None,
    mmap: Any = None,
    **kwargs: Any,
) -> Any:  # noqa: ARG001
    """Read what :func:`save` wrote, from a path or a file object.

    Reads chainrule's own format, PyTorch's zip format (``.pt`` written by real torch: tensors, parameters,
    state dicts and plain containers, through an unpickler that runs no code) and ``.safetensors`` files.
    Loading never executes code, so ``weights_only=True`` and ``False`` behave the same.
    """
    if pickle_module is not None:
        raise NotImplementedError("torch.load(pickle_module=...): chainrule never unpickles; leave it out")
    _cpu_location(map_location)
    if not _is_file_object(f):
        return _load_path(os.fspath(f))
    data = f.read()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "checkpoint.pt")
        with open(path, "wb") as dst:
            dst.write(data)
        return _load_path(path)


def _load_path(path: str) -> Any:
    if path.endswith(".safetensors"):
        from .safetensors import load_file  # noqa: PLC0415

        return load_file(path)
    try:
        with zipfile.ZipFile(path) as zf:
            if _tp.is_torch_zip(zf):
                return _tp.load_torch_zip(zf)
    except zipfile.BadZipFile:
        if _is_legacy_pickle(path):
            raise _ckpt.CheckpointError(
                f"torch.load: {path} is in PyTorch's legacy (pre-1.6) pickle format, which chainrule does not read; "
                "re-save it with a current torch (torch.save(model.state_dict(), path))"
            ) from None
    except OSError:
        pass
    return _ckpt.load(path)


def _is_legacy_pickle(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(1) == b"\x80"
    except OSError:
        return False
