"""cr.load against files made to hurt their reader; cr.save under threads and kills, and at paths it must not damage.

Every hostile file here carries a *valid* digest (the digest detects damage,
not forgery), written by this file's own encoder, so only the loader's checks
stand between the file and the reader.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import chainrule as cr
from chainrule import checkpoint

MB = 1 << 20


# --- an independent writer of chainrule checkpoints -----------------------------------------------
def npy_header(descr, shape, fortran=False):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": fortran, "shape": shape})
    return buf.getvalue()


def forge(path, tree, members, *, meta=None, compress=zipfile.ZIP_DEFLATED, wrong_digest=False):
    """Write a checkpoint whose digest matches its contents.

    ``members``: key -> (dtype descr, shape, data bytes or an iterable of chunks, fortran flag).
    The digest is SHA-256 over the index, then for each key in sorted order
    ``\\0key\\0dtype.str\\0shape\\0`` and the data, as the format says.
    """
    if meta is None:
        meta = json.dumps({"format": "chainrule-checkpoint", "version": 1, "tree": tree}, sort_keys=True).encode()
    h = hashlib.sha256(meta)
    with zipfile.ZipFile(path, "w", compression=compress, compresslevel=9 if compress else None) as zf:
        for key in sorted(members):
            descr, shape, data, fortran = members[key]
            try:
                dstr = np.dtype(descr).str
            except TypeError:
                dstr = str(descr)
            h.update(f"\0{key}\0{dstr}\0{tuple(shape)}\0".encode())
            with zf.open(f"{key}.npy", "w", force_zip64=True) as f:
                f.write(npy_header(descr, tuple(shape), fortran))
                for chunk in [data] if isinstance(data, bytes) else data:
                    f.write(chunk)
                    h.update(chunk)
        digest = "0" * 64 if wrong_digest else h.hexdigest()
        for key, raw in (("__chainrule__", meta), ("__sha256__", digest.encode())):
            zf.writestr(f"{key}.npy", npy_header("|u1", (len(raw),)) + raw)
    return path


def peak_bytes(fn):
    """Peak traced allocation (Python and NumPy) while ``fn`` runs, and what it raised."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        fn()
        error = None
    except Exception as exc:  # noqa: BLE001  (the caller checks what came out)
        error = exc
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, error


