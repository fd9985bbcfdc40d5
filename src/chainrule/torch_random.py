"""torch 2.13's CPU random numbers, reproduced bit for bit in NumPy.

torch's CPU generator is a 32-bit Mersenne Twister (mt19937) seeded with
``init_genrand(seed & 0xffffffff)``; every distribution is a fixed transform of
its 32-bit outputs. This module holds that generator (:class:`Generator`, a
global default one, ``manual_seed``) and the transforms behind ``rand``,
``randn``, ``randint``, ``randperm``, ``uniform_``, ``normal_``, ``bernoulli``,
``multinomial``, ``exponential_``, dropout masks and ``nn.init``. Each function
takes torch's arguments and returns a NumPy array; ``chainrule.torch`` wraps
them into tensors. It never imports torch. See docs/torch.md, "Torch's random
numbers", for what matches and what is refused.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from chainrule import torch_random_math as _m
from chainrule.torch_random_math import cpu_capability, warn_intel

__all__ = [
    "Generator",
    "default_generator",
    "manual_seed",
    "seed",
    "initial_seed",
    "get_rng_state",
    "set_rng_state",
    "fork_rng",
    "rand",
    "randn",
    "randint",
    "randperm",
    "random_",
    "rand_like",
    "randn_like",
    "randint_like",
    "normal",
    "uniform_",
    "normal_",
    "exponential_",
    "bernoulli",
    "bernoulli_",
    "multinomial",
    "dropout_mask",
    "dropout",
    "cpu_capability",
]

_N = 624  # the Mersenne Twister's state length
_STATE_BYTES = 5056  # sizeof(CPUGeneratorImplState) in torch 2.13
_DEFAULT_SEED = 67280421310721  # what torch.Generator() starts from
_FLOATS = {"float32": np.float32, "float64": np.float64}


def _seed_u64(seed: Any, where: str) -> int:
    """torch's seed conversion: an integer in [-2**63, 2**64), negative ones wrapped to uint64."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer, float)):
        raise TypeError(f"{where}: the seed must be an int, got {type(seed).__name__}")
    value = int(seed)
    if not -(2**63) <= value < 2**64:
        raise ValueError(
            f"{where}: seed {value} is outside [-2**63, 2**64) (torch: 'Overflow when unpacking long long')"
        )
    return value % 2**64


def _init_genrand(seed32: int) -> np.ndarray:
    """The 624-word state mt19937's ``init_genrand`` makes from a 32-bit seed."""
    key = np.empty(_N, dtype=np.uint32)
    x = seed32 & 0xFFFFFFFF
    key[0] = x
    for j in range(1, _N):
        x = (1812433253 * (x ^ (x >> 30)) + j) & 0xFFFFFFFF
        key[j] = x
    return key


