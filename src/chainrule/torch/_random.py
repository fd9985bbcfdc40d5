"""chainrule.torch's random numbers: torch 2.13's CPU streams (:mod:`chainrule.torch_random`) as facade tensors.

``chainrule.torch_random`` returns NumPy arrays and takes shapes; this adapter gives torch's spellings:
draws return :class:`Tensor` of the facade's default dtype (float32 unless ``dtype=``) with
``requires_grad=`` honoured, in-place draws fill an existing tensor in the order torch visits its
memory, ``generator=`` takes :class:`Generator` objects, and the generator state is a uint8 tensor
of torch's 5056-byte layout. ``manual_seed`` also makes the tensors' own in-place draws
(``t.uniform_()``, ``w.data.normal_()``) take torch's stream (``cr.manual_seed`` switches them back).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import rng as _cr_rng
from .. import torch_random as tr
from .. import torch_random_extra as tx
from ..tensor import Tensor
from ..torch_names import NotSupportedError
from ..torch_random_fill import fill_values
from ..versions import mark_modified


class _DefaultFloat:
    """The facade's default float dtype, read at call time (``_core`` installs its reader: no import cycle)."""

    read: Any = staticmethod(lambda: np.dtype(np.float32))


DEFAULT_FLOAT = _DefaultFloat()


def _default_float() -> np.dtype:
    return np.dtype(DEFAULT_FLOAT.read())


def _float(dtype: Any) -> np.dtype:
    return _default_float() if dtype is None else np.dtype(dtype)


def _made(arr: Any, requires_grad: bool = False) -> Tensor:
    arr = np.asarray(arr)
    if requires_grad:
        if arr.dtype.kind != "f":
            raise RuntimeError(f"Only Tensors of floating point dtype can require gradients (got {arr.dtype})")
        return Tensor(arr, True)
    return Tensor(arr)


def _gen(generator: Any, where: str) -> Any:
    if generator is None or isinstance(generator, tr.Generator):
        return generator
    raise TypeError(
        f"{where}: generator= must be a chainrule.torch.Generator (torch.Generator() here), got "
        f"{type(generator).__name__}"
    )


# -- the generator -------------------------------------------------------------------------------------


class Generator(tr.Generator):
    """``torch.Generator()``: torch's CPU Mersenne Twister; ``get_state`` gives a uint8 tensor as torch's."""

    def get_state(self) -> Tensor:  # type: ignore[override]
        return Tensor(np.asarray(super().get_state(), np.uint8))

    def set_state(self, state: Any) -> Generator:  # type: ignore[override]
        super().set_state(np.asarray(getattr(state, "_data", state), np.uint8))
        return self


default_generator = tr.default_generator


def manual_seed(seed: Any) -> Any:
    """``torch.manual_seed``: seeds torch's default stream (and chainrule's NumPy one); returns the generator.

    From here on a tensor's own in-place draws (``t.normal_()``) also take torch's stream.
    """
    g = tr.manual_seed(seed)
    _cr_rng.manual_seed(int(seed) & (2**64 - 1))
    _cr_rng.STREAM.torch = True
    return g


def seed() -> int:
    """``torch.seed``: a non-deterministic seed for the default generator, returned."""
    _cr_rng.STREAM.torch = True
    return tr.seed()


def initial_seed() -> int:
    return tr.initial_seed()


def get_rng_state() -> Tensor:
    """The default generator's state: a uint8 tensor of 5056 bytes (torch's layout, so states move both ways)."""
    return Tensor(np.asarray(tr.get_rng_state(), np.uint8))


def set_rng_state(new_state: Any) -> None:
    tr.set_rng_state(np.asarray(getattr(new_state, "_data", new_state), np.uint8))
    _cr_rng.STREAM.torch = True


# -- draws that make tensors ---------------------------------------------------------------------------


def rand(size: tuple, generator: Any, dtype: np.dtype, requires_grad: bool = False) -> Tensor:
    return _made(tr.rand(tuple(size), generator=_gen(generator, "rand"), dtype=_float(dtype)), requires_grad)


def randn(size: tuple, generator: Any, dtype: np.dtype, requires_grad: bool = False) -> Tensor:
    return _made(tr.randn(tuple(size), generator=_gen(generator, "randn"), dtype=_float(dtype)), requires_grad)


def randint(low: int, high: int, size: tuple, generator: Any, dtype: np.dtype) -> Tensor:
    return Tensor(tr.randint(low, high, tuple(size), generator=_gen(generator, "randint"), dtype=np.dtype(dtype)))


def randperm(n: int, generator: Any, dtype: np.dtype) -> Tensor:
    return Tensor(tr.randperm(n, generator=_gen(generator, "randperm"), dtype=np.dtype(dtype)))


def _values(x: Any) -> Any:
    return np.asarray(x._data) if isinstance(x, Tensor) else x


def normal(
    mean: Any = 0.0,
    std: Any = 1.0,
    size: Any = None,
    *,
    generator: Any = None,
    dtype: Any = None,
    requires_grad: bool = False,
    **kw: Any,
) -> Tensor:
    """``torch.normal``: elementwise from tensors ``mean``/``std``, or floats with ``size``."""
    _no_device(kw, "normal")
    m, s = _values(mean), _values(std)
    if isinstance(m, np.ndarray) and m.ndim == 0 and not isinstance(mean, Tensor):
        m = float(m)
    floats = not isinstance(m, np.ndarray) and not isinstance(s, np.ndarray)
    dt = _float(dtype) if floats else dtype
    out = tr.normal(m, s, size, generator=_gen(generator, "normal"), dtype=dt)
    return _made(out, requires_grad)


