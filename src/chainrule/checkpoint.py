"""Checkpoints that cannot run code, or exhaust memory, when loaded: ``cr.save(obj, path)`` and ``cr.load(path)``.

The file is a NumPy ``.npz`` archive.  The object (nested dicts, lists and
tuples of arrays, tensors, numbers, strings, booleans and ``None``, e.g.
``{"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}``)
is split into its arrays, stored as ``a0, a1, ...``, and a JSON skeleton stored
as a ``uint8`` array under ``__chainrule__``.  ``__sha256__`` holds a SHA-256
digest of the skeleton and of every array's dtype, shape and bytes.

The digest detects damage, not forgery (anyone can recompute it), so
:func:`load` treats every file as hostile:

- only a regular file is opened (a FIFO, a device such as ``/dev/zero`` or a
  directory is refused before anything is read);
- the zip directory, the ``.npy`` headers and the sizes they declare are
  checked first, and the total that loading would allocate is capped
  (``max_bytes``; by default 1 GiB and at most 256 times the file's size,
  but never less than 64 MiB), so a small file that inflates to gigabytes is
  refused before it is decompressed;
- the digest is then verified by streaming the data through SHA-256 in 1 MiB
  pieces, before any array is allocated; the arrays are then read (and hashed
  again, so a file changed in between is caught too);
- every field is checked as strictly as :func:`save` checks it: numeric and
  boolean dtypes only, C order, known entry types, each array used exactly once.

Everything wrong with a file raises :class:`CheckpointError` (a missing file
raises ``FileNotFoundError``).

:func:`save` writes to a temporary file with a unique name in the target's
directory, ``fsync``\\ s it, renames it over the target and ``fsync``\\ s the
directory: the file appears complete or not at all, and of several saves to
one path at once the last rename wins with a complete file.  A save that was
killed leaves its temporary file behind; the next save to the same path
removes such leftovers (those of processes that no longer run on this machine,
and any older than ten minutes).

:func:`save` only ever replaces a regular file or creates a missing one.  A
symbolic link is written through: the file it leads to is replaced (as
``torch.save`` would write it) and the link stays.  The replaced file keeps its
permission bits and, where the process may set them, its owner and group; a new
file gets ``0o666`` less the umask.  A directory, FIFO, socket or device (such
as ``/dev/full``) at the path, or at the end of its links, is refused with
:class:`NotAFileError` before anything is written.
"""

from __future__ import annotations

import ast
import errno
import hashlib
import json
import math
import os
import re
import socket
import stat
import struct
import tempfile
import time
import zipfile
from collections.abc import Iterator
from typing import Any, BinaryIO, Optional

import numpy as np

from .backend import to_numpy
from .tensor import Tensor

FORMAT = "chainrule-checkpoint"
VERSION = 1
META_KEY = "__chainrule__"
HASH_KEY = "__sha256__"

DEFAULT_MAX_BYTES = 1 << 30  # what load() may allocate unless told otherwise
MAX_INFLATION = 256  # ... and at most this many times the file's size
MIN_BUDGET = 64 << 20  # ... but a small file may always inflate to this much
MAX_INDEX_BYTES = 8 << 20  # the JSON skeleton (parsed into Python objects, so kept small)
MAX_DIRECTORY_BYTES = 4 << 20  # the zip's central directory (~50,000 arrays)
MAX_DEPTH = 100  # nesting of dicts/lists/tuples
MAX_NPY_HEADER = 16 << 10
CHUNK = 1 << 20
STALE_SECONDS = 600  # a temporary file untouched this long belongs to a dead save
_TMP_SUFFIX = ".chainrule-tmp"
_ARRAY_NAME = re.compile(r"a(0|[1-9][0-9]{0,8})")
_ARRAY_KINDS = "biuf"


class CheckpointError(ValueError):
    """A checkpoint file is unusable: not a regular file, truncated, altered, too large, or not a checkpoint."""


