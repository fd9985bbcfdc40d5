"""Data-parallel training on MPI, named after ``torch.distributed`` and ``DistributedDataParallel``.

Launch one process per worker with MPI's launcher and every process runs the same script::

    mpirun -n 4 python train.py            # or: srun -n 4 python train.py on a Slurm cluster

    import chainrule.distributed as dist
    dist.init_process_group()                       # rank and world size come from MPI
    ddp = dist.DistributedDataParallel(model)       # broadcasts rank 0's parameters
    for idx in global_batches:                      # the same global batch order on every rank
        mine = dist.shard(idx)                      # this rank's part of the global batch
        loss = loss_fn(ddp(x[mine]), y[mine])
        opt.zero_grad()
        loss.backward()
        ddp.all_reduce_gradients(num_samples=len(mine))   # the one line torch does inside backward
        opt.step()

The engine is MPI (through ``mpi4py``): gradients are packed into flat,
contiguous buffers (one per dtype, at most ``bucket_cap_mb`` each), averaged with
``Iallreduce(MPI.IN_PLACE, ...)`` and unpacked as the parameters' ``.grad``.

Unlike torch's DDP, chainrule has no backward hooks, so the average happens when
``all_reduce_gradients()`` is called; a forward pass whose gradients were never
averaged makes the next forward raise instead of letting the replicas drift apart.

Every collective is nonblocking and polled against a deadline (``timeout``,
default 60 s): a worker that died or hangs makes the others print which
collective timed out and call ``MPI.COMM_WORLD.Abort``, which ends the whole job
with a non-zero status, never a silent hang.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Optional, Union

import numpy as np

from .tensor import Tensor
from .versions import mark_modified

DEFAULT_TIMEOUT = 60.0
ABORT_CODE = 70  # the status an aborted job exits with (EX_SOFTWARE)
INSTALL_HINT = "pip install 'chainrule[distributed]' (mpi4py and the MPICH wheel)"


class DistributedError(RuntimeError):
    """A distributed call was made in a state where it cannot work (not initialised, bad arguments)."""


class RanksDifferError(DistributedError):
    """The ranks were given different options or models; raised on every rank alike (see check_same_on_all_ranks)."""


class ReduceOp:
    """Reduction operations for :func:`all_reduce` (as ``torch.distributed.ReduceOp``)."""

    SUM = "sum"
    MAX = "max"
    MIN = "min"


class _Group:
    """The process group: MPI's world communicator and the collective deadline."""

    def __init__(self, comm: Any, mpi: Any, timeout: float) -> None:
        self.comm = comm
        self.MPI = mpi
        self.rank: int = comm.Get_rank()
        self.size: int = comm.Get_size()
        self.timeout = timeout


_GROUP: Optional[_Group] = None


# --- the process group ------------------------------------------------------------------------
def _import_mpi() -> Any:
    try:
        import mpi4py
    except ImportError:
        raise DistributedError(f"chainrule.distributed needs mpi4py and an MPI library: {INSTALL_HINT}") from None
    mpi4py.rc.threads = False  # one thread talks to MPI; no MPI_THREAD_MULTIPLE needed
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError) as exc:  # mpi4py is there but no MPI library could be loaded
        msg = f"chainrule.distributed: mpi4py cannot load an MPI library ({exc}); {INSTALL_HINT}"
        raise DistributedError(msg) from None
    return MPI


def _seconds(timeout: Union[float, datetime.timedelta, None]) -> float:
    if timeout is None:
        return DEFAULT_TIMEOUT
    secs = timeout.total_seconds() if isinstance(timeout, datetime.timedelta) else float(timeout)
    if not secs > 0:
        raise DistributedError(f"init_process_group: timeout must be a positive number of seconds, got {timeout!r}")
    return secs


