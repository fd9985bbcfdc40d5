"""chainrule.torch_random against torch 2.13 on the CPU: the same seeds give the same bits.

Every comparison is ``np.array_equal`` on the raw values (and equal dtype and
shape), over many seeds, shapes (sizes below, at and above torch's 16-value
Box–Muller block, zero-size, several dimensions) and float32/float64; the
interleaved sequences check that both generators advance alike. The planted
rules at the end show that these comparisons fail when one rounding step or
one bit of the construction is wrong.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from chainrule import torch_random as tr  # noqa: E402
from chainrule import torch_random_extra as te  # noqa: E402
from chainrule import torch_random_init as ti  # noqa: E402
from chainrule import torch_random_math as trm  # noqa: E402

# On Intel CPUs torch draws bernoulli_(float p), and so dropout, from MKL's stream instead (documented,
# warned); there those comparisons are expected to fail, and the sequences leave them out.
INTEL = trm._cpu_vendor() == "intel"
SEEDS = [*range(20), 2**32 + 3, 2**63 + 11, -5, 67280421310721]
SIZES = [(), (0,), (1,), (5,), (15,), (16,), (17,), (31,), (32,), (33,), (100,), (3, 0, 2), (4, 5), (2, 3, 7), (6, 16)]
DTYPES = [("float32", torch.float32), ("float64", torch.float64)]


def same(ours: np.ndarray, theirs: object, what: str = "") -> None:
    ref = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != torch's {ref.shape}"
    assert ours.dtype == ref.dtype, f"{what}: dtype {ours.dtype} != torch's {ref.dtype}"
    if not np.array_equal(ours, ref):
        bad = np.flatnonzero(ours.ravel() != ref.ravel())
        i = int(bad[0])
        raise AssertionError(
            f"{what}: {bad.size} of {ref.size} values differ; first at {i}: {ours.ravel()[i]!r} vs {ref.ravel()[i]!r}"
        )


def seed_both(s: int) -> None:
    torch.manual_seed(s)
    tr.manual_seed(s)


def state_equal() -> None:
    same(tr.get_rng_state(), torch.get_rng_state(), "generator state")


# -- the generator --------------------------------------------------------------------------------


@pytest.mark.parametrize("s", SEEDS)
def test_seeding_gives_torchs_state_bytes(s: int) -> None:
    seed_both(s)
    state_equal()
    assert tr.initial_seed() == torch.initial_seed()
    torch.rand(3)
    tr.rand(3)
    state_equal()
    torch.randn(3)  # leaves a cached normal in the state
    tr.randn(3)
    state_equal()
    torch.rand(1000)  # crosses a twist of the 624-word state
    tr.rand(1000)
    state_equal()


def test_generator_objects_behave_like_torchs() -> None:
    same(tr.rand(6, generator=tr.Generator()), torch.rand(6, generator=torch.Generator()), "Generator() default seed")
    assert tr.Generator().initial_seed() == torch.Generator().initial_seed() == 67280421310721
    g, tg = tr.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert isinstance(g, tr.Generator) and g.initial_seed() == 7
    seed_both(1)
    # a generator's stream is its own: the default one is untouched
    same(tr.rand(5, generator=g), torch.rand(5, generator=tg), "Generator stream")
    same(tr.randn(20, generator=g), torch.randn(20, generator=tg), "Generator randn")
    same(tr.rand(5), torch.rand(5), "default stream after Generator use")
    # states travel both ways, cached normal included
    torch.randn(1, generator=tg)
    tr.randn(1, generator=g)
    g2 = tr.Generator().set_state(tg.get_state().numpy())
    same(tr.randn(3, generator=g2), torch.randn(3, generator=tg), "state copied from torch")
    tg2 = torch.Generator()
    tg2.set_state(torch.from_numpy(g.get_state()))
    same(tr.randn(3, generator=g), torch.randn(3, generator=tg2), "state copied into torch")
    saved = tr.get_rng_state()
    a = tr.rand(4)
    tr.set_rng_state(saved)
    assert np.array_equal(tr.rand(4), a)
    first = g.seed()
    assert g.initial_seed() == first
    with tr.fork_rng():
        inside = tr.rand(3)
    assert np.array_equal(tr.rand(3), inside)


def test_seed_errors_and_range() -> None:
    with pytest.raises(ValueError, match="outside"):
        tr.manual_seed(2**64)
    with pytest.raises(TypeError, match="seed must be an int"):
        tr.manual_seed("3")
    with pytest.raises(ValueError, match="only the CPU"):
        tr.Generator("cuda")
    with pytest.raises(TypeError, match="chainrule.torch_random.Generator"):
        tr.rand(3, generator=np.random.default_rng(0))
    with pytest.raises(ValueError, match="5056 bytes"):
        tr.set_rng_state(np.zeros(10, np.uint8))


# -- uniform, integers, permutations ----------------------------------------------------------------


@pytest.mark.parametrize("s", SEEDS)
def test_rand_and_uniform(s: int) -> None:
    seed_both(s)
    for shape in SIZES:
        for name, dt in DTYPES:
            if shape:
                same(tr.rand(*shape, dtype=name), torch.rand(*shape, dtype=dt), f"rand{shape} {name}")
            same(tr.rand(shape, dtype=dt), torch.rand(shape, dtype=dt), f"rand(tuple) {name}")
            same(
                tr.uniform_(shape, -0.3, 0.7, dtype=name),
                torch.empty(shape, dtype=dt).uniform_(-0.3, 0.7),
                f"uniform_{shape}",
            )
    state_equal()


@pytest.mark.parametrize("s", SEEDS[:8])
def test_randint_randperm_random_(s: int) -> None:
    seed_both(s)
    for shape in SIZES:
        same(tr.randint(10, shape), torch.randint(10, shape), f"randint(10, {shape})")
        same(tr.randint(-7, 9, shape), torch.randint(-7, 9, shape), "randint(-7, 9)")
        same(tr.randint(0, 2**30, shape), torch.randint(0, 2**30, shape), "randint 64-bit path")
        same(tr.randint(-(2**40), 2**41, shape), torch.randint(-(2**40), 2**41, shape), "randint wide")
        same(
            tr.randint(3, 50, shape, dtype=torch.float32),
            torch.randint(3, 50, shape, dtype=torch.float32),
            "randint float",
        )
        same(tr.randint(0, 5, size=shape, dtype="int32"), torch.randint(0, 5, size=shape, dtype=torch.int32), "i32")
    for n in (0, 1, 2, 15, 16, 17, 100, 1000):
        same(tr.randperm(n), torch.randperm(n), f"randperm({n})")
    for name, dt in [("float32", torch.float32), ("float64", torch.float64), ("int64", torch.int64)]:
        same(tr.random_((9,), dtype=name), torch.empty(9, dtype=dt).random_(), f"random_() {name}")
        same(tr.random_((9,), 4, 20, dtype=name), torch.empty(9, dtype=dt).random_(4, 20), "random_(4, 20)")
    state_equal()


# -- normal --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("s", SEEDS)
def test_randn_and_normal(s: int) -> None:
    seed_both(s)
    for shape in SIZES:
        for name, dt in DTYPES:
            same(tr.randn(shape, dtype=name), torch.randn(shape, dtype=dt), f"randn{shape} {name}")
            if shape:
                same(tr.randn(*shape, dtype=name), torch.randn(*shape, dtype=dt), f"randn(*{shape}) {name}")
            same(
                tr.normal_(shape, 0.5, 2.5, dtype=name),
                torch.empty(shape, dtype=dt).normal_(0.5, 2.5),
                f"normal_(0.5, 2.5){shape} {name}",
            )
            same(tr.normal(1.0, 0.1, shape, dtype=name), torch.normal(1.0, 0.1, shape, dtype=dt), "normal(floats)")
    state_equal()


def test_normal_with_tensor_arguments() -> None:
    for s in SEEDS[:6]:
        seed_both(s)
        for n in (5, 20):
            m, sd = torch.rand(n), torch.rand(n)
            mn, sdn = tr.rand(n), tr.rand(n)
            same(tr.normal(mn, sdn), torch.normal(m, sd), f"normal(T, T) n={n}")
            same(tr.normal(mn, 0.5), torch.normal(m, 0.5), "normal(T, float)")
            same(tr.normal(0.5, sdn), torch.normal(0.5, sd), "normal(float, T)")
            same(tr.normal(mn[:4].reshape(4, 1), sdn), torch.normal(m[:4].reshape(4, 1), sd), "normal broadcast")
    with pytest.raises(ValueError, match="std >= 0"):
        tr.normal(np.zeros(3, np.float32), -np.ones(3, np.float32))
    with pytest.raises(ValueError, match="std >= 0"):
        tr.normal_((3,), 0.0, -1.0)
    with pytest.raises(TypeError, match="needs size"):
        tr.normal(0.0, 1.0)


def test_like_functions() -> None:
    for s in SEEDS[:6]:
        seed_both(s)
        for shape in [(3,), (4, 5), (17,)]:
            for name, dt in DTYPES:
                x, xn = torch.zeros(shape, dtype=dt), np.zeros(shape, dtype=name)
                same(tr.rand_like(xn), torch.rand_like(x), "rand_like")
                same(tr.randn_like(xn), torch.randn_like(x), "randn_like")
                same(tr.randint_like(xn, 7), torch.randint_like(x, 7), "randint_like(high)")
                same(tr.randint_like(xn, -2, 7), torch.randint_like(x, -2, 7), "randint_like(low, high)")
                same(tr.rand_like(x), torch.rand_like(x), "rand_like(torch tensor)")


# -- exponential, bernoulli, multinomial, dropout -------------------------------------------------------


@pytest.mark.parametrize("s", SEEDS[:10])
def test_exponential_bernoulli_dropout(s: int) -> None:
    seed_both(s)
    for shape in SIZES:
        for name, dt in DTYPES:
            same(tr.exponential_(shape, 1.5, dtype=name), torch.empty(shape, dtype=dt).exponential_(1.5), "exp")
            p, pn = torch.rand(shape, dtype=dt), tr.rand(shape, dtype=name)
            same(tr.bernoulli(pn), torch.bernoulli(p), f"bernoulli(tensor p) {name}")
            same(tr.bernoulli_(shape, pn, dtype=name), torch.empty(shape, dtype=dt).bernoulli_(p), "bernoulli_(T)")
            x, xn = torch.randn(shape, dtype=dt), tr.randn(shape, dtype=name)
            same(tr.dropout(xn, 0.5, training=False), torch.nn.functional.dropout(x, 0.5, False), "eval")
            same(tr.dropout(xn, 1.0), torch.nn.functional.dropout(x, 1.0), "dropout p=1")
    state_equal()


@pytest.mark.xfail(INTEL, reason="torch draws these from MKL's stream on Intel CPUs (documented, warned)", strict=True)
@pytest.mark.parametrize("s", SEEDS[:10])
def test_float_p_bernoulli_and_dropout(s: int) -> None:
    seed_both(s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the Intel warning, where it applies
        for shape in SIZES:
            for name, dt in DTYPES:
                p, pn = torch.rand(shape, dtype=dt), tr.rand(shape, dtype=name)
                same(tr.bernoulli(pn, 0.3), torch.bernoulli(p, 0.3), "bernoulli(p=0.3)")
                same(tr.bernoulli_(shape, 0.7, dtype=name), torch.empty(shape, dtype=dt).bernoulli_(0.7), "bernoulli_")
                x, xn = torch.randn(shape, dtype=dt), tr.randn(shape, dtype=name)
                same(tr.dropout(xn, 0.3), torch.nn.functional.dropout(x, 0.3), "F.dropout")
                same(tr.dropout(xn, 0.5), torch.nn.Dropout()(x), "nn.Dropout")
    state_equal()


@pytest.mark.parametrize("s", SEEDS[:10])
def test_multinomial(s: int) -> None:
    seed_both(s)
    for shape in [(7,), (4, 7), (3, 1), (2, 40)]:
        for name, dt in DTYPES:
            p, pn = torch.rand(shape, dtype=dt), tr.rand(shape, dtype=name)
            k = shape[-1]
            same(tr.multinomial(pn, 1), torch.multinomial(p, 1), f"multinomial 1 {shape}")
            same(tr.multinomial(pn, k), torch.multinomial(p, k), "without replacement, all")
            same(tr.multinomial(pn, min(3, k)), torch.multinomial(p, min(3, k)), "without replacement")
            same(tr.multinomial(pn, 12, True), torch.multinomial(p, 12, True), "with replacement")
            same(tr.multinomial(pn, 1, replacement=True), torch.multinomial(p, 1, replacement=True), "1, repl")
    weights = np.array([0.0, 3.0, 0.0, 1.0, 2.0], np.float32)
    same(tr.multinomial(weights, 40, True), torch.multinomial(torch.from_numpy(weights), 40, True), "zeros, repl")
    same(tr.multinomial(weights, 2), torch.multinomial(torch.from_numpy(weights), 2), "zeros, no repl")
    with pytest.raises(NotImplementedError, match="tie"):
        tr.multinomial(weights, 4)  # two zero-probability categories tie for the last place
    state_equal()
    with pytest.raises(ValueError, match="without replacement"):
        tr.multinomial(weights, 6)
    with pytest.raises(ValueError, match="sum of probabilities"):
        tr.multinomial(np.zeros(3, np.float32), 1)
    with pytest.raises(ValueError, match="element < 0"):
        tr.multinomial(np.array([0.5, -1.0], np.float32), 1)


# -- sequences: the streams advance alike --------------------------------------------------------------


_DROPOUT_OP = (
    "dropout",
    lambda m, n: m.dropout(np.ones(n, np.float32), 0.2),
    lambda n: F.dropout(torch.ones(n), 0.2),
)


def _ops() -> list:
    return [
        ("rand", lambda m, n: m.rand(n, 3), lambda n: torch.rand(n, 3)),
        ("rand64", lambda m, n: m.rand(n, dtype="float64"), lambda n: torch.rand(n, dtype=torch.float64)),
        ("randn", lambda m, n: m.randn(n), lambda n: torch.randn(n)),
        ("randn64", lambda m, n: m.randn(2, n, dtype="float64"), lambda n: torch.randn(2, n, dtype=torch.float64)),
        ("randint", lambda m, n: m.randint(-3, 1000, (n,)), lambda n: torch.randint(-3, 1000, (n,))),
        ("randperm", lambda m, n: m.randperm(n), lambda n: torch.randperm(n)),
        ("normal_", lambda m, n: m.normal_((n,), 2.0, 3.0), lambda n: torch.empty(n).normal_(2.0, 3.0)),
        ("exp", lambda m, n: m.exponential_((n,), 2.0), lambda n: torch.empty(n).exponential_(2.0)),
        ("bern", lambda m, n: m.bernoulli_((n,), m.rand(n)), lambda n: torch.empty(n).bernoulli_(torch.rand(n))),
        (
            "multinomial",
            lambda m, n: m.multinomial(np.arange(1, n + 2, dtype=np.float32), n, True),
            lambda n: torch.multinomial(torch.arange(1, n + 2, dtype=torch.float32), n, True),
        ),
        *([] if INTEL else [_DROPOUT_OP]),
    ]


@pytest.mark.parametrize("s", SEEDS)
def test_interleaved_sequences(s: int) -> None:
    ops = _ops()
    plan = np.random.default_rng(abs(s) % 2**32)
    seed_both(s)
    for step in range(30):
        name, ours, theirs = ops[int(plan.integers(len(ops)))]
        n = int(plan.choice([1, 2, 3, 7, 15, 16, 17, 40, 100]))
        same(ours(tr, n), theirs(n), f"seed {s}, step {step}: {name}({n})")
    state_equal()


# -- nn.init and the layers' default initialisation --------------------------------------------------


@pytest.mark.parametrize("s", SEEDS[:8])
def test_init_functions_and_layers(s: int) -> None:
    seed_both(s)
    lin = torch.nn.Linear(7, 5)
    w, b = ti.linear_init(7, 5)
    same(w, lin.weight, "Linear weight")
    same(b, lin.bias, "Linear bias")
    same(ti.linear_init(3, 4, bias=False)[0], torch.nn.Linear(3, 4, bias=False).weight, "Linear no bias")
    conv = torch.nn.Conv2d(3, 4, 3)
    w, b = ti.conv_init((4, 3, 3, 3))
    same(w, conv.weight, "Conv2d weight")
    same(b, conv.bias, "Conv2d bias")
    same(ti.embedding_init(10, 6), torch.nn.Embedding(10, 6).weight, "Embedding")
    t = torch.empty(20, 30)
    init = torch.nn.init
    same(ti.xavier_uniform_((20, 30)), init.xavier_uniform_(t), "xavier_uniform_")
    same(ti.xavier_normal_((20, 30), gain=2.0), init.xavier_normal_(t, gain=2.0), "xavier_normal_")
    same(
        ti.kaiming_uniform_((20, 30), mode="fan_out", nonlinearity="relu"),
        init.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu"),
        "kaiming_uniform_",
    )
    same(ti.kaiming_normal_((6, 3, 5)), init.kaiming_normal_(torch.empty(6, 3, 5)), "kaiming_normal_")
    same(ti.uniform_((3, 3), -2, 5), init.uniform_(torch.empty(3, 3), -2, 5), "init.uniform_")
    same(ti.normal_((33,), 1, 0.1), init.normal_(torch.empty(33), 1, 0.1), "init.normal_")
    same(ti.trunc_normal_((20, 30)), init.trunc_normal_(t), "trunc_normal_")
    same(ti.trunc_normal_((40,), a=-0.5, b=0.5), init.trunc_normal_(torch.empty(40), a=-0.5, b=0.5), "redraws")
    same(ti.trunc_normal_(np.zeros(7), std=0.02), init.trunc_normal_(torch.empty(7, dtype=torch.float64), std=0.02))
    for nl, param in [("tanh", None), ("relu", None), ("leaky_relu", 0.2), ("selu", None), ("conv2d", None)]:
        assert ti.calculate_gain(nl, param) == init.calculate_gain(nl, param)
    state_equal()


def test_init_refusals() -> None:
    with pytest.raises(NotImplementedError, match="0.3 of the mass"):
        ti.trunc_normal_((5,), a=-0.1, b=0.1)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        ti.xavier_uniform_((5,))
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        ti.calculate_gain("swish")


def test_refusals_name_the_way() -> None:
    with pytest.raises(TypeError):
        torch.rand()
    with pytest.raises(TypeError, match="missing 1 required positional argument: size"):
        tr.rand()
    with pytest.raises(TypeError, match="float16"):
        tr.rand(3, dtype="float16")
    with pytest.raises(TypeError, match="bfloat16 is not reproduced"):
        tr.randn(3, dtype=torch.bfloat16)
    with pytest.raises(TypeError, match="float16 is not reproduced"):
        tr.normal_((3,), dtype=torch.half)
    with pytest.raises(NotImplementedError, match="different 64-bit algorithm"):
        tr.randperm(2**32 // 20)
    with pytest.raises(ValueError, match="less than 'to'"):
        tr.randint(5, 5, (2,))
    with pytest.raises(ValueError, match="from=2.0 > to=1.0"):
        tr.uniform_((2,), 2.0, 1.0)
    with pytest.raises(ValueError, match="p to be in"):
        tr.bernoulli_((2,), 1.5)


def test_intel_cpus_get_a_warning_for_mkl_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trm, "_cpu_vendor", lambda: "intel")
    monkeypatch.setattr(trm, "_INTEL_WARNED", False)
    with pytest.warns(RuntimeWarning, match="MKL"):
        tr.dropout(np.ones(4, np.float32), 0.5)
    monkeypatch.setattr(trm, "_cpu_vendor", lambda: "amd")
    monkeypatch.setattr(trm, "_INTEL_WARNED", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tr.bernoulli_((4,), 0.5)


# -- the exact multiply-add -----------------------------------------------------------------------------


def _exact_fma32(a: float, b: float, c: float) -> np.float32:
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    lo = np.float32(float(exact))  # nearest double, then fix to the nearest float32 by looking around
    best = None
    for cand in (np.nextafter(lo, np.float32(-np.inf)), lo, np.nextafter(lo, np.float32(np.inf))):
        err = abs(Fraction(float(cand)) - exact)
        key = (err, int(np.float32(cand).view(np.int32)) & 1)  # ties to even
        if best is None or key < best[0]:
            best = (key, cand)
    return best[1]


def test_fma_emulation_is_exact() -> None:
    rng = np.random.default_rng(3)
    a = rng.standard_normal(3000).astype(np.float32)
    b = rng.standard_normal(3000).astype(np.float32)
    c = (rng.standard_normal(3000) * 10.0 ** rng.integers(-8, 3, 3000)).astype(np.float32)
    # a product exactly halfway between two float32 values plus a tiny addend: the float64 sum rounds
    # back onto the halfway point, and only the addend's sign says which way the float32 result goes
    a[:500] = np.float32(1 + 2**-12)
    b[:500] = np.float32(1 + 2**-12) * np.where(np.arange(500) % 2 == 0, 1, -1).astype(np.float32)
    c[:500] = (2.0 ** -rng.integers(60, 100, 500) * rng.choice([-1.0, 1.0, 0.0], 500)).astype(np.float32)
    naive = (a.astype(np.float64) * b.astype(np.float64) + c.astype(np.float64)).astype(np.float32)
    got = trm.fma(a, b, c)
    want = np.array([_exact_fma32(float(x), float(y), float(z)) for x, y, z in zip(a, b, c)], np.float32)
    assert np.array_equal(got, want)
    assert not np.array_equal(naive, want)  # the double-rounding trap is really in the data
    x, y, z = (rng.standard_normal(500) for _ in range(3))
    got64 = trm.fma(x, y, z)
    want64 = [float(Fraction(p) * Fraction(q) + Fraction(r)) for p, q, r in zip(x, y, z)]
    assert np.array_equal(got64, np.array(want64))
    assert trm.fma_scalar(0.1, 0.3, 0.7) == float(Fraction(0.1) * Fraction(0.3) + Fraction(0.7))


# -- planted wrong rules: the comparisons above catch them ------------------------------------------


def _mismatches(fn_ours: object, fn_torch: object, seeds: range = range(6)) -> int:
    bad = 0
    for s in seeds:
        seed_both(s)
        bad += int(np.sum(fn_ours() != fn_torch().numpy()))
    return bad


def test_planted_unfused_multiply_add_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    big = lambda: tr.randn(1600)  # noqa: E731
    assert _mismatches(big, lambda: torch.randn(1600)) == 0
    monkeypatch.setattr(trm, "_fma32", lambda a, b, c: a * b + c)
    assert _mismatches(big, lambda: torch.randn(1600)) > 0
    monkeypatch.setattr(trm, "fma_scalar", lambda a, b, c: a * b + c)
    small = lambda: tr.normal_((7,), 0.5, 2.5, dtype="float64")  # noqa: E731
    assert _mismatches(small, lambda: torch.empty(7, dtype=torch.float64).normal_(0.5, 2.5), range(30)) > 0


def test_planted_wrong_uniform_bits_are_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def wrong(g: tr.Generator, n: int, dtype: type) -> np.ndarray:
        bits = g.random32(n) >> np.uint64(8)  # the high 24 bits instead of the low ones
        return bits.astype(dtype) * dtype(2.0**-24)

    monkeypatch.setattr(tr, "_uniform01", wrong)
    assert _mismatches(lambda: tr.rand(50), lambda: torch.rand(50)) > 0


def test_planted_wrong_kernel_choice_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trm, "_CAPABILITY", "default" if trm.cpu_capability() == "avx2" else "avx2")
    assert _mismatches(lambda: tr.randn(1600), lambda: torch.randn(1600)) > 0


def test_planted_unseeded_cache_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    seed_both(0)
    tr.randn(1)
    torch.randn(1)
    original = tr.Generator.manual_seed

    def keeps_cache(self: tr.Generator, seed: object) -> tr.Generator:
        cached = self.next_double_normal
        original(self, seed)
        self.next_double_normal = cached
        return self

    monkeypatch.setattr(tr.Generator, "manual_seed", keeps_cache)
    seed_both(0)
    tr.randn(1)
    torch.randn(1)
    assert not np.array_equal(tr.get_rng_state(), torch.get_rng_state().numpy())


# -- torch's scalar (non-AVX2) kernels, in a process where torch is told to use them ----------------

_DEFAULT_SCRIPT = """
import sys, numpy as np, torch
from chainrule import torch_random as tr
from chainrule import torch_random_extra as te
assert torch.backends.cpu.get_cpu_capability() == "DEFAULT", torch.backends.cpu.get_cpu_capability()
assert tr.cpu_capability() == "default"
bad = []
for s in range(8):
    torch.manual_seed(s); tr.manual_seed(s)
    for n in (3, 15, 16, 17, 100, 333):
        for name, dt in (("float32", torch.float32), ("float64", torch.float64)):
            pairs = [
                (tr.randn(n, dtype=name), torch.randn(n, dtype=dt)),
                (tr.normal_((n,), 0.3, 1.7, dtype=name), torch.empty(n, dtype=dt).normal_(0.3, 1.7)),
                (tr.uniform_((n,), -0.3, 0.7, dtype=name), torch.empty(n, dtype=dt).uniform_(-0.3, 0.7)),
                (te.cauchy_((n,), 0.5, 2.0, dtype=name), torch.empty(n, dtype=dt).cauchy_(0.5, 2.0)),
            ]
            bad += [(s, n, name) for a, b in pairs if not np.array_equal(a, b.numpy())]
