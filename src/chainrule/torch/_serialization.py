"""``torch.save`` / ``torch.load`` over chainrule's checkpoint format (a zip of ``.npy`` arrays and a JSON
index, so loading never runs code): paths and file objects (``BytesIO``), ``map_location`` and
``weights_only``."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from .. import checkpoint as _ckpt
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

    Loading never executes code (the format holds arrays and a JSON index), so ``weights_only=True`` and
    ``False`` behave the same.  A torch pickle file (``.pt`` from real torch) is refused with the way to move it.
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
    try:
        return _ckpt.load(path)
    except _ckpt.CheckpointError as exc:
        if _is_torch_pickle(path):
            raise _ckpt.CheckpointError(
                f"torch.load: {path} was written by PyTorch's own torch.save (a pickle), which chainrule does not "
                "read; in PyTorch, save the state dict with safetensors.torch.save_file(model.state_dict(), "
                "'model.safetensors') and load it with safetensors.numpy.load_file (docs/torch.md)"
            ) from exc
        raise


def _is_torch_pickle(path: str) -> bool:
    import zipfile  # noqa: PLC0415

    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("data.pkl") for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False