class Generator:
    """A CPU random generator with torch.Generator's methods and torch's streams.

    ``Generator()`` starts from torch's default seed 67280421310721, like
    ``torch.Generator()``; ``manual_seed`` returns the generator, so
    ``g = Generator().manual_seed(42)`` works as in torch.
    """

    def __init__(self, device: Any = "cpu") -> None:
        name = str(getattr(device, "type", device))
        if name != "cpu":
            raise ValueError(
                f"Generator(device={device!r}): only the CPU generator's streams are reproduced; use device='cpu'"
            )
        self._bits = np.random.MT19937()
        self._fresh = True
        self._seed = 0
        self.next_double_normal: float | None = None
        self.next_float_normal: float | None = None
        self.manual_seed(_DEFAULT_SEED)

    @property
    def device(self) -> str:
        return "cpu"

    def manual_seed(self, seed: Any) -> Generator:
        """Seed like torch: mt19937 from ``seed & 0xffffffff``; ``initial_seed()`` keeps all 64 bits."""
        value = _seed_u64(seed, "Generator.manual_seed")
        self._set_key(_init_genrand(value), pos=_N)
        self._seed = value
        self._fresh = True
        self.next_double_normal = None
        self.next_float_normal = None
        return self

    def seed(self) -> int:
        """Reseed from the operating system's randomness (like torch) and return the new seed."""
        value = int.from_bytes(os.urandom(8), "little")
        self.manual_seed(value)
        return value

    def initial_seed(self) -> int:
        return self._seed

    def _set_key(self, key: np.ndarray, pos: int) -> None:
        self._bits.state = {"bit_generator": "MT19937", "state": {"key": key, "pos": pos}}

    def get_state(self) -> np.ndarray:
        """The state as torch's 5056-byte layout (a uint8 array); ``torch.Generator.set_state`` reads it."""
        st = self._bits.state["state"]
        pos = int(st["pos"])
        buf = bytearray(_STATE_BYTES)
        left = _N + 1 - pos
        nxt = 0 if (pos == _N and self._fresh) else pos
        buf[0:8] = self._seed.to_bytes(8, "little")
        buf[8:12] = left.to_bytes(4, "little", signed=True)
        buf[12:16] = (1).to_bytes(4, "little", signed=True)
        buf[16:24] = nxt.to_bytes(8, "little")
        buf[24 : 24 + 8 * _N] = np.asarray(st["key"], dtype="<u8").tobytes()
        off = 24 + 8 * _N  # normal_x, normal_y, normal_rho (doubles), normal_is_valid (int)
        if self.next_double_normal is not None:
            buf[off + 8 : off + 16] = np.float64(self.next_double_normal).tobytes()
            buf[off + 24 : off + 28] = (1).to_bytes(4, "little")
        if self.next_float_normal is not None:
            buf[off + 32 : off + 36] = np.float32(self.next_float_normal).tobytes()
            buf[off + 36] = 1
        return np.frombuffer(bytes(buf), dtype=np.uint8).copy()

    def set_state(self, state: Any) -> Generator:
        """Restore a state from :meth:`get_state` or from ``torch.Generator.get_state()`` (its bytes)."""
        raw = _state_bytes(state)
        if len(raw) != _STATE_BYTES:
            raise ValueError(
                f"Generator.set_state: expected torch's CPU generator state of {_STATE_BYTES} bytes, got {len(raw)}"
            )
        left = int.from_bytes(raw[8:12], "little", signed=True)
        if not 1 <= left <= _N:
            raise ValueError(f"Generator.set_state: invalid mt19937 state (left={left}, must be in 1..{_N})")
        key = np.frombuffer(raw[24 : 24 + 8 * _N], dtype="<u8").astype(np.uint32)
        nxt = int.from_bytes(raw[16:24], "little")
        self._set_key(key, pos=_N + 1 - left)
        self._fresh = left == 1 and nxt == 0
        self._seed = int.from_bytes(raw[0:8], "little")
        off = 24 + 8 * _N
        valid_d = int.from_bytes(raw[off + 24 : off + 28], "little", signed=True)
        self.next_double_normal = float(np.frombuffer(raw[off + 8 : off + 16], np.float64)[0]) if valid_d else None
        self.next_float_normal = (
            float(np.frombuffer(raw[off + 32 : off + 36], np.float32)[0]) if raw[off + 36] else None
        )
        return self

    def clone_state(self) -> Generator:
        """A copy of this generator (same stream from here on)."""
        return Generator().set_state(self.get_state())

    # -- raw draws ---------------------------------------------------------------------------------
    def random32(self, n: int) -> np.ndarray:
        """The next ``n`` 32-bit outputs (torch's ``generator->random()``), as uint64."""
        if n <= 0:
            return np.zeros(0, dtype=np.uint64)
        self._fresh = False
        return self._bits.random_raw(int(n)).astype(np.uint64)

    def random64(self, n: int) -> np.ndarray:
        """The next ``n`` 64-bit draws (torch's ``random64()``: first 32-bit output high, second low)."""
        raw = self.random32(2 * n)
        return (raw[0::2] << np.uint64(32)) | raw[1::2]

    def __repr__(self) -> str:
        return f"<chainrule.torch_random.Generator initial_seed={self._seed}>"


def _state_bytes(state: Any) -> bytes:
    if isinstance(state, (bytes, bytearray)):
        return bytes(state)
    if hasattr(state, "numpy") and not isinstance(state, np.ndarray):
        state = state.numpy()
    arr = np.asarray(state)
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise TypeError(f"set_state: expected a 1-D uint8 array (a ByteTensor's values), got {arr.dtype} {arr.shape}")
    return arr.tobytes()


