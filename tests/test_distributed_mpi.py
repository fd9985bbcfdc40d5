"""Two real MPI processes (``mpiexec -n 2``): averaging, one-process equality, faults and resume.

Every job here is a short training (3 epochs of the digits, about a second of
work), so the file runs in well under a minute.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr

from .test_distributed import need_mpi

SRC = str(Path(__file__).resolve().parents[1] / "src")
EPOCHS = ["--epochs", "3"]
# Fault injection lives in the test: this wrapper patches one rank, then runs the normal command.
WRAPPER = textwrap.dedent(
    """
    import os, signal, sys, time
    from chainrule import cli, distributed as dist

    fault, rank, step = os.environ["FAULT"], int(os.environ["FAULT_RANK"]), int(os.environ["FAULT_STEP"])
    real = dist.DistributedDataParallel.all_reduce_gradients
    real_shard = dist.shard

    def all_reduce_gradients(self, *args, **kwargs):
        if rank in (dist.get_rank(), -1) and self.allreduce_calls + 1 >= step:
            print(f"fault: rank {rank} {fault} at step {step}", file=sys.stderr, flush=True)
            if fault == "hang":
                time.sleep(600)
            elif fault == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            elif fault == "exit":
                os._exit(3)
            elif fault == "skip":  # a planted bug: every rank steps on its own gradient
                return None
        return real(self, *args, **kwargs)

    def shard(idx, *args):  # a planted bug: every rank trains on the first half of each batch
        return idx[: len(idx) // 2] if fault == "same-half" else real_shard(idx, *args)

    dist.DistributedDataParallel.all_reduce_gradients = all_reduce_gradients
    dist.shard = shard
    sys.exit(cli.main(sys.argv[1:]))
    """
)


def mpiexec() -> str:
    need_mpi()
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have mpiexec (the mpich wheel): pip install -e '.[test]'")
        pytest.skip("no mpiexec on PATH")
    return found


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC, "PYTHONUNBUFFERED": "1", **extra}


def run(args: list[str], *, n: int = 0, fault: str = "", rank: int = 1, step: int = 30, tmp: Path, limit: float = 60):
    """``chainrule ARGS`` in one process (``n=0``) or under ``mpiexec -n N``; returns (result, seconds)."""
    if fault:
        script = tmp / "faulty.py"
        script.write_text(WRAPPER)
        cmd = [sys.executable, str(script), *args]
    else:
        cmd = [sys.executable, "-m", "chainrule", *args]
    if n:
        cmd = [mpiexec(), *(["-disable-auto-cleanup"] if fault == "exit" else []), "-n", str(n), *cmd]
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=limit,
        cwd=tmp,
        env=env(FAULT=fault, FAULT_RANK=str(rank), FAULT_STEP=str(step)),
    )
    return proc, time.perf_counter() - t0


def weights(path: Path) -> dict[str, np.ndarray]:
    state = cr.load(path)
    out = {f"model.{k}": v.data for k, v in state["model"].items()}
    flat_opt = []

    def walk(node, where):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{where}.{k}")
        elif isinstance(node, (list, tuple)):
            for i, v in enumerate(node):
                walk(v, f"{where}.{i}")
        elif isinstance(node, (np.ndarray, cr.Tensor)):
            flat_opt.append((where, np.asarray(node.data if isinstance(node, cr.Tensor) else node)))

    walk(state["optimizer"], "optimizer")
    out.update(flat_opt)
    out["epoch"] = np.array(state["epoch"])
    return out


def assert_same_run(a: Path, b: Path) -> float:
    """Same keys; every array equal to float32 rounding (a few ulps after ~70 steps); returns the largest gap."""
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    worst = 0.0
    for k in wa:
        np.testing.assert_allclose(wb[k], wa[k], rtol=1e-5, atol=1e-6, err_msg=k)
        worst = max(worst, float(np.max(np.abs(wb[k].astype(np.float64) - wa[k]), initial=0.0)))
    return worst


def test_two_ranks_average_gradients_weighted_by_their_samples(tmp_path):
    script = tmp_path / "collectives.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, sys
            import numpy as np
            import chainrule as cr
            from chainrule import distributed as dist, nn

            dist.init_process_group(timeout=20)
            r = dist.get_rank()
            model = nn.Linear(3, 2, rng=r)              # different starting weights on each rank ...
            model.other = nn.Parameter(np.zeros(2))      # float64: a second bucket
            ddp = dist.DistributedDataParallel(model)   # ... until rank 0's are broadcast
            out = {"rank": r, "size": dist.get_world_size(), "weight": model.weight.data.tolist()}
            for p in model.parameters():
                p.grad = cr.tensor(np.full(p.shape, r + 1.0, p.data.dtype))
            if r == 0:
                model.other.grad = None                  # rank 0 has no gradient for it: counts as zero
            ddp.all_reduce_gradients(num_samples=3 if r == 0 else 1)
            out["weighted"] = float(model.weight.grad.data[0, 0])
            out["partial"] = model.other.grad.data.tolist()
            out["dtype"] = str(model.other.grad.data.dtype)
            for p in model.parameters():
                p.grad = cr.tensor(np.full(p.shape, r + 1.0, p.data.dtype))
            ddp.all_reduce_gradients()
            out["plain"] = float(model.bias.grad.data[0])
            x = np.array([r, -r], dtype=np.float64)
            dist.all_reduce(x, dist.ReduceOp.MAX)
            out["max"] = x.tolist()
            y = np.full(2, float(r))
            dist.broadcast(y, src=1)
            out["bcast"] = y.tolist()
            dist.check_parameters_in_sync(model)
            if r == 1:
                model.bias.data = model.bias.data + 1
            try:
                dist.check_parameters_in_sync(model)
                out["drift"] = "not detected"
            except dist.DistributedError as exc:
                out["drift"] = str(exc)
            dist.barrier()
            with open(f"{sys.argv[1]}/rank{r}.json", "w") as f:  # one file per rank: printed lines can interleave
                json.dump(out, f)
            """
        )
    )
    proc = subprocess.run(
        [mpiexec(), "-n", "2", sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env(),
    )
    assert proc.returncode == 0, proc.stderr
    got = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [g["rank"] for g in got] == [0, 1] and got[0]["size"] == 2
    assert got[0]["weight"] == got[1]["weight"]  # broadcast from rank 0
    for g in got:
        assert g["weighted"] == pytest.approx((3 * 1.0 + 1 * 2.0) / 4)  # sum_r n_r g_r / sum_r n_r
        assert g["partial"] == pytest.approx([(3 * 0.0 + 1 * 2.0) / 4] * 2) and g["dtype"] == "float64"
        assert g["plain"] == pytest.approx(1.5)  # the plain mean, as torch's DDP
        assert g["max"] == [1.0, 0.0] and g["bcast"] == [1.0, 1.0]
        assert "the ranks' parameters differ" in g["drift"]


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_two_processes_end_at_the_one_process_weights(tmp_path, optimizer):
    opts = [*EPOCHS, "--optimizer", optimizer]
    one, _ = run(["train", *opts, "--quiet", "--checkpoint", "one.npz"], tmp=tmp_path)
    assert one.returncode == 0, one.stderr
    two, _ = run(["train", "--distributed", *opts, "--checkpoint", "two.npz"], n=2, tmp=tmp_path)
    assert two.returncode == 0, two.stderr
    worst = assert_same_run(tmp_path / "one.npz", tmp_path / "two.npz")
    assert worst < 1e-6
    # rank 0 alone prints: one header, one line per epoch, one result
    assert two.stdout.count("UCI digits") == 1 and two.stdout.count("test accuracy") == 1
    assert two.stdout.count("epoch 3/3") == 1 and two.stderr == ""


def test_a_planted_wrong_split_is_caught_by_the_comparison(tmp_path):
    one, _ = run(["train", *EPOCHS, "--optimizer", "sgd", "--quiet", "--checkpoint", "one.npz"], tmp=tmp_path)
    bad, _ = run(
        ["train", "--distributed", *EPOCHS, "--optimizer", "sgd", "--quiet", "--checkpoint", "bad.npz"],
        n=2,
        fault="same-half",
        tmp=tmp_path,
    )
    assert one.returncode == 0 and bad.returncode == 0, bad.stderr  # the replicas agree with each other ...
    with pytest.raises(AssertionError, match="Not equal to tolerance"):  # ... but not with one process
        assert_same_run(tmp_path / "one.npz", tmp_path / "bad.npz")


def test_a_rank_that_skips_the_average_stops_the_job(tmp_path):
    args = ["train", "--distributed", *EPOCHS, "--quiet", "--dist-timeout", "10"]
    proc, _ = run(args, n=2, fault="skip", rank=-1, step=1, tmp=tmp_path)
    assert proc.returncode != 0
    assert "the ranks' parameters differ; the replicas drifted apart" in proc.stderr
    assert "Traceback" in proc.stderr and "uncaught DistributedError; aborting the job" in proc.stderr
    assert not (tmp_path / "chainrule-digits.npz").exists()  # the drifted epoch was not saved


def test_a_hung_worker_makes_the_others_abort_with_a_message(tmp_path):
    args = ["train", "--distributed", *EPOCHS, "--quiet", "--dist-timeout", "2"]
    proc, secs = run(args, n=2, fault="hang", step=30, tmp=tmp_path)
    assert proc.returncode == 70, proc.stderr
    assert "rank 0/2: all_reduce_gradients (step 30) did not complete within 2 s" in proc.stderr
    assert secs < 20


def test_a_worker_exiting_midway_is_reported_when_the_launcher_lets_the_others_run(tmp_path):
    args = ["train", "--distributed", *EPOCHS, "--quiet", "--dist-timeout", "2"]
    proc, secs = run(args, n=2, fault="exit", step=30, tmp=tmp_path)  # run() adds -disable-auto-cleanup
    assert proc.returncode == 70, proc.stderr
    assert "did not complete within 2 s: another worker died" in proc.stderr and secs < 20


def test_a_killed_worker_ends_the_job_and_resume_continues_from_rank_0s_checkpoint(tmp_path):
    one, _ = run(["train", *EPOCHS, "--quiet", "--checkpoint", "one.npz"], tmp=tmp_path)
    args = ["train", "--distributed", *EPOCHS, "--quiet", "--checkpoint", "two.npz"]
    killed, secs = run(args, n=2, fault="kill", step=30, tmp=tmp_path)  # 23 steps an epoch: dies in epoch 2
    assert killed.returncode != 0 and secs < 20
    assert "fault: rank 1 kill at step 30" in killed.stderr and "signal 9" in killed.stdout + killed.stderr
    assert int(cr.load(tmp_path / "two.npz")["epoch"]) == 1  # rank 0 saved epoch 1
    resumed, _ = run([*args, "--resume"], n=2, tmp=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(tmp_path / "one.npz", tmp_path / "two.npz")


def test_a_missing_checkpoint_on_resume_is_reported_once(tmp_path):
    proc, _ = run(["train", "--distributed", "--resume", "--checkpoint", "none.npz"], n=2, tmp=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("--resume: no checkpoint at none.npz") == 1 and proc.stdout == ""


def test_ranks_started_with_different_options_or_models_are_refused_at_start_up(tmp_path):
    """Issue 26: --hidden 64 on one rank and 32 on the other ended in MPI's bare truncation error (exit 70)."""
    cmd = [sys.executable, "-m", "chainrule", "train", "--distributed", *EPOCHS, "--quiet"]
    proc = subprocess.run(
        [mpiexec(), "-n", "1", *cmd, "--hidden", "64", ":", "-n", "1", *cmd, "--hidden", "32"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env(),
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [  # one line, from rank 0
        "chainrule train: --distributed: the workers were started with different options: "
        "--hidden is [64] on rank 0 but [32] on rank 1"
    ]
    assert not (tmp_path / "chainrule-digits.npz").exists()
    script = tmp_path / "models.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            from chainrule import distributed as dist, nn

            dist.init_process_group(timeout=20)
            r = dist.get_rank()
            try:
                dist.DistributedDataParallel(nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2 + r)))
                print("no error")
            except dist.RanksDifferError as exc:
                print(f"rank {r}: {exc}")
            """
        )
    )
    proc = subprocess.run(
        [mpiexec(), "-n", "2", sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env()
    )
    assert proc.returncode == 0, proc.stderr
    for r in (0, 1):  # every rank raises, with the same message
        assert re.search(
            rf"rank {r}: DistributedDataParallel: the model differs between the ranks: 1.weight is \w+ \(2, 4\) "
            r"on rank 0 but \w+ \(3, 4\) on rank 1",
            proc.stdout,
        ), proc.stdout