def bernoulli(input: Any, p: Any = None, *, generator: Any = None, **kw: Any) -> Tensor:  # noqa: A002
    """``torch.bernoulli``: 1 with probability ``input`` (or the float ``p``), else 0, in ``input``'s dtype."""
    _no_device(kw, "bernoulli")
    return Tensor(tr.bernoulli(_values(input), p, generator=_gen(generator, "bernoulli")))


def multinomial(input: Any, num_samples: int, replacement: bool = False, *, generator: Any = None, **kw: Any) -> Tensor:  # noqa: A002
    """``torch.multinomial``: ``num_samples`` category indices per row of weights ``input`` (int64)."""
    _no_device(kw, "multinomial")
    return Tensor(tr.multinomial(_values(input), num_samples, replacement, generator=_gen(generator, "multinomial")))


def poisson(input: Any, generator: Any = None) -> Tensor:  # noqa: A002, ARG001
    raise NotSupportedError(
        "torch.poisson is not supported in chainrule.torch: torch's Poisson sampler is not reproduced; "
        "use torch.distributions-free NumPy draws (numpy.random.default_rng().poisson) and torch.tensor(...)"
    )


def _like_shape_dtype(input: Any, dtype: Any) -> tuple[tuple[int, ...], np.dtype]:  # noqa: A002
    return tuple(input.shape), np.dtype(input.dtype if dtype is None else dtype)


def randint_like(input: Any, *args: Any, generator: Any = None, dtype: Any = None, **kw: Any) -> Tensor:  # noqa: A002
    """``torch.randint_like(input, high)`` or ``(input, low, high)``: ``input``'s shape and dtype."""
    _no_device(kw, "randint_like")
    kw.pop("requires_grad", None)
    shape, dt = _like_shape_dtype(input, dtype)
    low, high = (0, args[0]) if len(args) == 1 else args
    return Tensor(tr.randint(int(low), int(high), shape, generator=_gen(generator, "randint_like"), dtype=dt))


def _no_device(kw: dict, where: str) -> None:
    for key in ("layout", "pin_memory", "memory_format"):
        kw.pop(key, None)
    device = kw.pop("device", None)
    if device is not None and str(getattr(device, "type", device)).split(":")[0] != "cpu":
        raise ValueError(f"{where}: chainrule.torch computes on the CPU only, got device={device!r}")
    if kw:
        raise TypeError(f"{where}() got unexpected keyword argument(s) {sorted(kw)}")


# -- in-place draws into tensors ------------------------------------------------------------------------


def _fill(t: Tensor, name: str, args: tuple, generator: Any) -> Tensor:
    arr = np.asarray(t._data)
    values = fill_values(arr, name, args, {}, _gen(generator, name) or tr.default_generator)
    if type(t._data) is not np.ndarray:
        t._data = values.reshape(()).item() if isinstance(t._data, float) else values
    else:
        t._data[...] = values
    mark_modified(t)
    return t


def uniform_(t: Tensor, a: float = 0.0, b: float = 1.0, generator: Any = None) -> Tensor:
    """Fill ``t`` (in place, no graph) from U(a, b), torch's values in its memory order."""
    return _fill(t, "uniform_", (a, b), generator)


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0, generator: Any = None) -> Tensor:
    """Fill ``t`` (in place, no graph) from N(mean, std²) (torch's one-at-a-time path when not contiguous)."""
    return _fill(t, "normal_", (mean, std), generator)


def bernoulli_(t: Tensor, p: Any = 0.5, generator: Any = None) -> Tensor:
    return _fill(t, "bernoulli_", (p,), generator)


def exponential_(t: Tensor, lambd: float = 1.0, generator: Any = None) -> Tensor:
    return _fill(t, "exponential_", (lambd,), generator)


def random_(t: Tensor, from_: Any = None, to: Any = None, generator: Any = None) -> Tensor:
    return _fill(t, "random_", (from_, to), generator)


# -- dropout and data shuffling ----------------------------------------------------------------------------


def dropout_mask(shape: tuple, p: float, dtype: Any) -> np.ndarray:
    """torch's CPU dropout noise: ``bernoulli_(1 - p) / (1 - p)`` from the default generator."""
    return tr.dropout_mask(tuple(shape), p, dtype=np.dtype(dtype))


def base_seed(generator: Any = None) -> int:
    """The base seed every ``iter(DataLoader)`` draws first (one int64 ``random_()``), shuffled or not."""
    return tx.dataloader_base_seed(_gen(generator, "DataLoader"))


def sampler_order(n: int, generator: Any = None) -> list[int]:
    """``RandomSampler``'s order for one epoch (drawn after the loader's base seed)."""
    return tx.random_sampler_indices(n, generator=_gen(generator, "DataLoader"))


def split_order(n: int, generator: Any = None) -> list[int]:
    """``random_split``'s order: ``randperm(n, generator=generator)`` (the default generator when None)."""
    return tr.randperm(n, generator=_gen(generator, "random_split")).tolist()