def init_process_group(
    backend: str = "mpi",
    *,
    timeout: Union[float, datetime.timedelta, None] = None,
    world_size: Optional[int] = None,
    rank: Optional[int] = None,
) -> None:
    """Join the job started by ``mpirun``/``srun``: rank and world size come from MPI.

    ``timeout`` (seconds or a ``timedelta``; default 60 s) bounds every
    collective: past it the job is aborted with a message naming the collective.
    ``world_size`` and ``rank``, when given, must agree with what MPI says (MPI
    decides them; torch's ``init_method`` rendezvous has no MPI counterpart).
    Run without a launcher, the group is this one process (world size 1).
    """
    global _GROUP
    if backend != "mpi":
        raise DistributedError(
            f"init_process_group: backend {backend!r} is not available; chainrule.distributed runs on MPI: "
            "start the processes with mpirun (or srun) and call init_process_group() or init_process_group('mpi')"
        )
    secs = _seconds(timeout)
    if _GROUP is not None:
        raise DistributedError("init_process_group: the process group is already initialised in this process")
    MPI = _import_mpi()
    comm = MPI.COMM_WORLD
    group = _Group(comm, MPI, secs)
    for name, given, actual in (("world_size", world_size, group.size), ("rank", rank, group.rank)):
        if given is not None and given != actual:
            raise DistributedError(
                f"init_process_group: {name}={given} was given but MPI started this process with {name} {actual}; "
                f"the launcher decides it (mpirun -n N)"
            )
    _GROUP = group


def is_available() -> bool:
    """Whether mpi4py and an MPI library can be imported."""
    try:
        _import_mpi()
    except DistributedError:
        return False
    return True


def is_initialized() -> bool:
    return _GROUP is not None


def _group(what: str) -> _Group:
    if _GROUP is None:
        raise DistributedError(
            f"{what}: the process group is not initialised; call chainrule.distributed.init_process_group() first "
            "(and start the processes with mpirun -n N)"
        )
    return _GROUP


def get_rank() -> int:
    """This process's rank, 0 to world size - 1."""
    return _group("get_rank").rank


def get_world_size() -> int:
    """How many processes the job has."""
    return _group("get_world_size").size


def is_main_process() -> bool:
    """True on rank 0, and in a process that is not part of a group: the one that prints and saves."""
    return _GROUP is None or _GROUP.rank == 0


def destroy_process_group() -> None:
    """Leave the group (MPI itself is finalised when the process exits)."""
    global _GROUP
    _group("destroy_process_group")
    _GROUP = None


# --- collectives with a deadline ----------------------------------------------------------------
def abort(message: str, code: int = ABORT_CODE, before: str = "") -> None:
    """Print ``message`` (with this rank) to stderr and end every process of the job with status ``code``.

    ``before`` (a traceback) and the message go out in one write, so the
    launcher cannot interleave them with another rank's lines, and a peer's
    abort cannot cut them in half.
    """
    g = _GROUP
    who = f"rank {g.rank}/{g.size}" if g is not None else "chainrule.distributed"
    sys.stdout.flush()
    sys.stderr.flush()
    text = f"{before}chainrule: {who}: {message}\n".encode("utf-8", "replace")
    try:
        while text:
            text = text[os.write(2, text) :]
    except OSError:
        pass
    if g is not None:
        time.sleep(0.2)  # let the launcher forward the message before Abort tears the job down
        g.comm.Abort(code)
    os._exit(code)  # pragma: no cover  (Abort does not return)


def wait(requests: Sequence[Any], what: str) -> None:
    """Wait for MPI requests, polling; past the group's timeout, abort the job naming ``what``.

    Polls without pause for the first millisecond (a small allreduce on one
    machine takes tens of microseconds), then yields the CPU between polls (a
    peer that shares the core gets to run), and after 20 ms sleeps between
    polls, up to 1 ms, so a rank waiting for a slow peer costs almost no CPU.
    """
    g = _group(what)
    test_all = g.MPI.Request.Testall
    start = time.perf_counter()
    if test_all(requests):
        return
    deadline = start + g.timeout
    pause = 0.0
    while not test_all(requests):
        now = time.perf_counter()
        if now > deadline:
            abort(
                f"{what} did not complete within {g.timeout:g} s: another worker died, hangs or is far behind; "
                "aborting the job (raise the limit with the timeout of init_process_group, "
                "or --dist-timeout for chainrule train)"
            )
        waited = now - start
        if waited > 20e-3:
            pause = min(1e-3, pause * 2 or 5e-5)
            time.sleep(pause)
        elif waited > 1e-3:
            _yield()