class NotAFileError(OSError):
    """:func:`save` refuses a path that holds something other than a regular file (a directory, FIFO, device...).

    ``problem`` is the reason without the ``save:`` prefix (for a command's own message).
    """

    def __init__(self, problem: str, path: str) -> None:
        super().__init__(f"save: {problem}")
        self.problem = problem
        self.path = path


def file_kind(mode: int) -> Optional[str]:
    """What a ``st_mode`` describes, as words for a message ("a FIFO (named pipe)"); None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISLNK, "a symbolic link"),
    )
    return next((name for test, name in kinds if test(mode)), "a special file")


# --- the skeleton ---------------------------------------------------------------------------------
def _check_dtype(dtype: np.dtype) -> Optional[str]:
    """Why an array of this dtype cannot be in a checkpoint, or None."""
    if dtype.kind not in _ARRAY_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        return f"an array of dtype {dtype}; only bool, integer and floating-point arrays are stored"
    return None


def _encode(obj: Any, arrays: dict[str, np.ndarray], where: str, depth: int = 0) -> Any:
    """The JSON skeleton of ``obj``; arrays are moved into ``arrays``."""
    if depth > MAX_DEPTH:
        raise ValueError(f"save: {where} is nested deeper than {MAX_DEPTH} levels")
    if isinstance(obj, (Tensor, np.ndarray)):
        arr = np.asarray(to_numpy(obj._data) if isinstance(obj, Tensor) else obj)  # (host copies of any library)
        if not arr.flags.c_contiguous:
            arr = arr.copy(order="C")  # (np.ascontiguousarray would turn a 0-d array into 1-d)
        why = _check_dtype(arr.dtype)
        if why:
            raise TypeError(f"save: {where} is {why}")
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
            items.append([k, _encode(v, arrays, f"{where}[{k!r}]", depth + 1)])
        return {"t": "dict", "v": items}
    if isinstance(obj, (list, tuple)):
        return {
            "t": "tuple" if isinstance(obj, tuple) else "list",
            "v": [_encode(v, arrays, f"{where}[{i}]", depth + 1) for i, v in enumerate(obj)],
        }
    raise TypeError(
        f"save: {where} is a {type(obj).__name__}; a checkpoint holds dicts, lists, tuples, arrays, tensors, "
        "numbers, strings, booleans and None"
    )


_NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


class _Decoder:
    """Rebuilds the object from a skeleton, accepting exactly what :func:`_encode` writes."""

    def __init__(self, arrays: dict[str, np.ndarray], path: str) -> None:
        self.arrays = arrays
        self.path = path
        self.used: set[str] = set()

    def bad(self, node: Any, why: str) -> CheckpointError:
        return CheckpointError(f"load: {self.path}: the index has {why} (at {str(node)[:60]!r})")

    def __call__(self, node: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise self.bad(node, f"nesting deeper than {MAX_DEPTH} levels")
        if node is None or isinstance(node, (bool, int, str)):
            return node
        if isinstance(node, float):
            if not math.isfinite(node):
                raise self.bad(node, "a bare non-finite number")
            return node
        if not isinstance(node, dict) or not isinstance(node.get("t"), str):
            raise self.bad(node, "a malformed entry")
        kind = node["t"]
        if kind in ("tensor", "array"):
            key = node.get("k")
            if set(node) != {"t", "k"} or not isinstance(key, str) or key not in self.arrays:
                raise self.bad(node, "an entry naming an array that is not in the file")
            if key in self.used:
                raise self.bad(node, f"array {key} used twice")
            self.used.add(key)
            arr = self.arrays[key]
            return Tensor(arr) if kind == "tensor" else arr
        if set(node) != {"t", "v"}:
            raise self.bad(node, f"an entry of type {kind!r} with fields {sorted(node)}")
        value = node["v"]
        if kind == "float":
            if not isinstance(value, str) or value not in _NONFINITE:
                raise self.bad(node, "a float entry that is not inf, -inf or nan")
            return _NONFINITE[value]
        if not isinstance(value, list):
            raise self.bad(node, f"a {kind} entry whose value is not a list")
        if kind == "dict":
            out: dict = {}
            for item in value:
                if not (isinstance(item, list) and len(item) == 2):
                    raise self.bad(node, "a dict item that is not a [key, value] pair")
                k, v = item
                if not isinstance(k, (str, int)) or isinstance(k, bool) or k in out:
                    raise self.bad(node, f"a bad or repeated dict key {k!r}")
                out[k] = self(v, depth + 1)
            return out
        if kind in ("list", "tuple"):
            items = [self(v, depth + 1) for v in value]
            return tuple(items) if kind == "tuple" else items
        raise self.bad(node, f"an unknown entry type {kind!r}")


def _array_header(key: str, dtype: np.dtype, shape: tuple) -> bytes:
    return f"\0{key}\0{dtype.str}\0{shape}\0".encode()


def _digest(meta: bytes, arrays: dict[str, np.ndarray]) -> str:
    """The SHA-256 of the skeleton and of every array's key, dtype, shape and bytes (what save stores)."""
    h = hashlib.sha256()
    h.update(meta)
    for key in sorted(arrays):
        arr = arrays[key]
        h.update(_array_header(key, arr.dtype, arr.shape))
        h.update(arr.tobytes(order="C"))
    return h.hexdigest()