default_generator = Generator()
default_generator.seed()


def manual_seed(seed: Any) -> Generator:
    """``torch.manual_seed``: reseed the default generator and return it."""
    return default_generator.manual_seed(_seed_u64(seed, "manual_seed"))


def seed() -> int:
    """``torch.seed``: reseed the default generator nondeterministically; returns the seed."""
    return default_generator.seed()


def initial_seed() -> int:
    """``torch.initial_seed``: the default generator's seed."""
    return default_generator.initial_seed()


def get_rng_state() -> np.ndarray:
    """``torch.get_rng_state``: the default generator's state in torch's byte layout."""
    return default_generator.get_state()


def set_rng_state(state: Any) -> None:
    """``torch.set_rng_state``."""
    default_generator.set_state(state)


@contextlib.contextmanager
def fork_rng(devices: Any = None, enabled: bool = True) -> Iterator[None]:
    """``torch.random.fork_rng`` for the CPU: the default generator's state is restored on exit."""
    if not enabled:
        yield
        return
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


# -- argument handling ------------------------------------------------------------------------------


def _gen(generator: Generator | None, where: str) -> Generator:
    if generator is None:
        return default_generator
    if isinstance(generator, Generator):
        return generator
    raise TypeError(
        f"{where}: generator must be a chainrule.torch_random.Generator (torch.Generator in chainrule.torch), "
        f"got {type(generator).__name__}; a torch.Generator's state can be copied in with set_state(g.get_state())"
    )


def _size(size: tuple, where: str) -> tuple[int, ...]:
    if len(size) == 0:
        raise TypeError(f"{where}() missing 1 required positional argument: size (ints, or one tuple such as ())")
    if len(size) == 1 and hasattr(size[0], "__len__"):  # one tuple, list or torch.Size
        size = tuple(size[0])
    out = []
    for s in size:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"{where}: size must be ints or one tuple of ints, got {size!r}")
        if int(s) < 0:
            raise ValueError(f"{where}: negative dimension {int(s)} in size {tuple(size)}")
        out.append(int(s))
    return tuple(out)


def _shape(shape: Any, where: str) -> tuple[int, ...]:
    """A tensor's shape given as an int or a sequence of ints (``()`` for a 0-d tensor)."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) and hasattr(shape, "__len__"):
        shape = tuple(shape)
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"{where}: the shape must be an int or a tuple of ints, got {shape!r}")
    return _size((tuple(shape),), where)


def _float_dtype(dtype: Any, where: str) -> type:
    if dtype is None:
        return np.float32  # torch's default dtype
    name = _dtype_name(dtype)
    if name not in _FLOATS:
        raise TypeError(
            f"{where}: dtype {name} is not reproduced; torch's streams are matched for float32 and float64 "
            "(float16/bfloat16 draw in float32 and round, which is not implemented)"
        )
    return _FLOATS[name]


def _dtype_name(dtype: Any) -> str:
    name = str(dtype).replace("torch.", "")
    aliases = {"float": "float32", "double": "float64", "long": "int64", "int": "int32", "bool": "bool"}
    if name in aliases:
        return aliases[name]
    try:
        return np.dtype(name).name
    except TypeError:
        pass
    try:
        return np.dtype(dtype).name
    except TypeError:
        return name  # e.g. bfloat16: the callers refuse it by name


# -- uniform ------------------------------------------------------------------------------------------


def _uniform01(g: Generator, n: int, dtype: type) -> np.ndarray:
    """torch's ``uniform_real_distribution(0, 1)``: 24 bits of one draw (float), 53 of a 64-bit draw (double)."""
    if dtype is np.float32:
        bits = g.random32(n) & np.uint64((1 << 24) - 1)
        return bits.astype(np.float32) * np.float32(2.0**-24)
    bits = g.random64(n) & np.uint64((1 << 53) - 1)
    return bits.astype(np.float64) * 2.0**-53