_yield = getattr(os, "sched_yield", lambda: time.sleep(0))


def _mpi_op(g: _Group, op: str) -> Any:
    table = {ReduceOp.SUM: g.MPI.SUM, ReduceOp.MAX: g.MPI.MAX, ReduceOp.MIN: g.MPI.MIN}
    if op not in table:
        raise DistributedError(f"all_reduce: unknown op {op!r}; use ReduceOp.SUM, ReduceOp.MAX or ReduceOp.MIN")
    return table[op]


def _writable_array(x: Any, what: str) -> np.ndarray:
    arr = x._data if isinstance(x, Tensor) else x
    if not isinstance(arr, np.ndarray) or not arr.flags.c_contiguous or not arr.flags.writeable:
        raise DistributedError(
            f"{what}: needs a writable C-contiguous NumPy array or a tensor holding one, got {type(x).__name__}"
            + (f" of shape {arr.shape}" if isinstance(arr, np.ndarray) else "")
        )
    return arr


def all_reduce(x: Any, op: str = ReduceOp.SUM) -> Any:
    """Reduce ``x`` (a NumPy array or a tensor) over all ranks, in place, as ``torch.distributed.all_reduce``."""
    g = _group("all_reduce")
    arr = _writable_array(x, "all_reduce")
    wait([g.comm.Iallreduce(g.MPI.IN_PLACE, arr, op=_mpi_op(g, op))], f"all_reduce of shape {arr.shape}")
    if isinstance(x, Tensor):
        mark_modified(x)
    return x


def broadcast(x: Any, src: int = 0) -> Any:
    """Overwrite ``x`` (array or tensor) on every rank with rank ``src``'s, in place."""
    g = _group("broadcast")
    _check_src(g, src, "broadcast")
    arr = _writable_array(x, "broadcast")
    wait([g.comm.Ibcast(arr, root=src)], f"broadcast of shape {arr.shape} from rank {src}")
    if isinstance(x, Tensor):
        mark_modified(x)
    return x


def barrier() -> None:
    """Wait until every rank reaches this call (bounded by the group's timeout)."""
    g = _group("barrier")
    wait([g.comm.Ibarrier()], "barrier")


def _check_src(g: _Group, src: int, what: str) -> None:
    if not 0 <= src < g.size:
        raise DistributedError(f"{what}: src={src} is not a rank of this job (ranks 0 to {g.size - 1})")


def broadcast_bytes(data: Optional[bytes], src: int = 0, what: str = "broadcast_bytes") -> bytes:
    """Rank ``src``'s bytes on every rank (other ranks pass ``None``); no pickling is involved."""
    g = _group(what)
    _check_src(g, src, what)
    n = np.array([len(data) if g.rank == src and data is not None else 0], dtype=np.int64)
    wait([g.comm.Ibcast(n, root=src)], f"{what} (size)")
    buf = np.frombuffer(data, dtype=np.uint8).copy() if g.rank == src and data else np.empty(int(n[0]), np.uint8)
    if len(buf):
        wait([g.comm.Ibcast(buf, root=src)], f"{what} ({len(buf)} bytes)")
    return buf.tobytes()


