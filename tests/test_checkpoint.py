"""cr.save / cr.load: round trips, and damaged or foreign files rejected with CheckpointError."""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn, optim


def trained_state():
    model = nn.MLP([4, 5, 3], rng=0)
    opt = optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.9))
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    for _ in range(2):
        loss = nn.cross_entropy(model(x), np.array([0, 1, 2, 0, 1, 2]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, opt, {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 2}


def test_round_trip_model_and_optimizer(tmp_path):
    model, opt, state = trained_state()
    path = tmp_path / "ck.npz"
    cr.save(state, path)
    back = cr.load(path)
    assert back["epoch"] == 2
    assert list(back["model"]) == list(state["model"])
    for k, v in state["model"].items():
        assert isinstance(back["model"][k], cr.Tensor)
        assert back["model"][k].dtype == np.float32
        np.testing.assert_array_equal(back["model"][k].data, v.data)
    st = back["optimizer"]["state"]
    assert sorted(st) == [0, 1, 2, 3]  # integer keys stay integers
    np.testing.assert_array_equal(st[1]["exp_avg_sq"], state["optimizer"]["state"][1]["exp_avg_sq"])
    assert st[0]["step"] == 2
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.8, 0.9)  # tuples stay tuples
    fresh = nn.MLP([4, 5, 3], rng=1)
    fresh.load_state_dict(back["model"])
    for p, q in zip(model.parameters(), fresh.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    optim.Adam(fresh.parameters()).load_state_dict(back["optimizer"])


def test_round_trip_values(tmp_path):
    obj = {
        "ints": [1, -2, 3],
        "floats": (0.5, float("inf"), float("-inf")),
        "nan": float("nan"),
        "none": None,
        "flags": [True, False],
        "text": "héllo",
        "arrays": [np.arange(6, dtype=np.int16).reshape(2, 3), np.array(2.5), np.zeros((0, 3)), np.array([True])],
        7: {"nested": cr.tensor(3.0)},
    }
    path = tmp_path / "values.ckpt"
    cr.save(obj, path)
    assert os.listdir(tmp_path) == ["values.ckpt"]  # exact name, no temporary file left
    back = cr.load(path)
    assert back["ints"] == [1, -2, 3] and back["floats"] == (0.5, float("inf"), float("-inf"))
    assert np.isnan(back["nan"]) and back["none"] is None and back["flags"] == [True, False]
    assert back["text"] == "héllo"
    a = back["arrays"]
    assert a[0].dtype == np.int16 and a[0].shape == (2, 3) and a[1].shape == () and a[2].shape == (0, 3)
    assert a[3].dtype == np.bool_
    assert back[7]["nested"].item() == 3.0


def test_unsupported_values_rejected_before_writing(tmp_path):
    path = tmp_path / "bad.npz"
    with pytest.raises(TypeError, match=r"the object\['f'\] is a builtin_function_or_method"):
        cr.save({"f": len}, path)
    with pytest.raises(TypeError, match="dtype object"):
        cr.save({"a": np.array([{}, 1], dtype=object)}, path)
    assert not path.exists()


def _saved(tmp_path):
    path = tmp_path / "ck.npz"
    cr.save(trained_state()[2], path)
    return path


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.9, 0.999])
def test_truncated_file_rejected(tmp_path, keep):
    path = _saved(tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(cr.CheckpointError, match="ck.npz"):
        cr.load(path)


def _same(a, b):
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (cr.Tensor, np.ndarray)):
        x, y = np.asarray(a), np.asarray(b)
        return x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y)
    return a == b