def _uniform(g: Generator, n: int, dtype: type, low: float, high: float) -> np.ndarray:
    x = _uniform01(g, n, dtype)
    lo, hi = dtype(low), dtype(high)
    if lo == 0 and hi == 1:
        return x
    # torch computes x * (to - from) + from in the dtype; its AVX2 build fuses it into one multiply-add
    if cpu_capability() == "default":
        return x * (hi - lo) + lo
    return _m.fma(x, np.full_like(x, hi - lo), np.full_like(x, lo))


def rand(*size: Any, generator: Generator | None = None, dtype: Any = None, **kw: Any) -> np.ndarray:
    """``torch.rand``: uniform on [0, 1)."""
    _no_extra(kw, "rand")
    shape = _size(size, "rand")
    dt = _float_dtype(dtype, "rand")
    g = _gen(generator, "rand")
    return _uniform01(g, math.prod(shape), dt).reshape(shape)


def rand_like(input: Any, *, dtype: Any = None, generator: Generator | None = None, **kw: Any) -> np.ndarray:  # noqa: A002
    """``torch.rand_like``: ``rand`` with ``input``'s shape and (floating) dtype."""
    _no_extra(kw, "rand_like")
    return rand(_shape_of(input), generator=generator, dtype=dtype if dtype is not None else _dtype_of(input))


def uniform_(
    shape: Any, a: float = 0.0, b: float = 1.0, *, generator: Generator | None = None, dtype: Any = None
) -> np.ndarray:
    """``Tensor.uniform_(a, b)`` on a tensor of ``shape``: the values torch writes, in memory order."""
    where = "uniform_"
    shp = _shape(shape, where)
    dt = _float_dtype(dtype, where)
    if not a <= b:
        raise ValueError(f"uniform_: expects to return a [from, to) range, but found from={a} > to={b}")
    return _uniform(_gen(generator, where), math.prod(shp), dt, a, b).reshape(shp)


# -- integers -------------------------------------------------------------------------------------------


def _randint_values(g: Generator, n: int, low: int, high: int) -> np.ndarray:
    span = high - low
    if span >= 1 << 28:
        raw = g.random64(n)
    else:
        raw = g.random32(n)
    return (raw % np.uint64(span)).astype(np.int64) + np.int64(low)


def randint(*args: Any, generator: Generator | None = None, dtype: Any = None, **kw: Any) -> np.ndarray:
    """``torch.randint(high, size)`` or ``torch.randint(low, high, size)``: int64 unless ``dtype`` says."""
    low, high, size = _randint_args(args, kw, "randint")
    shape = _shape(size, "randint")
    values = _randint_values(_gen(generator, "randint"), math.prod(shape), low, high)
    return _cast_int(values, dtype, "randint").reshape(shape)


def _randint_args(args: tuple, kw: dict, where: str) -> tuple[int, int, Any]:
    kw = dict(kw)
    size = kw.pop("size", None)
    low = kw.pop("low", None)
    high = kw.pop("high", None)
    _no_extra(kw, where)
    pos = list(args)
    if size is None and pos and isinstance(pos[-1], (tuple, list)):
        size = tuple(pos.pop())
    if len(pos) == 2:
        low, high = pos
    elif len(pos) == 1:
        if high is None:
            high = pos[0]
        else:
            low = pos[0]
    elif pos:
        raise TypeError(f"{where}: expected (high, size) or (low, high, size), got {args!r}")
    if size is None or high is None:
        raise TypeError(f"{where}: missing high or size; call as {where}(high, size) or {where}(low, high, size)")
    low = 0 if low is None else low
    for name, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) and not float(v).is_integer():
            raise TypeError(f"{where}: {name} must be an integer, got {v!r}")
    low, high = int(low), int(high)
    if high <= low:
        raise ValueError(f"{where}: random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
    return low, high, size


def _cast_int(values: np.ndarray, dtype: Any, where: str) -> np.ndarray:
    if dtype is None:
        return values
    name = _dtype_name(dtype)
    if name == "bool":
        return values.astype(np.bool_)
    try:
        return values.astype(np.dtype(name))
    except TypeError as exc:
        raise TypeError(f"{where}: unsupported dtype {dtype!r}") from exc


def randint_like(input: Any, *args: Any, generator: Generator | None = None, dtype: Any = None) -> np.ndarray:  # noqa: A002
    """``torch.randint_like(input, high)`` or ``(input, low, high)``: ``input``'s shape and dtype."""
    low, high, _ = _randint_args((*args, ()), {}, "randint_like")
    shape = _shape_of(input)
    values = _randint_values(_gen(generator, "randint_like"), math.prod(shape), low, high)
    return _cast_int(values, dtype if dtype is not None else _dtype_of(input), "randint_like").reshape(shape)


def randperm(n: int, *, generator: Generator | None = None, dtype: Any = None, **kw: Any) -> np.ndarray:
    """``torch.randperm(n)``: torch's Fisher–Yates walk with ``random() % (n - i)``."""
    _no_extra(kw, "randperm")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"randperm: n must be a non-negative int, got {n!r}")
    n = int(n)
    if n >= (2**32 - 1) // 20:
        raise NotImplementedError(
            f"randperm({n}): torch switches to a different 64-bit algorithm for n >= {(2**32 - 1) // 20}, "
            "which is not reproduced"
        )
    perm = np.arange(n, dtype=np.int64)
    if n > 1:
        draws = _gen(generator, "randperm").random32(n - 1)
        z = (draws % np.arange(n, 1, -1, dtype=np.uint64)).astype(np.int64)
        _m.fisher_yates(perm, z)
    return _cast_int(perm, dtype, "randperm")