def check_same_on_all_ranks(fields: dict[str, str], what: str = "check_same_on_all_ranks") -> None:
    """Raise :class:`RanksDifferError` on every rank unless every rank passed the same ``fields``.

    ``fields`` maps names to text (the options a rank was started with, a
    model's parameter shapes).  The message names the first field, in rank
    0's order, that differs between rank 0 and the lowest rank that differs,
    with both values.  Three small collectives when all agree.
    """
    g = _group(what)
    mine = json.dumps([[str(k), str(v)] for k, v in fields.items()]).encode()
    first = broadcast_bytes(mine if g.rank == 0 else None, 0, f"{what} (rank 0's values)")
    lowest = np.array([g.size if first == mine else g.rank], dtype=np.int64)
    wait([g.comm.Iallreduce(g.MPI.IN_PLACE, lowest, op=g.MPI.MIN)], f"{what} (comparing)")
    r = int(lowest[0])
    if r == g.size:
        return
    other = broadcast_bytes(mine if g.rank == r else None, r, f"{what} (rank {r}'s values)")
    a, b = dict(json.loads(first)), dict(json.loads(other))
    name = next((k for k in [*a, *b] if a.get(k) != b.get(k)), "the order of the fields")
    missing = "(none)"
    raise RanksDifferError(f"{what}: {name} is {a.get(name, missing)} on rank 0 but {b.get(name, missing)} on rank {r}")


def parameters_signature(module_or_params: Any) -> dict[str, str]:
    """``{name: "dtype shape"}`` for the parameters that require grad (what DDP checks agrees on every rank)."""
    if hasattr(module_or_params, "named_parameters"):
        named = list(module_or_params.named_parameters())
    else:
        named = [(f"parameter {i}", p) for i, p in enumerate(module_or_params)]
    named = [(n, p) for n, p in named if p.requires_grad]
    return {"the number of parameters": str(len(named)), **{n: f"{p.dtype} {tuple(p.shape)}" for n, p in named}}


# --- parameters ---------------------------------------------------------------------------------
def _params(module_or_params: Any) -> list[Tensor]:
    if hasattr(module_or_params, "parameters"):
        return list(module_or_params.parameters())
    return list(module_or_params)


def _buckets(params: Sequence[Tensor], cap_bytes: int) -> list[list[Tensor]]:
    """Parameters grouped by dtype, in order, each group split so a bucket holds at most ``cap_bytes``."""
    by_dtype: dict[np.dtype, list[list[Tensor]]] = {}
    for p in params:
        groups = by_dtype.setdefault(np.dtype(p._data.dtype), [[]])
        last = groups[-1]
        if last and sum(q._data.nbytes for q in last) + p._data.nbytes > cap_bytes:
            groups.append(last := [])
        last.append(p)
    return [b for groups in by_dtype.values() for b in groups]


def broadcast_parameters(module_or_params: Any, src: int = 0) -> None:
    """Copy rank ``src``'s parameter values into every rank's parameters (one flat buffer per dtype)."""
    g = _group("broadcast_parameters")
    _check_src(g, src, "broadcast_parameters")
    params = _params(module_or_params)
    for bucket in _buckets(params, 1 << 62):
        flat = np.concatenate([p._data.ravel() for p in bucket])
        wait([g.comm.Ibcast(flat, root=src)], f"broadcast_parameters ({flat.nbytes} bytes from rank {src})")
        offset = 0
        for p in bucket:
            size = p._data.size
            np.copyto(p._data, flat[offset : offset + size].reshape(p._data.shape))
            mark_modified(p)
            offset += size


def parameters_digest(module_or_params: Any) -> str:
    """A SHA-256 of every parameter's dtype, shape and bytes."""
    h = hashlib.sha256()
    for p in _params(module_or_params):
        h.update(f"{p._data.dtype.str}{p._data.shape}".encode())
        h.update(np.ascontiguousarray(p._data).tobytes())
    return h.hexdigest()