# --- save -----------------------------------------------------------------------------------------
def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _umask_mode() -> int:
    """0o666 less the process umask, read without changing it (Linux); 0o644 where it cannot be read."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o644


def _pid_running(pid: int) -> bool:
    if os.name != "posix":
        return True  # cannot tell cheaply: only age decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists (owned by another user)
    return True


def _remove_leftovers(directory: str, base: str) -> None:
    """Remove temporary files of earlier saves to ``base`` that were killed before they could rename."""
    ours = re.compile(re.escape(f".{base}.") + r"([0-9a-f]{8})-([0-9]+)-.*" + re.escape(_TMP_SUFFIX))
    legacy = re.compile(re.escape(f"{base}.tmp-") + r"([0-9]+)")  # the name chainrule 0.1 used
    host = _host_tag()
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return
    now = time.time()
    for name in names:
        m = ours.fullmatch(name)
        if m:
            tag, pid = m.group(1), int(m.group(2))
        else:
            m = legacy.fullmatch(name)
            if not m:
                continue
            tag, pid = host, int(m.group(1))
        full = os.path.join(directory, name)
        try:
            st = os.lstat(full)
            if not stat.S_ISREG(st.st_mode):
                continue
            dead = tag == host and pid != os.getpid() and not _pid_running(pid)
            if dead or now - st.st_mtime > STALE_SECONDS:
                os.remove(full)
        except OSError:
            continue  # gone already, or not ours to remove


def _fsync_directory(directory: str) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(directory or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _onto(obj: Any, device: Any) -> Any:
    """``obj`` with every tensor moved to ``device`` (see :func:`chainrule.tensor`)."""
    if isinstance(obj, Tensor):
        from .creation import tensor

        return tensor(obj._data, obj.requires_grad, device=device)
    if isinstance(obj, dict):
        return type(obj)((k, _onto(v, device)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_onto(v, device) for v in obj)
    return obj


MAX_SYMLINKS = 40  # links followed before a chain counts as a loop (Linux's limit for one lookup)


def save_target(path: str | os.PathLike) -> str:
    """The file that :func:`save` replaces for ``path``: ``path`` itself, or the end of its chain of symbolic links.

    Raises :class:`NotAFileError` (naming the path and what is there) unless
    that is a regular file or nothing at all, :class:`FileNotFoundError` if the
    directory it would be in does not exist.  Nothing is opened or written.
    """
    path = os.fspath(path)
    target = path
    for _ in range(MAX_SYMLINKS + 1):
        try:
            st: Optional[os.stat_result] = os.lstat(target)
        except FileNotFoundError:
            st = None
        if st is None or not stat.S_ISLNK(st.st_mode):
            break
        target = os.path.join(os.path.dirname(target), os.readlink(target))  # (an absolute link replaces it all)
    else:
        raise NotAFileError(
            f"{path} is a symbolic link that leads through more than {MAX_SYMLINKS} links (a loop?)", path
        )
    if st is not None:
        kind = file_kind(st.st_mode)
        if kind is not None:
            where = path if target == path else f"{path} is a symbolic link to {target}, which"
            raise NotAFileError(
                f"{where} is {kind}, not a regular file (only a regular file is replaced, or a new one created)",
                path,
            )
    directory = os.path.dirname(target) or "."
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, f"the directory {directory} does not exist", path)
    return target


def _keep_owner_and_mode(fd: int, target: str) -> None:
    """Give the temporary file ``fd`` the replaced file's permission bits and owner, or a new file's mode."""
    if not hasattr(os, "fchmod"):
        return  # (Windows before Python 3.13: no modes to keep)
    try:
        old: Optional[os.stat_result] = os.stat(target)
    except FileNotFoundError:
        old = None
    if old is None or not stat.S_ISREG(old.st_mode):
        os.fchmod(fd, _umask_mode())  # mkstemp makes it private (0600)
        return
    if hasattr(os, "fchown"):
        mine = os.fstat(fd)
        if (old.st_uid, old.st_gid) != (mine.st_uid, mine.st_gid):
            try:
                os.fchown(fd, old.st_uid, old.st_gid)  # root, or a user changing only the group to one of theirs
            except OSError:
                try:
                    os.fchown(fd, -1, old.st_gid)  # another user's file: keep at least its group where allowed
                except OSError:
                    pass
    os.fchmod(fd, stat.S_IMODE(old.st_mode) & ~(stat.S_ISUID | stat.S_ISGID))  # (as a write to it would clear)


def save(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` (a state dict or a nest of them) to ``path`` as a safe ``.npz`` checkpoint.

    The path is used exactly as given (no ``.npz`` is appended).  The write is
    atomic and durable: the file appears complete or not at all, also when
    several threads or processes save to the same path at once (the last one
    to finish wins).

    Only a regular file or a missing path is replaced; a symbolic link is
    written through (the file it leads to is replaced and the link kept), and
    the replaced file keeps its permission bits and, where this process may set
    them, its owner and group.  Anything else (a directory, FIFO, socket or
    device) raises :class:`NotAFileError` before anything is written.
    """
    arrays: dict[str, np.ndarray] = {}
    tree = _encode(obj, arrays, "the object")
    meta = json.dumps({"format": FORMAT, "version": VERSION, "tree": tree}, sort_keys=True).encode()
    if len(meta) > MAX_INDEX_BYTES:
        raise ValueError(
            f"save: the object's index (its structure, numbers and strings outside arrays) is {len(meta):,} bytes; "
            f"at most {MAX_INDEX_BYTES:,} can be loaded again: store long lists of numbers as arrays"
        )
    digest = _digest(meta, arrays)
    payload = {
        **arrays,
        META_KEY: np.frombuffer(meta, dtype=np.uint8),
        HASH_KEY: np.frombuffer(digest.encode(), dtype=np.uint8),
    }
    path = os.fspath(path)
    target = save_target(path)  # refuses a device, FIFO or directory before anything is written
    directory, base = os.path.split(target)
    _remove_leftovers(directory, base)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.{_host_tag()}-{os.getpid()}-", suffix=_TMP_SUFFIX, dir=directory or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **payload)
            f.flush()
            _keep_owner_and_mode(f.fileno(), target)
            os.fsync(f.fileno())
        if save_target(path) != target:  # checked again just before the rename: what is there now may differ
            raise NotAFileError(f"{path} changed while the checkpoint was written; nothing was replaced", path)
        os.replace(tmp, target)
        _fsync_directory(directory)
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)


