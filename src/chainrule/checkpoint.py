"""Checkpoints that cannot run code when loaded: ``cr.save(obj, path)`` and ``cr.load(path)``.

The file is a NumPy ``.npz`` archive read with ``allow_pickle=False``.  The
object (nested dicts, lists and tuples of arrays, tensors, numbers, strings,
booleans and ``None``, e.g. ``{"model": model.state_dict(), "optimizer":
opt.state_dict(), "epoch": 3}``) is split into its arrays, stored as
``a0, a1, ...``, and a JSON skeleton stored as a ``uint8`` array under
``__chainrule__``.  ``__sha256__`` holds a SHA-256 digest of the skeleton and of
every array's dtype, shape and bytes, so a truncated, tampered or foreign file
raises :class:`CheckpointError` instead of loading partly.  Files are written to
a temporary name and renamed, so an interrupted save never leaves half a file.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import zipfile
from typing import Any

import numpy as np

from .tensor import Tensor

FORMAT = "chainrule-checkpoint"
VERSION = 1
META_KEY = "__chainrule__"
HASH_KEY = "__sha256__"


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupted, or not a chainrule checkpoint."""


def _encode(obj: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
    """The JSON skeleton of ``obj``; arrays are moved into ``arrays``."""
    if isinstance(obj, (Tensor, np.ndarray)):
        arr = np.asarray(obj.data if isinstance(obj, Tensor) else obj)
        if not arr.flags.c_contiguous:
            arr = arr.copy(order="C")  # (np.ascontiguousarray would turn a 0-d array into 1-d)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"save: {where} is an array of dtype {arr.dtype}; only bool and numeric arrays are saved")
        key = f"a{len(arrays)}"
        arrays[key] = arr
        return {"t": "tensor" if isinstance(obj, Tensor) else "array", "k": key}
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        return x if math.isfinite(x) else {"t": "float", "v": repr(x)}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"save: {where} has a key {k!r} of type {type(k).__name__}; keys must be str or int")
            items.append([k, _encode(v, arrays, f"{where}[{k!r}]")])
        return {"t": "dict", "v": items}
    if isinstance(obj, (list, tuple)):
        return {
            "t": "tuple" if isinstance(obj, tuple) else "list",
            "v": [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)],
        }
    raise TypeError(
        f"save: {where} is a {type(obj).__name__}; a checkpoint holds dicts, lists, tuples, arrays, tensors, "
        "numbers, strings, booleans and None"
    )


def _decode(node: Any, arrays: dict[str, np.ndarray]) -> Any:
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if not isinstance(node, dict) or "t" not in node:
        raise CheckpointError(f"load: malformed entry {str(node)[:60]!r} in the checkpoint's index")
    kind = node["t"]
    if kind in ("tensor", "array"):
        arr = arrays[node["k"]]
        return Tensor(arr) if kind == "tensor" else arr
    if kind == "float":
        return float(node["v"])
    if kind == "dict":
        return {k: _decode(v, arrays) for k, v in node["v"]}
    if kind in ("list", "tuple"):
        items = [_decode(v, arrays) for v in node["v"]]
        return tuple(items) if kind == "tuple" else items
    raise CheckpointError(f"load: unknown entry type {kind!r} in the checkpoint's index")


def _digest(meta: bytes, arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    h.update(meta)
    for key in sorted(arrays):
        arr = arrays[key]
        h.update(f"\0{key}\0{arr.dtype.str}\0{arr.shape}\0".encode())
        h.update(arr.tobytes(order="C"))
    return h.hexdigest()


def save(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` (a state dict or a nest of them) to ``path`` as a safe ``.npz`` checkpoint.

    The path is used exactly as given (no ``.npz`` is appended).  The write is
    atomic: the file appears complete or not at all.
    """
    arrays: dict[str, np.ndarray] = {}
    tree = _encode(obj, arrays, "the object")
    meta = json.dumps({"format": FORMAT, "version": VERSION, "tree": tree}, sort_keys=True).encode()
    digest = _digest(meta, arrays)
    payload = {
        **arrays,
        META_KEY: np.frombuffer(meta, dtype=np.uint8),
        HASH_KEY: np.frombuffer(digest.encode(), dtype=np.uint8),
    }
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load(path: str | os.PathLike) -> Any:
    """Read a checkpoint written by :func:`save`; arrays come back as arrays and tensors as tensors.

    Raises :class:`CheckpointError` if the file is truncated, altered, or not a
    chainrule checkpoint, and ``FileNotFoundError`` if it does not exist.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            for key in z.files:
                arrays[key] = z[key]
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(
            f"load: {path} is not a readable checkpoint (truncated or corrupted .npz archive: {exc})"
        ) from None
    except Exception as exc:  # zlib.error and other decoder failures on damaged data
        raise CheckpointError(f"load: {path} is corrupted ({type(exc).__name__}: {exc})") from None
    if META_KEY not in arrays or HASH_KEY not in arrays:
        raise CheckpointError(f"load: {path} is a .npz archive but not a chainrule checkpoint (no {META_KEY} entry)")
    meta_arr = arrays.pop(META_KEY)
    hash_arr = arrays.pop(HASH_KEY)
    if meta_arr.dtype != np.uint8 or hash_arr.dtype != np.uint8:
        raise CheckpointError(f"load: {path} has a malformed index")
    meta = meta_arr.tobytes()
    if _digest(meta, arrays) != hash_arr.tobytes().decode("ascii", "replace"):
        raise CheckpointError(
            f"load: {path} failed its SHA-256 check: the file was modified or damaged after it was saved"
        )
    try:
        info = json.loads(meta)
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(f"load: {path} has an unreadable index: {exc}") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise CheckpointError(f"load: {path} is not a chainrule checkpoint (its index has no chainrule format tag)")
    if info.get("version") != VERSION:
        raise CheckpointError(
            f"load: {path} has checkpoint format version {info.get('version')}; this chainrule reads version {VERSION}"
        )
    try:
        return _decode(info["tree"], arrays)
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"load: {path} has an inconsistent index ({type(exc).__name__}: {exc})") from None