def check_parameters_in_sync(module_or_params: Any) -> None:
    """Raise if any rank's parameters differ from rank 0's (bit for bit)."""
    g = _group("check_parameters_in_sync")
    mine = np.frombuffer(bytes.fromhex(parameters_digest(module_or_params)), dtype=np.uint8).astype(np.int32)
    lo, hi = mine.copy(), mine.copy()
    wait(
        [
            g.comm.Iallreduce(g.MPI.IN_PLACE, lo, op=g.MPI.MIN),
            g.comm.Iallreduce(g.MPI.IN_PLACE, hi, op=g.MPI.MAX),
        ],
        "check_parameters_in_sync",
    )
    if not (np.array_equal(lo, mine) and np.array_equal(hi, mine)):
        raise DistributedError(
            "check_parameters_in_sync: the ranks' parameters differ; the replicas drifted apart "
            "(were gradients averaged after every backward?)"
        )


# --- the wrapper --------------------------------------------------------------------------------
class DistributedDataParallel:
    """Wrap a module for synchronous data-parallel training: call it like the module.

    On construction, rank ``0``'s parameters are broadcast to every rank.  After
    ``loss.backward()``, :meth:`all_reduce_gradients` replaces each parameter's
    ``.grad`` by the average over the ranks.
    """

    def __init__(self, module: Any, *, bucket_cap_mb: float = 25.0, broadcast_from: int = 0) -> None:
        _group("DistributedDataParallel")
        if not bucket_cap_mb > 0:
            raise DistributedError(f"DistributedDataParallel: bucket_cap_mb must be positive, got {bucket_cap_mb}")
        self.module = module
        self._params = [p for p in _params(module) if p.requires_grad]
        if not self._params:
            raise DistributedError("DistributedDataParallel: the module has no parameters that require grad")
        self._buckets = _buckets(self._params, int(bucket_cap_mb * 2**20))
        self._pending = False
        self._sync = True
        self.allreduce_seconds = 0.0  # time spent averaging gradients, summed over calls
        self.allreduce_calls = 0
        # the same parameters everywhere, or the broadcast below would fail with MPI's bare truncation error
        check_same_on_all_ranks(
            parameters_signature(module), "DistributedDataParallel: the model differs between the ranks"
        )
        broadcast_parameters(self._params, broadcast_from)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._pending:
            raise DistributedError(
                "DistributedDataParallel: the gradients of the previous forward pass were never averaged; "
                "call ddp.all_reduce_gradients() after loss.backward() and before opt.step() "
                "(chainrule has no backward hooks, so unlike torch's DDP it does not average inside backward), "
                "or run the forward inside ddp.no_sync() to accumulate locally"
            )
        from .grad_mode import is_grad_enabled

        if self._sync and is_grad_enabled() and getattr(self.module, "training", True):
            self._pending = True
        return self.module(*args, **kwargs)

    def parameters(self) -> Iterator[Tensor]:
        return iter(self._params)

    def __getattr__(self, name: str) -> Any:  # state_dict, train, eval, ... go to the wrapped module
        if name == "module":
            raise AttributeError(name)
        return getattr(self.module, name)

    @contextmanager
    def no_sync(self) -> Iterator[None]:
        """Forward passes inside do not need averaging (accumulate gradients locally, average later)."""
        old, self._sync = self._sync, False
        try:
            yield
        finally:
            self._sync = old

    def all_reduce_gradients(self, num_samples: Optional[int] = None) -> None:
        """Average every parameter's gradient over the ranks (call after ``backward``, before ``step``).

        Without ``num_samples`` every rank counts the same (the plain mean, as
        torch's DDP).  With it, each rank's gradient is weighted by its share of
        the global batch: ``sum_r n_r * g_r / sum_r n_r``, which equals the
        one-process mean gradient over the whole batch even when the shards
        differ in size.  A parameter that got no gradient on a rank counts as
        zero there; it stays ``None`` only if it got none on every rank.
        """
        g = _group("all_reduce_gradients")
        weight = 1.0 if num_samples is None else float(num_samples)
        if num_samples is not None and (int(num_samples) != num_samples or num_samples < 0):
            raise DistributedError(
                f"all_reduce_gradients: num_samples must be a non-negative integer, got {num_samples!r}"
            )
        t0 = time.perf_counter()
        flats, requests = [], []
        for bucket in self._buckets:
            dtype = bucket[0]._data.dtype
            # layout: every gradient, then one "has a gradient" flag per parameter, then this rank's weight
            flat = np.empty(sum(p._data.size for p in bucket) + len(bucket) + 1, dtype=dtype)
            offset = 0
            for i, p in enumerate(bucket):
                size = p._data.size
                view = flat[offset : offset + size]
                if p.grad is None or weight == 0:
                    view[...] = 0
                else:
                    np.multiply(np.asarray(p.grad._data, dtype=dtype).ravel(), weight, out=view)
                flat[-1 - len(bucket) + i] = 0 if p.grad is None else 1
                offset += size
            flat[-1] = weight
            requests.append(g.comm.Iallreduce(g.MPI.IN_PLACE, flat, op=g.MPI.SUM))
            flats.append(flat)
        wait(requests, f"all_reduce_gradients (step {self.allreduce_calls + 1})")
        for bucket, flat in zip(self._buckets, flats):
            total = flat[-1]
            if total == 0:
                raise DistributedError("all_reduce_gradients: num_samples was 0 on every rank; nothing to average")
            offset = 0
            for i, p in enumerate(bucket):
                size = p._data.size
                if flat[-1 - len(bucket) + i] > 0:
                    grad = flat[offset : offset + size]
                    grad /= total
                    p.grad = Tensor(grad.reshape(p._data.shape))
                else:
                    p.grad = None
                offset += size
        self._pending = False
        self.allreduce_seconds += time.perf_counter() - t0
        self.allreduce_calls += 1


