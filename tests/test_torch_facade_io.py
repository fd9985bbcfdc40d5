"""chainrule.torch's files: PyTorch's own ``.pt`` zip files read without running code, ``.safetensors`` both
ways between chainrule.torch and PyTorch, and chainrule's format through paths and file objects."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest

import chainrule as cr
import chainrule.torch as ct

torch = pytest.importorskip("torch")


def _torch_bytes(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf


def test_reads_a_torch_state_dict_and_checkpoint():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    ck = {
        "model": net.state_dict(),
        "epoch": 7,
        "loss": 0.25,
        "names": ["a", "b"],
        "p": torch.nn.Parameter(torch.ones(2)),
        "strided": torch.arange(12).reshape(3, 4).T[1:],
        "half": torch.ones(3, dtype=torch.float16),
        "flags": torch.tensor([True, False]),
    }
    got = ct.load(_torch_bytes(ck), map_location="cpu", weights_only=True)
    assert got["epoch"] == 7 and got["loss"] == 0.25 and got["names"] == ["a", "b"]
    assert list(got["model"]) == list(net.state_dict())
    for k, v in net.state_dict().items():
        assert got["model"][k].dtype == np.dtype(str(v.dtype).removeprefix("torch."))
        np.testing.assert_array_equal(got["model"][k].numpy(), v.numpy())
    np.testing.assert_array_equal(got["strided"].numpy(), ck["strided"].numpy())
    assert got["half"].dtype == np.float16 and got["flags"].dtype == np.bool_
    assert isinstance(got["p"], ct.nn.Parameter) and got["p"].requires_grad
    mine = ct.nn.Sequential(ct.nn.Linear(3, 4), ct.nn.BatchNorm1d(4), ct.nn.Linear(4, 2))
    mine.load_state_dict(got["model"])
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    net.eval()
    mine.eval()
    np.testing.assert_allclose(
        mine(ct.tensor(x)).detach().numpy(), net(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6
    )


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_torch_file_with_code_is_refused_and_runs_nothing(capsys):
    with pytest.raises(pickle.UnpicklingError, match="does not load"):
        ct.load(_torch_bytes({"x": _Evil()}))
    assert "must never run" not in capsys.readouterr().out


def test_a_torch_module_object_is_refused():
    with pytest.raises(pickle.UnpicklingError, match="state_dict"):
        ct.load(_torch_bytes(torch.nn.Linear(2, 2)))


def test_planted_permissive_unpickler_would_run_code(monkeypatch, capsys):
    """The refusal is what protects: let every global through and the payload runs."""
    from chainrule.torch import _torch_pickle as tp

    monkeypatch.setattr(tp._Restricted, "find_class", pickle.Unpickler.find_class)
    ct.load(_torch_bytes({"x": _Evil()}))
    assert "must never run" in capsys.readouterr().out


def test_safetensors_both_ways(tmp_path):
    pytest.importorskip("safetensors")
    import safetensors.torch as stt

    from chainrule.torch.safetensors import save_file

    mine = ct.nn.Linear(3, 2)
    save_file(mine.state_dict(), tmp_path / "a.safetensors")
    theirs = torch.nn.Linear(3, 2)
    theirs.load_state_dict(stt.load_file(str(tmp_path / "a.safetensors")))
    x = [[1.0, -2.0, 0.5]]
    np.testing.assert_array_equal(theirs(torch.tensor(x)).detach().numpy(), mine(ct.tensor(x)).detach().numpy())
    torch.nn.init.normal_(theirs.weight)
    stt.save_file(theirs.state_dict(), str(tmp_path / "b.safetensors"))
    mine.load_state_dict(ct.load(tmp_path / "b.safetensors"))
    np.testing.assert_array_equal(mine.weight.detach().numpy(), theirs.weight.detach().numpy())
    assert mine.weight.dtype == np.float32


def test_own_format_through_paths_and_file_objects(tmp_path):
    sd = {"w": ct.tensor([[1.0, 2.0]]), "step": 3}
    ct.save(sd, tmp_path / "c.pt")
    assert ct.load(str(tmp_path / "c.pt"))["step"] == 3
    buf = io.BytesIO()
    ct.save(sd, buf)
    buf.seek(0)
    back = ct.load(buf)
    np.testing.assert_array_equal(back["w"].numpy(), [[1.0, 2.0]])
    assert back["w"].dtype == np.float32


def test_corrupt_and_legacy_files_are_refused(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x80\x02}q\x00.")
    with pytest.raises(cr.CheckpointError, match="legacy"):
        ct.load(bad)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(cr.CheckpointError):
        ct.load(junk)