# --- inflation -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """A valid checkpoint of about 256 KB that inflates to 256 MB: one uint8 array of zeros."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.npz"
    n = 256 * MB
    zeros = bytes(MB)
    forge(path, {"t": "array", "k": "a0"}, {"a0": ("|u1", (n,), (zeros for _ in range(n // MB)), False)})
    return path


def test_small_file_that_inflates_256_times_is_refused_with_little_memory(bomb):
    size = os.path.getsize(bomb)
    assert size < 300_000  # ~256 KB on disk
    peak, error = peak_bytes(lambda: cr.load(bomb))
    assert isinstance(error, cr.CheckpointError) and "would inflate to 268,4" in str(error)
    assert "pass max_bytes=" in str(error)
    assert peak < 100 * MB, f"peak {peak / MB:.1f} MB"


def test_a_forged_digest_is_found_by_streaming_without_building_the_array(tmp_path):
    """With the size allowed (max_bytes), a wrong digest is still found before anything is allocated."""
    n = 256 * MB
    zeros = bytes(MB)
    members = {"a0": ("|u1", (n,), (zeros for _ in range(n // MB)), False)}
    bad = forge(tmp_path / "bad.npz", {"t": "array", "k": "a0"}, members, wrong_digest=True)
    peak, error = peak_bytes(lambda: cr.load(bad, max_bytes=1 << 30))
    assert isinstance(error, cr.CheckpointError) and "SHA-256" in str(error)
    assert peak < 100 * MB, f"peak {peak / MB:.1f} MB"


def test_max_bytes_is_a_hard_cap_and_is_checked(tmp_path):
    path = tmp_path / "ck.npz"
    cr.save({"w": np.ones(1000)}, path)
    assert cr.load(path, max_bytes=9000)["w"].sum() == 1000
    with pytest.raises(cr.CheckpointError, match="over max_bytes=7,000"):
        cr.load(path, max_bytes=7000)
    with pytest.raises(TypeError, match="max_bytes"):
        cr.load(path, max_bytes=-1)
    # a legitimate file of zeros compresses over 256x: refused by default, loaded when trusted
    cr.save({"z": np.zeros(10_000_000)}, path)
    with pytest.raises(cr.CheckpointError, match="would inflate"):
        cr.load(path)
    assert cr.load(path, max_bytes=100 * MB)["z"].shape == (10_000_000,)


def test_a_huge_npy_header_length_is_refused_before_reading_it(tmp_path):
    path = tmp_path / "h.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a0.npy", b"\x93NUMPY\x02\x00" + (1 << 31).to_bytes(4, "little") + b"{")
        zf.writestr("__chainrule__.npy", npy_header("|u1", (2,)) + b"{}")
        zf.writestr("__sha256__.npy", npy_header("|u1", (2,)) + b"00")
    with pytest.raises(cr.CheckpointError, match="declares a 2,147,483,648-byte array header"):
        cr.load(path)


# --- not a regular file --------------------------------------------------------------------------
def _load_within(path, seconds=10.0):
    box = {}

    def target():
        try:
            cr.load(path)
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"cr.load({path}) still running after {seconds} s"
    return box.get("error")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "ck.npz"
    os.mkfifo(fifo)
    error = _load_within(fifo)
    assert isinstance(error, cr.CheckpointError) and "FIFO" in str(error)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_dev_zero_is_refused_without_reading():
    error = _load_within("/dev/zero")
    assert isinstance(error, cr.CheckpointError) and "not a regular file" in str(error)


def test_a_directory_is_refused(tmp_path):
    error = _load_within(tmp_path)
    assert isinstance(error, cr.CheckpointError) and "is a directory" in str(error)


# --- every field checked as strictly as save checks it -------------------------------------------
BAD_DTYPES = {
    "string": ("<U3", (2,), b"\0" * 24),
    "bytes": ("|S2", (2,), b"ab" * 2),
    "complex": ("<c16", (1,), b"\0" * 16),
    "datetime": ("<M8[s]", (1,), b"\0" * 8),
    "timedelta": ("<m8[s]", (1,), b"\0" * 8),
    "void": ("|V4", (1,), b"\0" * 4),
    "structured": ([("a", "<f4"), ("b", "<i4")], (1,), b"\0" * 8),
    "subarray": ([("a", "<f4", (2,))], (1,), b"\0" * 8),
    "object": ("|O", (1,), b"\0" * 8),
}


@pytest.mark.parametrize("kind", sorted(BAD_DTYPES))
def test_arrays_that_save_refuses_are_refused_by_load(tmp_path, kind):
    descr, shape, data = BAD_DTYPES[kind]
    path = forge(tmp_path / "f.npz", {"t": "array", "k": "a0"}, {"a0": (descr, shape, data, False)})
    with pytest.raises(cr.CheckpointError, match="entry a0"):
        cr.load(path)


FORGED_TREES = {
    "fortran-order": ({"t": "array", "k": "a0"}, {"a0": ("<f8", (2, 2), b"\0" * 32, True)}),
    "array-used-twice": ([{"t": "array", "k": "a0"}, {"t": "tensor", "k": "a0"}], {"a0": ("<f8", (1,), bytes(8), 0)}),
    "array-never-used": ({"t": "list", "v": []}, {"a0": ("<f8", (1,), bytes(8), False)}),
    "bare-inf": ({"t": "list", "v": [1e999]}, {}),
    "float-from-text": ({"t": "float", "v": "1e5"}, {}),
    "float-list-value": ({"t": "float", "v": [1]}, {}),
    "dict-repeated-key": ({"t": "dict", "v": [["a", 1], ["a", 2]]}, {}),
    "dict-bool-key": ({"t": "dict", "v": [[True, 1]]}, {}),
    "dict-item-not-a-pair": ({"t": "dict", "v": [["a", 1, 2]]}, {}),
    "dict-unhashable-key": ({"t": "dict", "v": [[[1], 1]]}, {}),
    "extra-field": ({"t": "list", "v": [], "code": "x"}, {}),
    "list-not-a-list": ({"t": "list", "v": "abc"}, {}),
    "unknown-type": ({"t": "pickle", "v": []}, {}),
    "too-deep": ({"t": "list", "v": [{"t": "list", "v": []}]}, {}),  # nested below
    "shape-size-mismatch": ({"t": "array", "k": "a0"}, {"a0": ("<f8", (3,), bytes(8), False)}),
    "bool-in-shape": ({"t": "array", "k": "a0"}, {"a0": ("<f8", (True,), bytes(8), False)}),
}


@pytest.mark.parametrize("name", sorted(FORGED_TREES))
def test_forged_index_entries_are_refused(tmp_path, name):
    tree, members = FORGED_TREES[name]
    if name == "too-deep":
        for _ in range(checkpoint.MAX_DEPTH + 1):
            tree = {"t": "list", "v": [tree]}
    path = forge(tmp_path / "f.npz", tree, members)
    with pytest.raises(cr.CheckpointError):
        cr.load(path)


def test_save_refuses_what_load_would_refuse():
    deep: list = []
    for _ in range(checkpoint.MAX_DEPTH + 2):
        deep = [deep]
    with pytest.raises(ValueError, match="nested deeper"):
        cr.save(deep, os.devnull)
    with pytest.raises(ValueError, match="store long lists of numbers as arrays"):
        cr.save(["x" * 1000] * 9000, os.devnull)
    with pytest.raises(TypeError, match="dtype complex128"):
        cr.save(np.zeros(2, complex), os.devnull)


# --- fuzz: crafted files with valid digests ------------------------------------------------------
DESCRS = ["<f8", "<f4", "<f2", "|b1", "<i8", "|u1", ">f4", ">i2"] + [v[0] for v in BAD_DTYPES.values()]
KINDS = ["tensor", "array", "float", "dict", "list", "tuple", "code", "", 3, None]
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)


def _node(children):
    keys = st.sampled_from(["a0", "a1", "a2", "a3", "b", 0])
    return st.one_of(
        st.builds(lambda t, k: {"t": t, "k": k}, st.sampled_from(["tensor", "array"]), keys),
        st.builds(lambda v: {"t": "float", "v": v}, st.sampled_from(["inf", "-inf", "nan", "1", 2.0])),
        st.builds(lambda v: {"t": "list", "v": v}, st.lists(children, max_size=3)),
        st.builds(lambda v: {"t": "tuple", "v": v}, st.lists(children, max_size=3)),
        st.builds(
            lambda v: {"t": "dict", "v": v},
            st.lists(
                st.tuples(st.one_of(st.text(max_size=3), st.integers(0, 3), st.booleans()), children).map(list),
                max_size=3,
            ),
        ),
        st.builds(lambda t, v: {"t": t, "v": v}, st.sampled_from(KINDS), children),  # malformed forms
        st.dictionaries(st.sampled_from(["t", "k", "v", "x"]), children, max_size=3),
        st.lists(children, max_size=2),  # a bare JSON list
    )


trees = st.recursive(leaves, _node, max_leaves=12)
members = st.dictionaries(
    st.sampled_from(["a0", "a1", "a2", "a3"]),
    st.tuples(
        st.sampled_from(DESCRS),
        st.lists(st.integers(0, 3), max_size=3).map(tuple),
        st.sampled_from([0, 0, 0, 1, -1]),  # data length: right, one item more, one item fewer
        st.sampled_from([False, False, False, True]),  # Fortran order: never written by save
    ),
    max_size=4,
)


def _plain(obj):
    """Only the types a checkpoint holds come out of load (arrays numeric, never object)."""
    if isinstance(obj, (dict, list, tuple)):
        items = obj.items() if isinstance(obj, dict) else enumerate(obj)
        return all(_plain(v) for _, v in items)
    if isinstance(obj, (cr.Tensor, np.ndarray)):
        return np.asarray(obj).dtype.kind in "biuf"
    return obj is None or isinstance(obj, (bool, int, float, str))


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=trees, plan=members)
def test_fuzz_load_of_crafted_files_with_valid_digests(tmp_path, tree, plan):
    files = {}
    for key, (descr, shape, extra, fortran) in plan.items():
        itemsize = np.dtype(descr).itemsize if descr != "|O" else 8
        n = max(int(np.prod(shape)) + extra, 0)
        files[key] = (descr, shape, bytes(range(256)) * (n * itemsize // 256) + bytes(n * itemsize % 256), fortran)
    path = forge(tmp_path / "fuzz.npz", tree, files)
    try:
        obj = cr.load(path)
    except cr.CheckpointError as exc:
        event("refused: " + str(exc).replace(str(path), "FILE").split("(")[0][:50])
        return
    event("loaded")
    assert _plain(obj)
    again = tmp_path / "again.npz"
    cr.save(obj, again)  # whatever load accepts, save accepts, and it survives a round trip
    assert json.dumps(_summary(cr.load(again))) == json.dumps(_summary(obj))


def _summary(obj):
    if isinstance(obj, dict):
        return ["dict", [[k, _summary(v)] for k, v in obj.items()]]
    if isinstance(obj, (list, tuple)):
        return [type(obj).__name__, [_summary(v) for v in obj]]
    if isinstance(obj, (cr.Tensor, np.ndarray)):
        a = np.asarray(obj)
        return [type(obj).__name__, a.dtype.str, list(a.shape), a.tobytes().hex()]
    if isinstance(obj, float) and obj != obj:
        return "nan"
    return [type(obj).__name__, repr(obj)]


def test_a_forged_file_of_valid_form_loads(tmp_path):
    """The forging writer makes loadable files (so the fuzz test does not only exercise refusals)."""
    path = forge(
        tmp_path / "ok.npz",
        {"t": "dict", "v": [["w", {"t": "tensor", "k": "a0"}], [3, {"t": "float", "v": "nan"}]]},
        {"a0": (">f4", (2,), np.array([1.5, -2], ">f4").tobytes(), False)},
    )
    obj = cr.load(path)
    np.testing.assert_array_equal(obj["w"].data, [1.5, -2])
    assert obj["w"].dtype == np.dtype(">f4") and np.isnan(obj[3]) and list(obj) == ["w", 3]


# --- saving from threads, and killed saves -------------------------------------------------------
def test_threads_saving_to_one_path_leave_a_complete_file(tmp_path):
    """4 threads save to one path at once, 50 rounds: after each round the file is one thread's, complete."""
    path = tmp_path / "ck.npz"
    objs = [{"thread": i, "w": np.full((200, 50), float(i))} for i in range(4)]
    errors = []
    winners = set()
    for _ in range(50):
        barrier = threading.Barrier(4)

        def worker(i, barrier=barrier):
            try:
                barrier.wait()
                cr.save(objs[i], path)
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        back = cr.load(path)
        assert np.all(back["w"] == back["thread"])
        winners.add(back["thread"])
    assert not errors
    assert os.listdir(tmp_path) == ["ck.npz"]  # no temporary file left behind


def _leftover(tmp_path, base, pid, age):
    name = tmp_path / f".{base}.{checkpoint._host_tag()}-{pid}-x{age}{checkpoint._TMP_SUFFIX}"
    name.write_bytes(b"half a file")
    os.utime(name, (time.time() - age, time.time() - age))
    return name


def test_save_removes_leftovers_of_killed_saves_and_keeps_live_ones(tmp_path):
    dead_pid = 4_000_000  # above Linux's pid_max: no such process
    stale_dead = _leftover(tmp_path, "ck.npz", dead_pid, 0)  # dead writer: removed at once
    old = _leftover(tmp_path, "ck.npz", os.getpid(), checkpoint.STALE_SECONDS + 60)  # untouched for too long
    live = _leftover(tmp_path, "ck.npz", os.getpid(), 0)  # another thread's save in progress: kept
    other = _leftover(tmp_path, "other.npz", dead_pid, 0)  # another target's: not ours to touch
    legacy = tmp_path / f"ck.npz.tmp-{dead_pid}"
    legacy.write_bytes(b"old-style leftover")
    cr.save({"x": 1}, tmp_path / "ck.npz")
    assert not stale_dead.exists() and not old.exists() and not legacy.exists()
    assert live.exists() and other.exists()
    assert cr.load(tmp_path / "ck.npz") == {"x": 1}


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_killed_saves_never_corrupt_and_their_leftovers_are_removed(tmp_path):
    path = tmp_path / "ck.npz"
    cr.save({"gen": -1, "w": np.zeros(10)}, path)
    src = os.path.join(os.path.dirname(cr.__file__), "..")
    code = (
        "import sys, numpy as np, chainrule as cr\n"
        "print('ready', flush=True)\n"
        "i = 0\n"
        "while True:\n"
        "    cr.save({'gen': i, 'w': np.random.default_rng(i).normal(size=300_000)}, sys.argv[1]); i += 1\n"
    )
    env = {**os.environ, "PYTHONPATH": os.path.abspath(src)}
    kills = 5
    for k in range(kills):
        p = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, env=env)
        assert p.stdout.readline() == b"ready\n"
        time.sleep(0.2 + 0.13 * k)
        p.send_signal(signal.SIGKILL)
        p.wait()
        back = cr.load(path)  # always the old file or a complete new one
        assert back["w"].shape in ((10,), (300_000,))
    cr.save({"done": True}, path)
    assert os.listdir(tmp_path) == ["ck.npz"]


# --- save replaces only a regular file, and keeps its mode, owner and links ---------------------------
def _only_the(tmp_path, *names):
    assert sorted(os.listdir(tmp_path)) == sorted(names)  # no temporary file left behind


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_save_refuses_a_fifo_and_leaves_it_alone(tmp_path):
    fifo = tmp_path / "ck.npz"
    os.mkfifo(fifo)
    with pytest.raises(checkpoint.NotAFileError, match=rf"{fifo} is a FIFO \(named pipe\), not a regular file"):
        cr.save({"w": np.ones(3)}, fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    _only_the(tmp_path, "ck.npz")


def test_save_refuses_a_directory(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(checkpoint.NotAFileError, match="d is a directory") as info:
        cr.save({"x": 1}, tmp_path / "d")
    assert isinstance(info.value, OSError) and os.path.isdir(tmp_path / "d")
    _only_the(tmp_path, "d")


@pytest.mark.skipif(not os.path.exists("/dev/null") or not stat.S_ISCHR(os.stat("/dev/null").st_mode), reason="Unix")
def test_save_refuses_a_device_before_creating_or_removing_anything(monkeypatch):
    """/dev/null is only inspected: every call that could write is replaced by a failure first."""
    assert checkpoint.file_kind(os.stat("/dev/null").st_mode) == "a character device"

    def never(*args, **kwargs):
        raise AssertionError(f"save wrote near a device: {args}")

    monkeypatch.setattr(checkpoint.tempfile, "mkstemp", never)
    monkeypatch.setattr(checkpoint, "_remove_leftovers", never)
    monkeypatch.setattr(checkpoint.os, "replace", never)
    monkeypatch.setattr(checkpoint.os, "open", never)
    with pytest.raises(checkpoint.NotAFileError, match="/dev/null is a character device, not a regular file"):
        cr.save({"x": 1}, "/dev/null")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_save_writes_through_a_symlink_and_keeps_the_link(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "ck.npz"
    cr.save({"gen": 0}, target)
    os.symlink("real/ck.npz", tmp_path / "link.npz")  # relative, as ln -s makes them
    os.symlink(tmp_path / "link.npz", tmp_path / "link2.npz")  # a chain of two
    cr.save({"gen": 1}, tmp_path / "link2.npz")
    assert os.readlink(tmp_path / "link2.npz") == str(tmp_path / "link.npz")
    assert os.readlink(tmp_path / "link.npz") == "real/ck.npz"
    assert cr.load(target) == {"gen": 1} and cr.load(tmp_path / "link.npz") == {"gen": 1}
    _only_the(tmp_path / "real", "ck.npz")
    os.symlink("real/new.npz", tmp_path / "dangling.npz")  # a link to nothing yet: the file is created there
    cr.save({"gen": 2}, tmp_path / "dangling.npz")
    assert os.path.islink(tmp_path / "dangling.npz") and cr.load(tmp_path / "real" / "new.npz") == {"gen": 2}


@pytest.mark.skipif(not hasattr(os, "symlink") or not hasattr(os, "mkfifo"), reason="needs links and FIFOs")
def test_save_refuses_links_to_what_it_would_refuse_and_loops(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    os.symlink("fifo", tmp_path / "to-fifo.npz")
    with pytest.raises(checkpoint.NotAFileError, match="to-fifo.npz is a symbolic link to .*fifo, which is a FIFO"):
        cr.save({"x": 1}, tmp_path / "to-fifo.npz")
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    with pytest.raises(checkpoint.NotAFileError, match="more than 40 links"):
        cr.save({"x": 1}, tmp_path / "a")
    os.symlink("nodir/x.npz", tmp_path / "nowhere.npz")
    with pytest.raises(FileNotFoundError, match="the directory .*nodir does not exist"):
        cr.save({"x": 1}, tmp_path / "nowhere.npz")
    assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo").st_mode) and os.path.islink(tmp_path / "a")
    _only_the(tmp_path, "fifo", "to-fifo.npz", "a", "b", "nowhere.npz")


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o604])
def test_save_keeps_the_replaced_files_mode(tmp_path, mode):
    path = tmp_path / "ck.npz"
    cr.save({"gen": 0}, path)
    os.chmod(path, mode)
    cr.save({"gen": 1}, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode and cr.load(path) == {"gen": 1}


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_a_new_file_gets_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        cr.save({"x": 1}, tmp_path / "new.npz")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.npz").st_mode) == 0o640


@pytest.mark.skipif(not hasattr(os, "fchown") or os.geteuid() != 0, reason="changing a file's owner needs root")
def test_save_keeps_the_owner_and_group(tmp_path):
    path = tmp_path / "ck.npz"
    cr.save({"gen": 0}, path)
    os.chown(path, 12345, 23456)
    os.chmod(path, 0o600)
    cr.save({"gen": 1}, path)
    st_ = os.stat(path)
    assert (st_.st_uid, st_.st_gid, stat.S_IMODE(st_.st_mode)) == (12345, 23456, 0o600)


@pytest.mark.skipif(not hasattr(os, "fchown"), reason="POSIX owners")
def test_another_users_file_keeps_at_least_its_group(tmp_path, monkeypatch):
    """The saver is not the owner (fstat says so) and may not give the file away: the group is still kept."""
    path = tmp_path / "ck.npz"
    cr.save({"gen": 0}, path)
    old = os.stat(path)
    calls = []

    def fchown(fd, uid, gid):
        calls.append((uid, gid))
        if uid != -1:
            raise PermissionError(errno.EPERM, "Operation not permitted")

    real_fstat = os.fstat

    def fstat(fd):
        fields = list(real_fstat(fd))
        fields[4] += 1  # st_uid: as if another user were saving
        return os.stat_result(fields)

    monkeypatch.setattr(checkpoint.os, "fchown", fchown)
    monkeypatch.setattr(checkpoint.os, "fstat", fstat)
    cr.save({"gen": 1}, path)
    assert calls == [(old.st_uid, old.st_gid), (-1, old.st_gid)]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_path_that_turns_into_a_fifo_during_the_save_is_not_replaced(tmp_path, monkeypatch):
    path = tmp_path / "ck.npz"
    real = checkpoint._keep_owner_and_mode

    def swap_in_a_fifo(fd, target):
        real(fd, target)
        os.mkfifo(path)  # appears while the data is being written

    monkeypatch.setattr(checkpoint, "_keep_owner_and_mode", swap_in_a_fifo)
    with pytest.raises(checkpoint.NotAFileError, match="ck.npz is a FIFO"):  # checked again before the rename
        cr.save({"x": 1}, path)
    assert stat.S_ISFIFO(os.lstat(path).st_mode)
    _only_the(tmp_path, "ck.npz")