def random_(
    shape: Any,
    from_: int | None = None,
    to: int | None = None,
    *,
    generator: Generator | None = None,
    dtype: Any = None,
) -> np.ndarray:
    """``Tensor.random_()``, ``random_(to)`` or ``random_(from, to)`` on a tensor of ``shape`` and ``dtype``.

    Without bounds torch draws ``[0, 2**mantissa]`` for floats and ``[0, max]`` for integers.
    """
    shp = _shape(shape, "random_")
    name = "float32" if dtype is None else _dtype_name(dtype)
    g = _gen(generator, "random_")
    n = math.prod(shp)
    if from_ is not None and to is None:
        from_, to = 0, from_
    if to is not None:
        low = 0 if from_ is None else int(from_)
        return _cast_int(_randint_values(g, n, low, int(to)), name, "random_").reshape(shp)
    if from_ is not None:
        raise TypeError("random_: give random_(), random_(to) or random_(from, to)")
    wide = name in ("float64", "int64")
    raw = g.random64(n) if wide else g.random32(n)
    if name == "bool":
        return (raw & np.uint64(1)).astype(np.bool_).reshape(shp)
    moduli = {"float32": (1 << 24) + 1, "float64": (1 << 53) + 1}
    if name in moduli:
        modulus = moduli[name]
    else:
        try:
            info = np.iinfo(np.dtype(name))
        except ValueError as exc:
            raise TypeError(f"random_: dtype {name} is not reproduced") from exc
        modulus = int(info.max) + 1
    return (raw % np.uint64(modulus)).astype(np.dtype(name)).reshape(shp)


# -- normal -------------------------------------------------------------------------------------------


def _normal_scalar(g: Generator, n: int, mean: float, std: float) -> np.ndarray:
    """torch's one-at-a-time normal (sizes < 16): double Box–Muller, the sine kept for the next draw."""
    out = np.empty(n, dtype=np.float64)
    unfused = cpu_capability() == "default"  # the AVX2 build fuses z * std + mean
    for i in range(n):
        if g.next_double_normal is not None:
            z = g.next_double_normal
            g.next_double_normal = None
        else:
            u = _uniform01(g, 2, np.float64)
            r = math.sqrt(-2.0 * math.log1p(-float(u[1])))
            theta = 2.0 * math.pi * float(u[0])
            g.next_double_normal = r * math.sin(theta)
            z = r * math.cos(theta)
        out[i] = z * std + mean if unfused else _m.fma_scalar(z, std, mean)
    return out