# --- load -----------------------------------------------------------------------------------------
def _open_regular(path: str) -> BinaryIO:
    """Open ``path`` for reading only if it is a regular file (never blocks on a FIFO)."""

    def refuse(mode: int) -> CheckpointError:
        return CheckpointError(f"load: {path} is {file_kind(mode)}, not a regular file; a checkpoint is a regular file")

    st = os.stat(path)  # FileNotFoundError passes through
    if not stat.S_ISREG(st.st_mode):
        raise refuse(st.st_mode)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)  # the file opened may not be the one checked (a rename in between)
        if not stat.S_ISREG(st.st_mode):
            raise refuse(st.st_mode)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _npy_header(f: BinaryIO, name: str, path: str) -> tuple[np.dtype, tuple, int]:
    """``(dtype, shape, header length)`` of a ``.npy`` stream, read with bounded memory."""
    magic = f.read(8)
    if len(magic) != 8 or magic[:6] != b"\x93NUMPY" or magic[6] not in (1, 2, 3) or magic[7] != 0:
        raise CheckpointError(f"load: {path}: entry {name} is not a .npy array")
    size_format = "<H" if magic[6] == 1 else "<I"
    raw = f.read(struct.calcsize(size_format))
    if len(raw) != struct.calcsize(size_format):
        raise CheckpointError(f"load: {path}: entry {name} is truncated")
    (length,) = struct.unpack(size_format, raw)
    if length > MAX_NPY_HEADER:
        raise CheckpointError(f"load: {path}: entry {name} declares a {length:,}-byte array header")
    text = f.read(length)
    if len(text) != length:
        raise CheckpointError(f"load: {path}: entry {name} is truncated")
    try:
        header = ast.literal_eval(text.decode("latin1" if magic[6] < 3 else "utf8"))
    except Exception:  # SyntaxError, ValueError, MemoryError, RecursionError on a hostile header
        raise CheckpointError(f"load: {path}: entry {name} has an unreadable array header") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise CheckpointError(f"load: {path}: entry {name} has a malformed array header")
    descr, fortran, shape = header["descr"], header["fortran_order"], header["shape"]
    if fortran is not False:
        raise CheckpointError(f"load: {path}: entry {name} is in Fortran order; checkpoints store C-order arrays")
    if not isinstance(descr, str):
        raise CheckpointError(f"load: {path}: entry {name} has a structured dtype; checkpoints store numeric arrays")
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError):
        raise CheckpointError(f"load: {path}: entry {name} has an unknown dtype {descr[:40]!r}") from None
    if (
        not isinstance(shape, tuple) or len(shape) > 32 or not all(type(n) is int and n >= 0 for n in shape)  # noqa: E721  (bool is not a size)
    ):
        raise CheckpointError(f"load: {path}: entry {name} has an invalid shape {str(shape)[:60]}")
    return dtype, shape, len(magic) + len(raw) + length