def test_flipped_bytes_rejected_or_harmless(tmp_path):
    """A damaged byte either raises CheckpointError or hit zip bookkeeping that no reader uses.

    (Python's zipfile ignores, e.g., the local headers' timestamps and CRC copies;
    the data, the index and the digest are all checked.)  Never another
    exception, never different contents.
    """
    path = _saved(tmp_path)
    original = cr.load(path)
    raw = path.read_bytes()
    rejected = 0
    for pos in range(0, len(raw), 7):
        damaged = bytearray(raw)
        damaged[pos] ^= 0xFF
        path.write_bytes(bytes(damaged))
        try:
            back = cr.load(path)
        except cr.CheckpointError:
            rejected += 1
            continue
        assert _same(back, original), f"byte {pos} changed the loaded contents without an error"
    assert rejected > len(range(0, len(raw), 7)) // 2


def _rewrite(path, change):
    """Rewrite a valid archive with one entry changed, keeping it a well-formed .npz."""
    with np.load(path, allow_pickle=False) as z:
        entries = {k: z[k] for k in z.files}
    change(entries)
    with open(path, "wb") as f:
        np.savez(f, **entries)


def test_tampered_but_well_formed_archive_fails_the_hash(tmp_path):
    path = _saved(tmp_path)

    def tweak(entries):
        entries["a0"] = entries["a0"] + np.float32(1e-3)

    _rewrite(path, tweak)
    with pytest.raises(cr.CheckpointError, match="SHA-256"):
        cr.load(path)
    path = _saved(tmp_path)
    _rewrite(path, lambda e: e.pop("a1"))  # an array removed: no silent partial load
    with pytest.raises(cr.CheckpointError, match="SHA-256"):
        cr.load(path)


def test_foreign_files_rejected(tmp_path):
    plain = tmp_path / "plain.npz"
    np.savez(plain, w=np.ones(3))
    with pytest.raises(cr.CheckpointError, match="not a chainrule checkpoint"):
        cr.load(plain)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(cr.CheckpointError, match="not a readable checkpoint"):
        cr.load(text)
    with pytest.raises(FileNotFoundError):
        cr.load(tmp_path / "missing.npz")


def test_pickled_payload_is_never_unpickled(tmp_path):
    """An object array (a pickle inside the .npy) is refused from its header, also with a valid digest."""
    from chainrule import checkpoint

    path = tmp_path / "evil.npz"
    buf = io.BytesIO()
    np.save(buf, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    meta = b'{"format": "chainrule-checkpoint", "tree": {"k": "a0", "t": "array"}, "version": 1}'
    digest = checkpoint._digest(meta, {"a0": np.array([0], dtype=object)})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a0.npy", buf.getvalue())
        for key, raw in ((checkpoint.META_KEY, meta), (checkpoint.HASH_KEY, digest.encode())):
            one = io.BytesIO()
            np.save(one, np.frombuffer(raw, np.uint8))
            zf.writestr(key + ".npy", one.getvalue())
    with pytest.raises(cr.CheckpointError, match="dtype object"):
        cr.load(path)


@pytest.mark.parametrize(
    "tree",
    [
        {"t": "array", "k": "a9"},  # names an array that is not there
        {"t": "code", "v": "print(1)"},  # an unknown entry type
        "[" * 100_000 + "]" * 100_000,  # nesting deep enough to exhaust the recursion limit
    ],
    ids=["missing-array", "unknown-type", "deep-nesting"],
)
def test_forged_index_with_a_matching_digest_is_rejected(tmp_path, tree):
    """The digest detects damage, not forgery: a hostile index with a recomputed digest must still fail cleanly."""
    import json

    from chainrule import checkpoint

    if isinstance(tree, str):
        meta = ('{"format": "chainrule-checkpoint", "version": 1, "tree": ' + tree + "}").encode()
    else:
        meta = json.dumps({"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "tree": tree}).encode()
    digest = checkpoint._digest(meta, {})
    path = tmp_path / "forged.npz"
    with open(path, "wb") as f:
        np.savez(
            f,
            **{
                checkpoint.META_KEY: np.frombuffer(meta, np.uint8),
                checkpoint.HASH_KEY: np.frombuffer(digest.encode(), np.uint8),
            },
        )
    with pytest.raises(cr.CheckpointError):
        cr.load(path)