def _normal_fill(g: Generator, n: int, dtype: type, mean: float, std: float) -> np.ndarray:
    """torch's ``normal_fill``: all uniforms first, Box–Muller over blocks of 16, the tail block redrawn."""
    data = _uniform01(g, n, dtype)
    full = n - n % 16
    if full:
        data[:full] = _m.box_muller16(data[:full], dtype, mean, std, cpu_capability())
    if n % 16:
        tail = _uniform01(g, 16, dtype)
        data[n - 16 :] = _m.box_muller16(tail, dtype, mean, std, cpu_capability())
    return data


def _normal_values(g: Generator, n: int, dtype: type, mean: float, std: float, contiguous: bool = True) -> np.ndarray:
    if std < 0:
        raise ValueError(f"normal: expects std >= 0.0, but found std {std}")
    if n >= 16 and contiguous:
        return _normal_fill(g, n, dtype, mean, std)
    return _normal_scalar(g, n, mean, std).astype(dtype)


def randn(*size: Any, generator: Generator | None = None, dtype: Any = None, **kw: Any) -> np.ndarray:
    """``torch.randn``: standard normal values."""
    _no_extra(kw, "randn")
    shape = _size(size, "randn")
    dt = _float_dtype(dtype, "randn")
    return _normal_values(_gen(generator, "randn"), math.prod(shape), dt, 0.0, 1.0).reshape(shape)


def randn_like(input: Any, *, dtype: Any = None, generator: Generator | None = None, **kw: Any) -> np.ndarray:  # noqa: A002
    """``torch.randn_like``."""
    _no_extra(kw, "randn_like")
    return randn(_shape_of(input), generator=generator, dtype=dtype if dtype is not None else _dtype_of(input))


def normal_(
    shape: Any,
    mean: float = 0.0,
    std: float = 1.0,
    *,
    generator: Generator | None = None,
    dtype: Any = None,
    contiguous: bool = True,
) -> np.ndarray:
    """``Tensor.normal_(mean, std)`` on a tensor of ``shape``.

    torch fills a non-contiguous tensor one value at a time (its small-tensor path, at
    any size); ``contiguous=False`` gives those values. Like every in-place draw, they
    go into the tensor in memory order (the order of its strides, smallest last).
    """
    shp = _shape(shape, "normal_")
    dt = _float_dtype(dtype, "normal_")
    g = _gen(generator, "normal_")
    return _normal_values(g, math.prod(shp), dt, float(mean), float(std), contiguous).reshape(shp)


def normal(
    mean: Any = 0.0,
    std: Any = 1.0,
    size: Any = None,
    *,
    generator: Generator | None = None,
    dtype: Any = None,
) -> np.ndarray:
    """``torch.normal``: float or array ``mean`` and ``std``; with two floats, ``size`` is required.

    With an array, torch draws standard normals for the result's shape and then
    scales: ``out * std + mean`` as two separate roundings (``normal_(0, std) + mean``
    when only ``mean`` is an array).
    """
    m_scalar = _is_number(mean)
    s_scalar = _is_number(std)
    g = _gen(generator, "normal")
    if m_scalar and s_scalar:
        if size is None:
            raise TypeError("normal(mean: float, std: float) needs size=; e.g. normal(0.0, 1.0, (3, 4))")
        shape = (size,) if isinstance(size, int) else tuple(size)
        return normal_(shape, mean, std, generator=g, dtype=dtype)
    if size is not None:
        raise TypeError("normal: size= is only accepted with float mean and std (torch's overloads)")
    if not s_scalar:
        sa = _as_array(std)
        if sa.size and sa.min() < 0:
            raise ValueError("normal expects all elements of std >= 0.0")
    if not m_scalar and s_scalar:
        ma = _as_array(mean)
        _float_dtype(ma.dtype.name, "normal")
        out = normal_(ma.shape, 0.0, float(std), generator=g, dtype=ma.dtype.name)
        return out + ma
    if m_scalar:
        sa = _as_array(std)
        _float_dtype(sa.dtype.name, "normal")
        out = normal_(sa.shape, 0.0, 1.0, generator=g, dtype=sa.dtype.name)
        return out * sa + sa.dtype.type(mean)
    ma, sa = _as_array(mean), _as_array(std)
    if ma.dtype != sa.dtype:
        raise TypeError(f"normal: mean ({ma.dtype}) and std ({sa.dtype}) must have the same dtype")
    _float_dtype(ma.dtype.name, "normal")
    shape = np.broadcast_shapes(ma.shape, sa.shape)
    out = normal_(shape, 0.0, 1.0, generator=g, dtype=ma.dtype.name)
    return out * sa + ma


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.floating, np.integer)) and not isinstance(x, bool)