def _chunks(f: BinaryIO, n: int, name: str, path: str = "the file") -> Iterator[bytes]:
    while n > 0:
        piece = f.read(min(n, CHUNK))
        if not piece:
            raise CheckpointError(f"load: {path}: entry {name} is truncated")
        n -= len(piece)
        yield piece


class _Entry:
    __slots__ = ("info", "dtype", "shape", "offset")

    def __init__(self, info: zipfile.ZipInfo, dtype: np.dtype, shape: tuple, offset: int) -> None:
        self.info, self.dtype, self.shape, self.offset = info, dtype, shape, offset


def _budget(path: str, file_size: int, max_bytes: Optional[int]) -> tuple[int, str]:
    if max_bytes is not None:
        return max_bytes, f"max_bytes={max_bytes:,}"
    limit = min(DEFAULT_MAX_BYTES, max(MIN_BUDGET, MAX_INFLATION * file_size))
    why = (
        f"the default limit: {MAX_INFLATION} times the file's {file_size:,} bytes, at least {MIN_BUDGET:,} "
        f"and at most {DEFAULT_MAX_BYTES:,}; if you trust the file, pass max_bytes= to load it"
    )
    return limit, why


def _directory(zf_file: BinaryIO, path: str) -> None:
    """Refuse a zip whose central directory is too large to index (before zipfile indexes it)."""
    try:
        end = zipfile._EndRecData(zf_file)  # the record zipfile itself will use
    except (OSError, AttributeError, struct.error):
        end = None
    if end is not None and end[zipfile._ECD_SIZE] > MAX_DIRECTORY_BYTES:
        raise CheckpointError(
            f"load: {path} has a {end[zipfile._ECD_SIZE]:,}-byte zip directory (at most {MAX_DIRECTORY_BYTES:,})"
        )
    zf_file.seek(0)


