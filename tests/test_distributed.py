"""chainrule.distributed in one process: the API, sharding, bucketing, and the guards (no launcher needed).

The multi-process behaviour (averaging across ranks, equality with one-process
training, faults, resume) is in test_distributed_mpi.py.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import chainrule as cr
from chainrule import distributed as dist
from chainrule import nn
from chainrule.cli import main


def need_mpi() -> None:
    """Skip without mpi4py and an MPI, except in CI, which installs them (`.[test]` pulls in `distributed`)."""
    if dist.is_available():
        return
    if os.environ.get("CI"):
        pytest.fail("CI must have mpi4py and MPICH: pip install -e '.[test]'")
    pytest.skip("needs mpi4py and an MPI: pip install 'chainrule[distributed]'")


@pytest.fixture
def group():
    need_mpi()
    dist.init_process_group(timeout=30)
    yield
    dist.destroy_process_group()


def test_calls_before_init_name_init_process_group():
    assert not dist.is_initialized()
    assert dist.is_main_process()
    for call in (dist.get_rank, dist.get_world_size, dist.barrier):
        with pytest.raises(dist.DistributedError, match=r"init_process_group\(\)"):
            call()
    with pytest.raises(dist.DistributedError, match="not initialised"):
        dist.DistributedDataParallel(nn.Linear(2, 2))


def test_other_backends_and_bad_arguments_are_refused():
    with pytest.raises(dist.DistributedError, match="backend 'nccl' is not available.*mpirun"):
        dist.init_process_group("nccl")
    with pytest.raises(dist.DistributedError, match="positive number of seconds"):
        dist.init_process_group(timeout=0)
    need_mpi()
    with pytest.raises(dist.DistributedError, match="world_size=4 was given but MPI started this process with"):
        dist.init_process_group(world_size=4)
    assert not dist.is_initialized()  # a refused call leaves no half-made group


def test_the_signature_compared_across_ranks(group):
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    model[0].bias.requires_grad = False  # frozen: DDP neither averages nor compares it
    sig = dist.parameters_signature(model)
    assert list(sig) == ["the number of parameters", "0.weight", "1.weight", "1.bias"]
    assert sig["the number of parameters"] == "3" and sig["1.weight"].endswith(" (2, 4)")
    assert dist.parameters_signature([cr.tensor(np.ones(2), requires_grad=True)]) == {
        "the number of parameters": "1",
        "parameter 0": "float64 (2,)",
    }
    dist.check_same_on_all_ranks(sig)  # one rank agrees with itself


def test_one_process_group(group):
    assert dist.is_initialized() and dist.get_rank() == 0 and dist.get_world_size() == 1
    dist.barrier()
    x = np.arange(4.0)
    dist.all_reduce(x, dist.ReduceOp.MAX)
    np.testing.assert_array_equal(x, np.arange(4.0))
    with pytest.raises(dist.DistributedError, match="unknown op 'avg'"):
        dist.all_reduce(x, "avg")
    with pytest.raises(dist.DistributedError, match="C-contiguous"):
        dist.all_reduce(np.ones((3, 3))[:, 0])
    with pytest.raises(dist.DistributedError, match="src=1 is not a rank of this job"):
        dist.broadcast(x, src=1)
    with pytest.raises(dist.DistributedError, match="already initialised"):
        dist.init_process_group()


def test_shard_partitions_a_batch_like_a_distributed_sampler():
    idx = np.random.default_rng(0).permutation(30)
    for world in (1, 2, 3, 4, 7):
        parts = [dist.shard(idx, r, world) for r in range(world)]
        assert sorted(np.concatenate(parts).tolist()) == sorted(idx.tolist())
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    with pytest.raises(dist.DistributedError, match="rank 2 is not in 0..1"):
        dist.shard(idx, 2, 2)


@pytest.mark.parametrize("n, replicas, drop_last", [(10, 3, False), (10, 3, True), (12, 4, False), (5, 8, False)])
def test_distributed_sampler_matches_torch_unshuffled(n, replicas, drop_last):
    from torch.utils.data import DistributedSampler as TorchSampler

    for rank in range(replicas):
        ours = dist.DistributedSampler(n, replicas, rank, shuffle=False, drop_last=drop_last)
        theirs = TorchSampler(range(n), replicas, rank, shuffle=False, drop_last=drop_last)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


def test_distributed_sampler_shuffles_the_same_on_every_rank():
    shares = [dist.DistributedSampler(11, 3, r, seed=5) for r in range(3)]
    for s in shares:
        s.set_epoch(2)
    got = [list(s) for s in shares]
    assert all(len(g) == 4 for g in got)
    flat = sum(got, [])
    assert set(flat) == set(range(11)) and len(flat) == 12  # one index repeated as padding
    shares[0].set_epoch(3)
    assert list(shares[0]) != got[0]


def test_check_batches_names_the_last_batch():
    dist.check_batches(1438, 64, 30)  # 1438 = 22 x 64 + 30
    with pytest.raises(ValueError, match=r"last batch of each epoch \(1438 = 22 x 64 \+ 30\) has 30 samples"):
        dist.check_batches(1438, 64, 31)
    with pytest.raises(ValueError, match="the batch size has 4 samples, fewer than the 8 workers"):
        dist.check_batches(100, 4, 8)


def mixed_model():
    model = nn.Sequential(nn.Linear(5, 7, rng=0), nn.ReLU(), nn.Linear(7, 3, rng=1))
    model.extra = nn.Parameter(np.ones(3, dtype=np.float64))  # a second dtype: its own bucket
    model.unused = nn.Parameter(np.zeros(2, dtype=np.float32))  # never gets a gradient
    return model


def loss_of(model, x):
    return ((model(cr.tensor(x)) * model.extra) ** 2).mean()


def test_one_process_ddp_keeps_gradients_and_dtypes(group):
    x = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    model = mixed_model()
    loss_of(model, x).backward()
    expected = {name: p.grad.data.copy() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=60 / 2**20)  # 60 bytes: several float32 buckets
    assert len(ddp._buckets) >= 4
    loss_of(ddp, x).backward()
    ddp.all_reduce_gradients(num_samples=6)
    for name, p in model.named_parameters():
        if name == "unused":
            assert p.grad is None  # no rank had a gradient: it stays None, so the optimizer skips it
        else:
            assert p.grad.data.dtype == expected[name].dtype
            np.testing.assert_allclose(p.grad.data, expected[name], rtol=1e-6)
    assert ddp.allreduce_calls == 1 and ddp.allreduce_seconds > 0


def test_a_forgotten_average_is_an_error_not_a_drift(group):
    x = np.ones((2, 5), np.float32)
    ddp = dist.DistributedDataParallel(mixed_model())
    loss_of(ddp, x).backward()
    with pytest.raises(dist.DistributedError, match=r"call ddp.all_reduce_gradients\(\) after loss.backward\(\)"):
        ddp(cr.tensor(x))
    ddp.all_reduce_gradients()
    with ddp.no_sync():  # gradient accumulation: no average needed in between
        loss_of(ddp, x).backward()
        loss_of(ddp, x).backward()
    ddp(cr.tensor(x))
    with pytest.raises(dist.DistributedError, match="num_samples must be a non-negative integer, got 1.5"):
        ddp.all_reduce_gradients(num_samples=1.5)


def test_sync_check_and_broadcast_in_one_process(group):
    model = mixed_model()
    before = dist.parameters_digest(model)
    dist.broadcast_parameters(model)
    assert dist.parameters_digest(model) == before
    dist.check_parameters_in_sync(model)
    model.extra.data = np.full(3, 2.0)
    assert dist.parameters_digest(model) != before


def test_load_from_main_in_one_process(group, tmp_path):
    path = tmp_path / "c.npz"
    cr.save({"w": np.arange(3.0)}, path)
    np.testing.assert_array_equal(dist.load_from_main(str(path), cr.load)["w"], np.arange(3.0))
    with pytest.raises(FileNotFoundError):
        dist.load_from_main(str(tmp_path / "missing.npz"), cr.load)


def test_cli_refuses_a_bad_timeout(capsys):
    assert main(["train", "--distributed", "--dist-timeout", "0"]) == 2
    err = capsys.readouterr().err
    assert "expected a positive number of seconds up to a day, got 0" in err


def test_without_mpi4py_the_command_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now raises ImportError
    assert main(["train", "--distributed", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "--distributed: chainrule.distributed needs mpi4py and an MPI library" in err
    assert "pip install 'chainrule[distributed]'" in err and not dist.is_initialized()