print("MISMATCHES", bad)
sys.exit(1 if bad else 0)
"""


def test_default_capability_kernels_match_in_a_subprocess() -> None:
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    run = subprocess.run(
        [sys.executable, "-c", _DEFAULT_SCRIPT], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_docs_example_runs_and_prints_torchs_numbers() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "torch.md").read_text(encoding="utf-8")
    section = text[text.index("## Torch's random numbers") :]
    code = section[section.index("```python\n") + len("```python\n") : section.index("```\n\n**What matches")]
    names: dict = {"__name__": "__doc__"}
    exec(compile(code, "docs/torch.md", "exec"), names)  # the project's own docs
    g = torch.Generator().manual_seed(2147483647)
    same(names["C"], torch.randn((27, 2), generator=g), "docs: C")
    same(names["ix"], torch.randint(0, 27, (32,), generator=g), "docs: ix")
    probs = torch.rand(27, generator=g)
    same(names["nxt"], torch.multinomial(probs, 1, replacement=True, generator=g), "docs: multinomial")
    torch.manual_seed(0)
    same(names["weight"], torch.nn.Linear(2, 3).weight, "docs: Linear weight")


@pytest.mark.parametrize("s", SEEDS[:6])
def test_dataloader_shuffle_order(s: int) -> None:
    from torch.utils.data import DataLoader, RandomSampler, TensorDataset  # noqa: PLC0415

    seed_both(s)
    data = TensorDataset(torch.arange(10))
    loader = DataLoader(data, batch_size=4, shuffle=True)
    for epoch in range(3):
        theirs = [int(i) for batch in loader for i in batch[0]]
        te.dataloader_base_seed()  # iter(loader) draws its base seed before the sampler's seed
        assert te.random_sampler_indices(10) == theirs, f"epoch {epoch}"
    state_equal()
    g, gg = torch.Generator().manual_seed(s), tr.Generator().manual_seed(s)
    theirs = [int(i) for batch in DataLoader(data, batch_size=3, shuffle=True, generator=g) for i in batch[0]]
    te.dataloader_base_seed(gg)
    assert te.random_sampler_indices(10, generator=gg) == theirs
    assert te.random_sampler_indices(7, 40, True) == list(RandomSampler(range(7), replacement=True, num_samples=40))
    assert te.random_sampler_indices(7, 17) == list(RandomSampler(range(7), num_samples=17))
    state_equal()


@pytest.mark.parametrize("s", SEEDS[:4])
def test_sparse_and_recurrent_layers(s: int) -> None:
    seed_both(s)
    same(ti.sparse_((6, 5), 0.3), torch.nn.init.sparse_(torch.empty(6, 5), 0.3), "sparse_")
    for layer in (torch.nn.LSTM(3, 4, num_layers=2), torch.nn.GRU(3, 5, bidirectional=True), torch.nn.RNNCell(2, 3)):
        params = list(layer.parameters())
        ours = ti.rnn_init([tuple(p.shape) for p in params], layer.hidden_size)
        for p, o in zip(params, ours):
            same(o, p, type(layer).__name__)
    state_equal()


@pytest.mark.parametrize("s", SEEDS[:6])
def test_cauchy_log_normal_geometric(s: int) -> None:
    seed_both(s)
    for shape in SIZES:
        for name, dt in DTYPES:
            same(te.cauchy_(shape, 0.5, 2.0, dtype=name), torch.empty(shape, dtype=dt).cauchy_(0.5, 2.0), "cauchy_")
            same(
                te.log_normal_(shape, 0.3, 0.7, dtype=name),
                torch.empty(shape, dtype=dt).log_normal_(0.3, 0.7),
                "log_normal_",
            )
            same(te.geometric_(shape, 0.3, dtype=name), torch.empty(shape, dtype=dt).geometric_(0.3), "geometric_")
        same(te.geometric_(shape, 0.05, dtype="int64"), torch.empty(shape, dtype=torch.int64).geometric_(0.05), "int")
    state_equal()
    with pytest.raises(ValueError, match=r"p to be in \(0, 1\)"):
        te.geometric_((2,), 1.0)


def test_views_are_filled_in_memory_order() -> None:
    for s in SEEDS[:4]:
        seed_both(s)
        sliced = torch.zeros(4, 20)[:, :17].normal_(0.5, 2.0)  # non-contiguous: one value at a time
        same(tr.normal_((4, 17), 0.5, 2.0, contiguous=False), sliced, "normal_ on a slice")
        seed_both(s)
        transposed = torch.zeros(20, 4).t().normal_()  # memory order is the transpose's C order
        same(tr.normal_((20, 4), contiguous=False).T, transposed, "normal_ on a transpose")
        transposed = torch.zeros(20, 4).t().uniform_(-1, 1)
        same(tr.uniform_((20, 4), -1, 1).T, transposed, "uniform_ on a transpose")
        state_equal()