def _entries(zf: zipfile.ZipFile, path: str, limit: int, why: str) -> dict[str, _Entry]:
    """Check the archive's members and their declared sizes; read only the ``.npy`` headers."""
    infos = zf.infolist()
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise CheckpointError(f"load: {path} has two entries with the same name")
    keys = {n[:-4] for n in names if n.endswith(".npy")}
    if META_KEY not in keys or HASH_KEY not in keys:
        raise CheckpointError(f"load: {path} is a .npz archive but not a chainrule checkpoint (no {META_KEY} entry)")
    declared = 0
    for info in infos:
        key = info.filename[:-4]
        if not info.filename.endswith(".npy") or not (key in (META_KEY, HASH_KEY) or _ARRAY_NAME.fullmatch(key)):
            raise CheckpointError(f"load: {path} has an unexpected entry {info.filename[:60]!r}")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 0x1:
            raise CheckpointError(f"load: {path}: entry {key} is encrypted or uses an unsupported compression")
        declared += info.file_size
    if declared > limit:
        raise CheckpointError(f"load: {path} would inflate to {declared:,} bytes, over {why}")
    entries = {}
    for info in infos:
        key = info.filename[:-4]
        with zf.open(info) as f:
            dtype, shape, offset = _npy_header(f, key, path)
        if key in (META_KEY, HASH_KEY):
            if dtype != np.uint8 or len(shape) != 1:
                raise CheckpointError(f"load: {path} has a malformed index")
            if shape[0] > MAX_INDEX_BYTES:
                raise CheckpointError(f"load: {path} has a {shape[0]:,}-byte index (at most {MAX_INDEX_BYTES:,})")
        else:
            why_not = _check_dtype(dtype)
            if why_not:
                raise CheckpointError(f"load: {path}: entry {key} is {why_not}")
        nbytes = math.prod(shape) * dtype.itemsize
        if offset + nbytes != info.file_size:
            raise CheckpointError(
                f"load: {path}: entry {key} declares shape {shape} of {dtype} ({nbytes:,} bytes) "
                f"but holds {info.file_size - offset:,} bytes"
            )
        entries[key] = _Entry(info, dtype, shape, offset)
    return entries


def _read_small(zf: zipfile.ZipFile, entry: _Entry, key: str) -> bytes:
    with zf.open(entry.info) as f:
        f.read(entry.offset)
        return b"".join(_chunks(f, entry.info.file_size - entry.offset, key))


def _stream_digest(zf: zipfile.ZipFile, meta: bytes, entries: dict[str, _Entry]) -> str:
    """The digest of the file's contents, computed in pieces without building any array."""
    h = hashlib.sha256()
    h.update(meta)
    for key in sorted(k for k in entries if k not in (META_KEY, HASH_KEY)):
        e = entries[key]
        h.update(_array_header(key, e.dtype, e.shape))
        with zf.open(e.info) as f:
            f.read(e.offset)
            for piece in _chunks(f, e.info.file_size - e.offset, key):
                h.update(piece)
    return h.hexdigest()


def _read_array(zf: zipfile.ZipFile, entry: _Entry, key: str, h: Any) -> np.ndarray:
    arr = np.empty(entry.shape, entry.dtype)
    view = memoryview(arr.reshape(-1).view(np.uint8)) if arr.size else memoryview(b"")
    h.update(_array_header(key, entry.dtype, entry.shape))
    with zf.open(entry.info) as f:
        f.read(entry.offset)
        pos = 0
        for piece in _chunks(f, entry.info.file_size - entry.offset, key):
            view[pos : pos + len(piece)] = piece
            h.update(piece)
            pos += len(piece)
    return arr