# --- data -----------------------------------------------------------------------------------------
def shard(indices: Sequence[int], rank: Optional[int] = None, world_size: Optional[int] = None) -> np.ndarray:
    """This rank's part of a global batch: ``indices[rank::world_size]`` (sizes differ by at most one)."""
    if rank is None or world_size is None:
        g = _group("shard")
        rank = g.rank if rank is None else rank
        world_size = g.size if world_size is None else world_size
    if not 0 <= rank < world_size:
        raise DistributedError(f"shard: rank {rank} is not in 0..{world_size - 1}")
    return np.asarray(indices)[rank::world_size]


class DistributedSampler:
    """Indices of this rank's share of a data set, as ``torch.utils.data.DistributedSampler``.

    Each epoch the ``n`` indices are permuted (when ``shuffle``) by a generator
    seeded with ``(seed, epoch)`` — the same on every rank; call
    :meth:`set_epoch` before each epoch — then padded by repeating the first
    indices (or cut, with ``drop_last``) to a multiple of ``num_replicas``, and
    rank ``r`` takes every ``num_replicas``-th one from ``r``.  The permutation is
    NumPy's, so shuffled orders differ from torch's (``shuffle=False`` orders match).
    """

    def __init__(
        self,
        n: int,
        num_replicas: Optional[int] = None,
        rank: Optional[int] = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if hasattr(n, "__len__"):
            n = len(n)  # type: ignore[arg-type]
        if num_replicas is None or rank is None:
            g = _group("DistributedSampler")
            num_replicas = g.size if num_replicas is None else num_replicas
            rank = g.rank if rank is None else rank
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise DistributedError(
                f"DistributedSampler: invalid rank {rank} for num_replicas {num_replicas} (need 0 <= rank < replicas)"
            )
        self.n, self.num_replicas, self.rank = int(n), num_replicas, rank
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.epoch = 0
        if drop_last:
            self.num_samples = self.n // num_replicas
        else:
            self.num_samples = -(-self.n // num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        else:
            order = np.arange(self.n)
        if self.total_size > self.n:
            reps = -(-(self.total_size - self.n) // max(self.n, 1))
            order = np.concatenate([order, *[order] * reps])[: self.total_size]
        else:
            order = order[: self.total_size]
        return iter(int(i) for i in order[self.rank : self.total_size : self.num_replicas])


def check_batches(n: int, batch_size: int, world_size: int) -> None:
    """Raise ``ValueError`` unless every global batch of an epoch gives each rank at least one sample."""
    bs = min(batch_size, n)
    last = n % bs or bs
    smallest = min(bs, last)
    if smallest < world_size:
        which = (
            "the batch size" if bs < world_size else f"the last batch of each epoch ({n} = {n // bs} x {bs} + {last})"
        )
        raise ValueError(
            f"--distributed: {which} has {smallest} sample{'s' if smallest != 1 else ''}, fewer than the "
            f"{world_size} workers, so some worker would get none; use at most {smallest} workers "
            "or a --batch-size whose batches all hold at least one sample per worker"
        )


# --- checkpoints ----------------------------------------------------------------------------------
def load_from_main(path: str, loader: Callable[[str], Any]) -> Any:
    """``loader(path)`` on every rank, from rank 0's copy of the file (other ranks need not see the file).

    Rank 0 reads the bytes and broadcasts them; each rank writes them to a
    private temporary file and calls ``loader`` on it, so every rank gets the
    same object and the same errors.  A file rank 0 cannot find raises
    ``FileNotFoundError`` everywhere.
    """
    g = _group("load_from_main")
    data: Optional[bytes] = None
    if g.rank == 0:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = None
    missing = np.array([1 if g.rank == 0 and data is None else 0], dtype=np.int8)
    wait([g.comm.Ibcast(missing, root=0)], f"loading {path} (is it on rank 0?)")
    if missing[0]:
        raise FileNotFoundError(path)
    raw = broadcast_bytes(data, 0, f"sending {path} from rank 0")
    if g.rank == 0:
        return loader(path)
    fd, tmp = tempfile.mkstemp(prefix="chainrule-rank-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        return loader(tmp)
    finally:
        os.remove(tmp)


# --- hooks for ``chainrule train --distributed`` --------------------------------------------------
def all_reduce_totals(*values: float) -> tuple[float, ...]:
    """The sums over all ranks of a few numbers (float64), in one collective."""
    arr = np.array(values, dtype=np.float64)
    all_reduce(arr)
    return tuple(float(v) for v in arr)


def start_job(timeout: Optional[float]) -> tuple[Any, Any]:
    """Join the MPI job; ``(stdout, stderr)`` for the command: the real ones on rank 0, a sink elsewhere.

    Messages of the distributed layer itself (a timeout, an abort) still reach
    every rank's stderr, prefixed with the rank.
    """
    init_process_group(timeout=timeout)
    sys.excepthook = _abort_on_uncaught
    if is_main_process():
        return sys.stdout, sys.stderr
    sink = open(os.devnull, "w")  # noqa: SIM115  (lives as long as the process)
    return sink, sink


def _abort_on_uncaught(kind: type, exc: BaseException, tb: Any) -> None:
    """An uncaught exception on one rank ends the whole job now, instead of leaving the others waiting."""
    abort(f"uncaught {kind.__name__}; aborting the job", before="".join(traceback.format_exception(kind, exc, tb)))


def describe(batch_size: int) -> str:
    """One line for the run's header: how many workers and how each batch is split."""
    n = get_world_size()
    small, big = batch_size // n, -(-batch_size // n)
    each = f"{small}" if small == big else f"{small}-{big}"
    return (
        f"data parallel: {n} MPI worker{'s' if n != 1 else ''}, each batch of {batch_size} split {each} per worker, "
        f"gradients averaged (timeout {_group('describe').timeout:g} s)"
    )


def epoch_saver(path: str, save: Callable[[Any, str], None]) -> Callable[[dict[str, Any]], None]:
    """An ``on_epoch`` callback: check that the replicas' weights agree, then rank 0 saves the state to ``path``.

    Saving every epoch is what lets ``--resume`` continue a job one of whose
    workers died.
    """

    def on_epoch(state: dict[str, Any]) -> None:
        check_parameters_in_sync(state["model"].values())
        if is_main_process():
            save(state, path)

    return on_epoch