# -- exponential, bernoulli, multinomial, dropout -----------------------------------------------------


def exponential_(
    shape: Any, lambd: float = 1.0, *, generator: Generator | None = None, dtype: Any = None
) -> np.ndarray:
    """``Tensor.exponential_(lambd)``: ``-1/lambd * log1p(-u)`` with ``u`` a double uniform, then cast."""
    shp = _shape(shape, "exponential_")
    dt = _float_dtype(dtype, "exponential_")
    if not lambd > 0:
        raise ValueError(f"exponential_ expects lambda > 0.0, but found lambda={lambd}")
    u = _uniform01(_gen(generator, "exponential_"), math.prod(shp), np.float64)
    return _m.exponential(u, float(lambd)).astype(dt).reshape(shp)


def _check_p(p: np.ndarray, where: str) -> None:
    if p.size and not (np.all(p >= 0) and np.all(p <= 1)):
        raise ValueError(f"{where}: expects all probabilities in [0, 1], got values from {p.min()} to {p.max()}")


def bernoulli_(shape: Any, p: Any = 0.5, *, generator: Generator | None = None, dtype: Any = None) -> np.ndarray:
    """``Tensor.bernoulli_(p)`` on a tensor of ``shape``: float ``p`` or an array of probabilities."""
    shp = _shape(shape, "bernoulli_")
    out_dt = _out_dtype(dtype)
    g = _gen(generator, "bernoulli_")
    if isinstance(p, (int, float, np.floating, np.integer)):
        p = float(p)
        if not 0 <= p <= 1:
            raise ValueError(f"bernoulli_ expects p to be in [0, 1], but got p={p}")
        warn_intel("bernoulli_(float p)")
        u = _uniform01(g, math.prod(shp), np.float64)
        return (u < p).astype(out_dt).reshape(shp)
    pa = _as_array(p)
    _check_p(pa, "bernoulli_")
    pa = np.broadcast_to(pa, shp)
    return _bernoulli_tensor(g, pa).astype(out_dt)


def _bernoulli_tensor(g: Generator, p: np.ndarray) -> np.ndarray:
    """torch's tensor-p kernel: a double uniform for float64 p, a float one (24 bits) otherwise."""
    if p.dtype == np.float64:
        u = _uniform01(g, p.size, np.float64).reshape(p.shape)
        return u < p
    pf = p.astype(np.float32)
    u = _uniform01(g, p.size, np.float32).reshape(p.shape)
    return u < pf


def bernoulli(input: Any, p: Any = None, *, generator: Generator | None = None) -> np.ndarray:  # noqa: A002
    """``torch.bernoulli(input)``: 1 with probability ``input`` elementwise; ``p=`` a float for every element."""
    arr = _as_array(input)
    if p is not None:
        return bernoulli_(arr.shape, float(p), generator=generator, dtype=arr.dtype)
    _check_p(arr, "bernoulli")
    if arr.dtype not in (np.float32, np.float64):
        raise TypeError(f"bernoulli: expects a floating point probability tensor, got {arr.dtype}")
    return _bernoulli_tensor(_gen(generator, "bernoulli"), arr).astype(arr.dtype)