def _parse_index(meta: bytes, path: str) -> Any:
    def refuse_constant(name: str) -> Any:
        raise ValueError(f"the non-JSON constant {name}")

    try:
        info = json.loads(meta.decode("utf8"), parse_constant=refuse_constant)
    except (ValueError, RecursionError) as exc:  # (UnicodeDecodeError is a ValueError)
        raise CheckpointError(f"load: {path} has an unreadable index: {str(exc)[:100]}") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise CheckpointError(f"load: {path} is not a chainrule checkpoint (its index has no chainrule format tag)")
    if info.get("version") != VERSION:
        raise CheckpointError(
            f"load: {path} has checkpoint format version {str(info.get('version'))[:20]}; "
            f"this chainrule reads version {VERSION}"
        )
    if set(info) != {"format", "version", "tree"}:
        raise CheckpointError(f"load: {path} has unexpected fields in its index: {sorted(info)}")
    return info["tree"]


def _load(f: BinaryIO, path: str, max_bytes: Optional[int]) -> Any:
    size = os.fstat(f.fileno()).st_size
    limit, why = _budget(path, size, max_bytes)
    _directory(f, path)
    with zipfile.ZipFile(f) as zf:
        entries = _entries(zf, path, limit, why)
        meta = _read_small(zf, entries[META_KEY], META_KEY)
        expected = _read_small(zf, entries[HASH_KEY], HASH_KEY).decode("ascii", "replace")
        damaged = CheckpointError(
            f"load: {path} failed its SHA-256 check: the file was modified or damaged after it was saved"
        )
        if _stream_digest(zf, meta, entries) != expected:
            raise damaged
        tree = _parse_index(meta, path)
        h = hashlib.sha256()
        h.update(meta)
        arrays = {}
        for key in sorted(k for k in entries if k not in (META_KEY, HASH_KEY)):
            arrays[key] = _read_array(zf, entries[key], key, h)
        if h.hexdigest() != expected:  # the file changed after the first pass
            raise damaged
    decode = _Decoder(arrays, path)
    try:
        obj = decode(tree)
    except RecursionError:
        raise CheckpointError(f"load: {path} has an index nested too deeply") from None
    unused = sorted(set(arrays) - decode.used)
    if unused:
        raise CheckpointError(f"load: {path} has arrays that its index does not use: {', '.join(unused[:5])}")
    return obj


def load(path: str | os.PathLike, max_bytes: Optional[int] = None, device: Any = None) -> Any:
    """Read a checkpoint written by :func:`save`; arrays come back as arrays and tensors as tensors.

    Tensors saved from any array library were written as host NumPy arrays; they
    load as NumPy tensors, or onto ``device`` (``"cuda"``, ``torch.device("cpu")``,
    ... as for :func:`chainrule.tensor`).

    ``max_bytes`` caps what loading may allocate (the arrays and the index).
    By default the cap is 1 GiB and at most 256 times the file's size (but
    never less than 64 MiB); a file that would inflate beyond it is refused
    before it is decompressed.

    Raises :class:`CheckpointError` if the path is not a regular file or the
    file is truncated, altered, too large, or not a chainrule checkpoint, and
    ``FileNotFoundError`` if it does not exist.
    """
    path = os.fspath(path)
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0):
        raise TypeError(f"load: max_bytes must be a non-negative int or None, got {max_bytes!r}")
    try:
        with _open_regular(path) as f:
            loaded = _load(f, path, max_bytes)
    except (CheckpointError, FileNotFoundError):
        raise
    except MemoryError:
        raise CheckpointError(f"load: {path}: not enough memory to load it") from None
    except PermissionError as exc:
        raise CheckpointError(f"load: {path} cannot be read: {exc.strerror}") from None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, RuntimeError, struct.error) as exc:
        raise CheckpointError(
            f"load: {path} is not a readable checkpoint (truncated or corrupted .npz archive: {str(exc)[:200]})"
        ) from None
    except Exception as exc:  # zlib.error and other decoder failures on damaged data
        raise CheckpointError(f"load: {path} is corrupted ({type(exc).__name__}: {str(exc)[:200]})") from None
    return loaded if device is None else _onto(loaded, device)
