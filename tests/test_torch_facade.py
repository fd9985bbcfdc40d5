"""``import chainrule.torch as torch``: every idiom of tests/torch_facade_idioms.py run in real torch and in
chainrule.torch (no default switched), compared in values, shapes and dtypes; every public name of torch's
main modules and of ``Tensor`` is either present or refused with a clear error; importing the facade leaves
chainrule's own defaults alone."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import chainrule as cr
import chainrule.torch as ct
from chainrule.torch import _random
from chainrule.torch_names import NotSupportedError
from tests.test_torch_idioms import assert_same, plain
from tests.torch_facade_idioms import FACADE

torch = pytest.importorskip("torch")

IDS = [name for name, _ in FACADE]


def compare(fn: Any) -> str:
    """'same', or what differs (values, dtypes, shapes, or one side raising)."""
    torch.manual_seed(0)
    try:
        want = plain(fn(torch))
    except Exception as exc:  # noqa: BLE001
        want = exc
    try:
        got = plain(fn(ct))
    except Exception as exc:  # noqa: BLE001
        if isinstance(want, Exception):
            return "same"  # both refuse
        return f"chainrule.torch raised {type(exc).__name__}: {exc}"
    if isinstance(want, Exception):
        return f"torch raised {want!r}, chainrule.torch gave {got!r}"
    try:
        assert_same(got, want, False)
    except AssertionError as exc:
        return f"differs: {exc}"
    return "same"


def test_idiom_names_are_unique_and_many():
    assert len(set(IDS)) == len(IDS)
    assert len(IDS) >= 150


@pytest.mark.parametrize("fn", [fn for _, fn in FACADE], ids=IDS)
def test_idiom_gives_torchs_result(fn):
    assert compare(fn) == "same"


def test_a_planted_wrong_rule_is_caught(monkeypatch):
    """The comparison is not vacuous: % computed as fmod (the C rule) differs from torch and is reported."""
    fn = dict(FACADE)["mod_float_mod"]
    assert compare(fn) == "same"
    monkeypatch.setattr(cr.Tensor, "__mod__", lambda self, other: cr.torch_ops.fmod(self, other))
    assert compare(fn).startswith("differs")


def test_a_planted_wrong_default_dtype_is_caught(monkeypatch):
    fn = dict(FACADE)["create_float_list"]
    monkeypatch.setattr(ct._core.DEFAULTS, "float", np.dtype(np.float64))
    assert "dtype" in compare(fn)


# --- torch's initialisation: the same bounds requested in the same order -----------------------------------------


def _bounds_torch(make: Any) -> list:
    seen = []
    real = torch.Tensor.uniform_

    def spy(self: Any, a: float = 0.0, b: float = 1.0, generator: Any = None) -> Any:
        seen.append((tuple(self.shape), a, b))
        return real(self, a, b, generator=generator)

    torch.Tensor.uniform_ = spy
    try:
        make(torch)
    finally:
        torch.Tensor.uniform_ = real
    return seen


def _bounds_facade(make: Any, monkeypatch: Any) -> list:
    seen = []
    real = _random.uniform_

    def spy(t: Any, a: float = 0.0, b: float = 1.0, generator: Any = None) -> Any:
        seen.append((tuple(t.shape), a, b))
        return real(t, a, b, generator)

    monkeypatch.setattr(_random, "uniform_", spy)
    make(ct)
    return seen


@pytest.mark.parametrize(
    "make",
    [
        lambda T: T.nn.Linear(5, 3),
        lambda T: T.nn.Linear(7, 1, bias=False),
        lambda T: T.nn.Conv2d(2, 4, 3),
        lambda T: T.nn.Conv2d(4, 6, (3, 2), groups=2),
        lambda T: T.nn.init.kaiming_uniform_(T.empty(4, 9), a=0.1, mode="fan_out", nonlinearity="relu"),
        lambda T: T.nn.init.xavier_uniform_(T.empty(4, 9), gain=2.0),
        lambda T: T.nn.Sequential(T.nn.Linear(3, 4), T.nn.Tanh(), T.nn.Linear(4, 2)),
    ],
    ids=["linear", "linear_nobias", "conv", "conv_groups", "kaiming", "xavier", "sequential"],
)
def test_layers_draw_torchs_init_bounds(make, monkeypatch):
    want = _bounds_torch(make)
    got = _bounds_facade(make, monkeypatch)
    assert [s for s, _, _ in got] == [s for s, _, _ in want]
    for (_, a, b), (_, wa, wb) in zip(got, want):
        assert a == pytest.approx(wa, rel=1e-12) and b == pytest.approx(wb, rel=1e-12)


def test_embedding_draws_standard_normal(monkeypatch):
    seen = []
    monkeypatch.setattr(_random, "normal_", lambda t, m=0.0, s=1.0, g=None: seen.append((t.shape, m, s)) or t)
    ct.nn.Embedding(4, 3)
    assert seen == [((4, 3), 0.0, 1.0)]


# --- every torch name: present, or refused clearly ----------------------------------------------------------


def _public(mod: Any) -> list[str]:
    return sorted(n for n in dir(mod) if not n.startswith("_"))


MODULES = {
    "torch": (lambda: torch, lambda: ct),
    "torch.nn": (lambda: torch.nn, lambda: ct.nn),
    "torch.nn.functional": (lambda: torch.nn.functional, lambda: ct.nn.functional),
    "torch.nn.init": (lambda: torch.nn.init, lambda: ct.nn.init),
    "torch.optim": (lambda: torch.optim, lambda: ct.optim),
    "torch.optim.lr_scheduler": (lambda: torch.optim.lr_scheduler, lambda: ct.optim.lr_scheduler),
    "torch.autograd": (lambda: torch.autograd, lambda: ct.autograd),
    "torch.func": (lambda: torch.func, lambda: ct.func),
    "torch.utils.data": (lambda: torch.utils.data, lambda: ct.utils.data),
    "torch.cuda": (lambda: torch.cuda, lambda: ct.cuda),
}


def census(real_mod: Any, ours: Any, where: str) -> tuple[list[str], list[str], list[str]]:
    present, refused, bad = [], [], []
    for name in _public(real_mod):
        try:
            getattr(ours, name)
            present.append(name)
        except NotSupportedError as exc:
            text = str(exc)
            if "not supported in chainrule.torch" in text and name in text:
                refused.append(name)
            else:
                bad.append(f"{name}: unclear message {text!r}")
        except Exception as exc:  # noqa: BLE001
            bad.append(f"{name}: {type(exc).__name__}: {exc}")
    return present, refused, bad


@pytest.mark.parametrize("where", list(MODULES))
def test_every_public_name_is_present_or_refused_clearly(where):
    real_mod, ours = MODULES[where][0](), MODULES[where][1]()
    present, refused, bad = census(real_mod, ours, where)
    assert not bad, bad[:10]
    assert present, f"{where}: nothing present"
    assert isinstance(NotSupportedError("x"), AttributeError) and isinstance(
        NotSupportedError("x"), NotImplementedError
    )


def test_every_tensor_name_is_present_or_refused_clearly():
    t = ct.tensor([[1.0, 2.0], [3.0, 4.0]])
    present, refused, bad = census(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), t, "Tensor")
    assert not bad, bad[:10]
    assert len(present) > 200
    assert not hasattr(t, "definitely_not_a_name")  # hasattr keeps working
    assert getattr(t, "is_sparse_csr_thing", 5) == 5


def test_refusals_name_the_chainrule_way():
    with pytest.raises(NotSupportedError, match="cr.compile"):
        ct.jit  # noqa: B018
    with pytest.raises(NotSupportedError, match="cr.distributed"):
        ct.tensor([1.0]).share_memory_  # noqa: B018


def test_name_census(capsys):
    """The headline numbers: names present and refused, per module (printed)."""
    lines = []
    totals = [0, 0]
    for where, (real, ours) in MODULES.items():
        p, r, _ = census(real(), ours(), where)
        totals[0] += len(p)
        totals[1] += len(r)
        lines.append(f"{where}: {len(p)} present, {len(r)} refused")
    p, r, _ = census(torch.tensor([[1.0, 2.0]]), ct.tensor([[1.0, 2.0]]), "Tensor")
    totals[0] += len(p)
    totals[1] += len(r)
    lines.append(f"Tensor: {len(p)} present, {len(r)} refused")
    with capsys.disabled():
        print("\n" + "\n".join(lines) + f"\nall: {totals[0]} present, {totals[1]} refused clearly")
    assert totals[0] > 400


# --- scope: chainrule keeps its own defaults --------------------------------------------------------------------


def test_importing_the_facade_leaves_chainrule_defaults_alone():
    code = (
        "import chainrule as cr, numpy as np\n"
        "before = (cr.get_default_dtype(), type(cr.tensor(1.5)._data), cr.tensor([1.0]).dtype)\n"
        "import chainrule.torch as torch\n"
        "x = torch.tensor([1.0]); torch.nn.Linear(2, 2); torch.zeros(2)\n"
        "after = (cr.get_default_dtype(), type(cr.tensor(1.5)._data), cr.tensor([1.0]).dtype)\n"
        "assert before == after == (np.dtype('float64'), float, np.dtype('float64')), (before, after)\n"
        "assert x.dtype == np.float32 and cr.nn.Linear(2, 2).weight.dtype == np.float32\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.path.join(os.path.dirname(os.path.dirname(__file__)), "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


def test_facade_set_default_dtype_is_its_own():
    try:
        ct.set_default_dtype(ct.float64)
        assert ct.tensor([1.0]).dtype == np.float64 and ct.zeros(1).dtype == np.float64
        assert cr.get_default_dtype() == np.float64 and cr.tensor([1.0]).dtype == np.float64
    finally:
        ct.set_default_dtype(ct.float32)
    assert ct.tensor([1.0]).dtype == np.float32
    with pytest.raises(TypeError, match="float32 or float64"):
        ct.set_default_dtype(ct.int64)


def test_the_teaching_tools_accept_facade_tensors():
    x = ct.tensor([0.5, -1.0], requires_grad=True)
    y = (x * x).sum()
    tr = cr.trace(y)
    assert "mul" in str(tr) or "*" in str(tr)
    (g,) = ct.autograd.grad((x * x).sum(), x)
    np.testing.assert_allclose(g.numpy(), [1.0, -2.0])
    assert g.dtype == np.float32


# --- devices, cuda, clear errors ---------------------------------------------------------------------------------


def test_cuda_is_truthful_and_devices_refused_clearly():
    assert ct.cuda.is_available() is False or "cupy" in sys.modules
    if not ct.cuda.is_available():
        with pytest.raises(RuntimeError, match="CPU"):
            ct.zeros(2, device="cuda")
        with pytest.raises(RuntimeError, match="CPU only"):
            ct.set_default_device("cuda")
    ct.set_default_device("cpu")
    with pytest.raises(RuntimeError, match="expected one of"):
        ct.device("tpu")


def test_load_refuses_map_location_elsewhere(tmp_path):
    p = tmp_path / "m.pt"
    ct.save({"w": ct.ones(2)}, p)
    with pytest.raises(RuntimeError, match="CPU only"):
        ct.load(p, map_location="cuda:0")
    with pytest.raises(NotImplementedError, match="map_location='cpu'"):
        ct.load(p, map_location=lambda s, loc: s)
    assert ct.load(p, map_location={"cuda:0": "cpu"})["w"].dtype == np.float32


def test_function_bad_backward_is_named():
    class Bad(ct.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, y: Any) -> Any:
            return x * y

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            return g

    x = ct.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="Bad.backward returned 1 gradients"):
        Bad.apply(x, ct.tensor([2.0])).sum().backward()


def test_function_gradient_matches_finite_differences():
    class Sq(ct.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            (x,) = ctx.saved_tensors
            return 2 * x * g

    assert cr.gradcheck(lambda x: Sq.apply(x), (cr.tensor([0.3, -1.2], requires_grad=True),))


def test_facade_random_uses_torch_streams():
    """The facade draws from chainrule.torch_random always (tests/test_torch_facade_random.py compares with torch)."""
    from chainrule import torch_random as tr

    assert isinstance(ct.Generator(), tr.Generator)
    ct.manual_seed(3)
    a = ct.rand(3)
    ct.manual_seed(3)
    assert np.array_equal(a.numpy(), ct.rand(3).numpy()) and a.dtype == np.float32
    tr.manual_seed(3)
    assert np.array_equal(a.numpy(), tr.rand(3))


def test_trunc_normal_matches_the_inverse_cdf():
    t = ct.nn.init.trunc_normal_(ct.empty(20000), mean=1.0, std=2.0, a=-1.0, b=2.0)
    v = t.numpy()
    assert v.min() >= -1.0 and v.max() <= 2.0
    # the mean of N(1, 4) cut to [-1, 2]: mu + sigma (phi(alpha) - phi(beta)) / (Phi(beta) - Phi(alpha))
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    Phi = lambda z: (1 + math.erf(z / math.sqrt(2))) / 2  # noqa: E731
    want = 1.0 + 2.0 * (phi(-1.0) - phi(0.5)) / (Phi(0.5) - Phi(-1.0))
    assert abs(v.mean() - want) < 0.03


# --- the issue-12 idioms, through chainrule.torch with no default switched -----------------------------------


def test_the_issue_12_idioms_run_through_the_facade(monkeypatch):
    import tests.test_torch_idioms as old
    from tests.torch_idioms import IDIOMS

    monkeypatch.setattr(old, "cr", ct)
    results = {i.name: old.outcome(i) for i in IDIOMS}
    fails = {k: v for k, v in results.items() if v.startswith("fails")}
    assert not fails, fails
    assert sum(r == "works" for r in results.values()) >= 340


def test_integer_promotion_takes_torchs_default_dtype():
    """An integer tensor meeting a Python float, divided, or sent through a float function takes torch's default
    dtype (float32, or float64 after set_default_dtype); a float tensor of either dtype, 0-d included, keeps its
    own, as in torch."""
    import torch

    cases = [
        ("arange(5) * 0.5", lambda t: t.arange(5) * 0.5),
        ("tensor([1, 2]) / 2", lambda t: t.tensor([1, 2]) / 2),
        ("exp(arange(3))", lambda t: t.exp(t.arange(3))),
        ("where(cond, 1.0, 2.0)", lambda t: t.where(t.arange(3) > 0, 1.0, 2.0)),
        ("int + 0-d float64", lambda t: t.arange(3) + t.tensor(0.5, dtype=t.float64)),
        ("int * 0-d float32", lambda t: t.arange(3) * t.tensor(0.5)),
        ("(a == b).sum() / n", lambda t: (t.arange(4) == t.tensor([0, 1, 0, 3])).sum() / 4),
        ("mean of int.float()", lambda t: t.arange(4).float().mean()),
    ]
    for default in (torch.float32, torch.float64):
        torch.set_default_dtype(default)
        ct.set_default_dtype(np.float32 if default is torch.float32 else np.float64)
        try:
            for text, make in cases:
                ours, theirs = make(ct), make(torch)
                assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch."), (text, default)
                np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, err_msg=text)
        finally:
            torch.set_default_dtype(torch.float32)
            ct.set_default_dtype(np.float32)


def test_the_docs_example_prints_what_it_shows(capsys):
    import pathlib
    import re

    text = (pathlib.Path(__file__).parent.parent / "docs" / "torch.md").read_text(encoding="utf-8")
    start = text.index("## `import chainrule.torch as torch` or `import chainrule as cr`")
    code, shown = re.findall(r"```python\n(.*?)```\n```\n(.*?)```", text[start:], re.S)[0]
    exec(compile(code, "docs/torch.md", "exec"), {"__name__": "__doc__"})  # the project's own docs
    assert capsys.readouterr().out == shown


# --- linspace: torch's CPU values bit for bit ------------------------------------------------------------------

_RNG = np.random.default_rng(25)
LINSPACE = [(-math.pi, math.pi, 2000), (0, 1, 5), (-3.7, 11.3, 1001), (5, -5, 999), (0, 1, 1), (0, 1, 0), (3, 3, 4)]
LINSPACE += [(float(_RNG.normal() * 10), float(_RNG.normal() * 10), int(_RNG.integers(2, 5000))) for _ in range(60)]
LINSPACE += [(float(_RNG.normal() * 1e4), float(_RNG.normal() * 1e-3), int(_RNG.integers(2, 500))) for _ in range(20)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_linspace_is_torchs_bit_for_bit(dtype):
    for a, b, n in LINSPACE:
        want = torch.linspace(a, b, n, dtype=getattr(torch, dtype)).numpy()
        got = ct.linspace(a, b, n, dtype=getattr(ct, dtype)).numpy()
        assert got.dtype == want.dtype and np.array_equal(got, want), (a, b, n)


def test_a_planted_numpy_linspace_is_caught(monkeypatch):
    from chainrule.torch import _core

    monkeypatch.setattr(_core, "torch_linspace", lambda a, b, n, dt: np.linspace(a, b, n, dtype=dt))
    want = torch.linspace(-math.pi, math.pi, 2000).numpy()
    assert not np.array_equal(ct.linspace(-math.pi, math.pi, 2000).numpy(), want)


ARANGE = [(-3.3, 7.1, 0.37), (0.0, 100.0, 0.7), (1.5, 20.0, 1.1), (0.0, 1.0, 0.1), (-5.0, 5.0, 0.013), (5.0, 0.0, -0.3)]
ARANGE += [
    (float(_RNG.normal() * 10), float(_RNG.uniform(0, 300)), float(abs(_RNG.normal()) + 0.01)) for _ in range(60)
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float_arange_is_torchs_bit_for_bit(dtype):
    for a, count, s in ARANGE:
        b = a + count * s if count > 1 else count
        want = torch.arange(a, b, s, dtype=getattr(torch, dtype)).numpy()
        got = ct.arange(a, b, s, dtype=getattr(ct, dtype)).numpy()
        assert got.dtype == want.dtype and np.array_equal(got, want), (a, b, s)


def test_torch_func_is_cr_func_with_tensor_results():
    """chainrule.torch.func runs chainrule.func's transforms (one implementation) and returns tensors; the values
    are torch.func's."""
    import torch

    def f(w, x):
        return (w.tanh() * x).sum()

    w, x = np.linspace(-1, 1, 4), np.linspace(0.5, 2, 4)
    ours = ct.func.grad(f)(ct.tensor(w), ct.tensor(x))
    same = cr.func.grad(f)(cr.tensor(w), cr.tensor(x))
    theirs = torch.func.grad(f)(torch.tensor(w), torch.tensor(x))
    assert isinstance(ours, ct.Tensor)
    np.testing.assert_allclose(ours.numpy(), np.asarray(same), rtol=0, atol=0)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12)
    jac = ct.func.jacrev(lambda v: v.sin() * 2)(ct.tensor(w))
    np.testing.assert_allclose(jac.numpy(), torch.func.jacrev(lambda v: v.sin() * 2)(torch.tensor(w)).numpy())
    per_sample = ct.func.vmap(ct.func.grad(f), in_dims=(None, 0))(ct.tensor(w), ct.tensor(np.eye(4)))
    want = torch.func.vmap(torch.func.grad(f), in_dims=(None, 0))(torch.tensor(w), torch.tensor(np.eye(4)))
    np.testing.assert_allclose(per_sample.numpy(), want.numpy(), rtol=1e-12)


def test_functional_call_keywords_as_torch():
    m = ct.nn.Linear(2, 1)
    x = ct.ones(1, 2)
    zero = {"weight": ct.zeros(1, 2), "bias": ct.zeros(1)}
    assert ct.func.functional_call(m, zero, x).item() == 0.0
    with pytest.raises(ValueError, match="more than one dict"):
        ct.func.functional_call(m, ({"bias": ct.zeros(1)}, {"bias": ct.zeros(1)}), x)
    with pytest.raises(RuntimeError, match="missing key.*weight"):
        ct.func.functional_call(m, {"bias": ct.zeros(1)}, x, strict=True)
    with pytest.raises(KeyError, match="not a parameter or buffer"):
        ct.func.functional_call(m, {"nope": ct.zeros(1)}, x)