def multinomial(
    input: Any,  # noqa: A002
    num_samples: int,
    replacement: bool = False,
    *,
    generator: Generator | None = None,
) -> np.ndarray:
    """``torch.multinomial``: int64 indices; torch's exponential race without replacement, its search with."""
    probs = _as_array(input)
    where = "multinomial"
    if probs.ndim not in (1, 2):
        raise ValueError(f"{where}: prob_dist must be 1 or 2 dim, got shape {probs.shape}")
    if probs.dtype not in (np.float32, np.float64):
        raise TypeError(f"{where}: expects a float32 or float64 probability tensor, got {probs.dtype}")
    k = probs.shape[-1]
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples <= 0:
        raise ValueError(f"{where}: cannot sample n_sample <= 0 samples (got {num_samples!r})")
    if not replacement and num_samples > k:
        raise ValueError(f"{where}: cannot sample n_sample > prob_dist.size(-1) samples without replacement")
    if not np.all(np.isfinite(probs)) or np.any(probs < 0):
        raise ValueError(f"{where}: probability tensor contains either `inf`, `nan` or element < 0")
    rows = probs.reshape(-1, k)
    if np.any(rows.sum(axis=1) == 0):
        raise ValueError(f"{where}: invalid multinomial distribution (sum of probabilities <= 0)")
    g = _gen(generator, where)
    if not replacement or num_samples == 1:
        before = g.get_state() if num_samples > 1 else None
        u = _uniform01(g, rows.size, np.float64)
        q = _m.exponential(u, 1.0).astype(probs.dtype).reshape(rows.shape)
        race = rows / q
        if num_samples == 1:
            out = np.argmax(race, axis=1)[:, None]
        else:
            out = _m.topk_indices(race, num_samples)
            if _m.topk_has_ties(race, out):
                g.set_state(before)  # a refused call leaves the generator as it was
                raise NotImplementedError(
                    f"multinomial({num_samples} samples, replacement=False): some of the chosen candidates tie "
                    "(zero probabilities, or equal weight-to-draw ratios), and torch orders ties by its topk "
                    "internals, which chainrule does not reproduce; draw at most as many samples as there are "
                    "nonzero probabilities, or use replacement=True"
                )
    else:
        out = np.empty((rows.shape[0], num_samples), dtype=np.int64)
        for i, row in enumerate(rows):
            cum = np.cumsum(row, dtype=row.dtype)
            cum = cum / cum[-1]
            cum[-1] = 1
            u = _uniform01(g, num_samples, np.float64)
            out[i] = np.searchsorted(cum.astype(np.float64), u, side="left")
    return out.astype(np.int64).reshape((*probs.shape[:-1], num_samples))


def dropout_mask(shape: Any, p: float = 0.5, *, generator: Generator | None = None, dtype: Any = None) -> np.ndarray:
    """The scaled mask torch's CPU ``F.dropout`` multiplies by: ``bernoulli_(1 - p) / (1 - p)``."""
    shp = _shape(shape, "dropout")
    dt = _float_dtype(dtype, "dropout")
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if p == 1:
        return np.zeros(shp, dtype=dt)
    keep = bernoulli_(shp, 1.0 - p, generator=generator, dtype=dt)
    return keep / dt(1.0 - p)


def dropout(input: Any, p: float = 0.5, training: bool = True, *, generator: Generator | None = None) -> np.ndarray:  # noqa: A002
    """``F.dropout`` on an array: ``input * mask`` in training, ``input`` otherwise."""
    arr = _as_array(input)
    if not training or p == 0:
        return arr
    if p == 1:
        return arr * np.zeros_like(arr)
    return arr * dropout_mask(arr.shape, p, generator=generator, dtype=arr.dtype)


# -- helpers ------------------------------------------------------------------------------------------


def _as_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "numpy"):
        x = x.detach().numpy()
    elif hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        x = x.numpy()
    return np.asarray(x)


def _shape_of(x: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in (x.shape if hasattr(x, "shape") else np.shape(x)))


def _dtype_of(x: Any) -> Any:
    dt = getattr(x, "dtype", None)
    return dt if dt is not None else np.asarray(x).dtype


def _out_dtype(dtype: Any) -> Any:
    if dtype is None:
        return np.float32
    name = _dtype_name(dtype)
    return np.bool_ if name == "bool" else np.dtype(name)


def _no_extra(kw: dict, where: str) -> None:
    allowed = {"requires_grad", "device", "layout", "pin_memory", "out", "memory_format"}
    bad = set(kw) - allowed
    if bad:
        raise TypeError(f"{where}() got unexpected keyword argument(s) {sorted(bad)}")
    device = kw.get("device")
    if device is not None and str(getattr(device, "type", device)) != "cpu":
        raise ValueError(f"{where}: only CPU streams are reproduced, got device={device!r}")
