"""Everyday PyTorch idioms, each written once and run in both torch and chainrule.

Every idiom is a function of the library module ``L`` (``torch`` or ``chainrule``)
written in torch's spelling, taken from the PyTorch tutorials ("Tensors",
"A gentle introduction to torch.autograd", "Learning PyTorch with examples") and
the ``torch.Tensor`` documentation.  ``tests/test_torch_idioms.py`` runs each in
both libraries and compares values, dtypes and gradients.

An idiom is ``Idiom(name, fn, kind)``:
- kind ``"same"``: the results must agree (values, shapes, dtypes);
- kind ``"shape"``: random draws: shapes and dtypes must agree;
- kind ``"raises"``: chainrule refuses on purpose; ``match`` must appear in its error
  (which names the chainrule way);
- ``scope="nn"``: an nn/optim/data idiom (another part of issue 12); counted separately.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Idiom:
    name: str
    fn: Callable[[Any], Any]
    kind: str = "same"
    match: str = ""
    scope: str = "tensor"


IDIOMS: list[Idiom] = []


def idiom(name: str, kind: str = "same", match: str = "", scope: str = "tensor") -> Callable:
    def register(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        IDIOMS.append(Idiom(name, fn, kind, match, scope))
        return fn

    return register


def _m(L: Any) -> Any:
    return L.tensor([[1.0, -2.0, 3.0], [4.0, 5.0, -6.0]])


def _v(L: Any) -> Any:
    return L.tensor([0.5, -1.5, 2.0, 0.0])


def _w(L: Any) -> Any:
    return L.tensor([[1.0, -2.0, 3.0], [4.0, 5.0, -6.0]], requires_grad=True)


def _grad_of(L: Any, build: Callable[[Any], Any], *shapes_values: Any) -> Any:
    xs = [L.tensor(v, requires_grad=True) for v in shapes_values]
    build(*xs).backward()
    return [x.grad for x in xs]


# --- creation -----------------------------------------------------------------------------
idiom("tensor from nested list")(lambda L: L.tensor([[1, 2], [3, 4]]))
idiom("tensor from floats")(lambda L: L.tensor([[1.0, 2.0], [3.0, 4.0]]))
idiom("tensor scalar")(lambda L: L.tensor(3.5))
idiom("tensor bools")(lambda L: L.tensor([True, False]))
idiom("tensor with dtype")(lambda L: L.tensor([1, 2], dtype=L.float32))
idiom("tensor float64 dtype")(lambda L: L.tensor([1, 2], dtype=L.float64))
idiom("tensor int64 dtype")(lambda L: L.tensor([1.7, 2.2], dtype=L.int64))
idiom("zeros varargs")(lambda L: L.zeros(2, 3))
idiom("zeros tuple")(lambda L: L.zeros((2, 3)))
idiom("ones varargs")(lambda L: L.ones(2, 3))
idiom("ones with dtype")(lambda L: L.ones(2, dtype=L.int64))
idiom("zeros_like")(lambda L: L.zeros_like(_m(L)))
idiom("ones_like")(lambda L: L.ones_like(_m(L)))
idiom("full")(lambda L: L.full((2, 2), 7.0))
idiom("full int")(lambda L: L.full((2,), 7))
idiom("full_like")(lambda L: L.full_like(_m(L), 0.5))
idiom("eye")(lambda L: L.eye(3))
idiom("eye rectangular")(lambda L: L.eye(2, 3))
idiom("arange end")(lambda L: L.arange(5))
idiom("arange start end step")(lambda L: L.arange(1, 10, 3))
idiom("arange float")(lambda L: L.arange(0.0, 1.0, 0.25))
idiom("linspace")(lambda L: L.linspace(0, 1, 5))
idiom("empty shape", "shape")(lambda L: L.empty(2, 3))
idiom("randn", "shape")(lambda L: L.randn(2, 3))
idiom("randn tuple", "shape")(lambda L: L.randn((4,)))
idiom("rand", "shape")(lambda L: L.rand(3, 2))
idiom("randn_like", "shape")(lambda L: L.randn_like(_m(L)))
idiom("rand_like", "shape")(lambda L: L.rand_like(_m(L)))
idiom("randint", "shape")(lambda L: L.randint(0, 10, (3,)))
idiom("randperm", "shape")(lambda L: L.randperm(5))


@idiom("manual_seed makes randn reproducible")
def _seeded(L: Any) -> Any:
    L.manual_seed(3)
    a = L.randn(3)
    L.manual_seed(3)
    return L.equal(a, L.randn(3))


@idiom("from_numpy shares memory")
def _from_numpy(L: Any) -> Any:
    import numpy as np

    a = np.arange(3.0)
    t = L.from_numpy(a)
    a[0] = 10.0
    return t


idiom("as_tensor")(lambda L: L.as_tensor([1.0, 2.0]))
idiom("new_zeros")(lambda L: _m(L).new_zeros(2))
idiom("new_ones")(lambda L: _m(L).new_ones((1, 2)))
idiom("default dtype is float32 here")(lambda L: L.get_default_dtype() == L.float32)

# --- attributes -----------------------------------------------------------------------------
idiom("shape")(lambda L: tuple(_m(L).shape))
idiom("size()")(lambda L: tuple(_m(L).size()))
idiom("size(0)")(lambda L: _m(L).size(0))
idiom("size(-1)")(lambda L: _m(L).size(-1))
idiom("dim()")(lambda L: _m(L).dim())
idiom("ndim")(lambda L: _m(L).ndim)
idiom("numel()")(lambda L: _m(L).numel())
idiom("nelement()")(lambda L: _m(L).nelement())
idiom("dtype float32")(lambda L: _m(L).dtype == L.float32)
idiom("dtype int64")(lambda L: L.tensor([1, 2]).dtype == L.int64)
idiom("len")(lambda L: len(_m(L)))
idiom("item")(lambda L: L.tensor([2.5]).item())
idiom("tolist")(lambda L: _m(L).tolist())
idiom("is_leaf")(lambda L: (_w(L).is_leaf, (_w(L) * 2).is_leaf))
idiom("requires_grad attribute")(lambda L: (_w(L).requires_grad, _m(L).requires_grad))
idiom("grad_fn of a leaf is None")(lambda L: _w(L).grad_fn is None)
idiom("grad_fn of a result is set")(lambda L: (_w(L) * 2).grad_fn is not None)


@idiom("grad_fn.next_functions walk")
def _next_functions(L: Any) -> Any:
    w = _w(L)
    y = (w * 2).exp()
    ((mul, _),) = y.grad_fn.next_functions
    (acc, _), (const, _) = mul.next_functions
    return type(acc).__name__, acc.variable is w, const


idiom("is_floating_point")(lambda L: (_m(L).is_floating_point(), L.tensor([1]).is_floating_point()))
idiom("float()")(lambda L: L.tensor([1, 2]).float())
idiom("double()")(lambda L: _m(L).double())
idiom("long()")(lambda L: L.tensor([1.7, -2.7]).long())
idiom("int()")(lambda L: L.tensor([1.7, -2.7]).int())
idiom("bool()")(lambda L: L.tensor([0.0, 2.0]).bool())
idiom("half()")(lambda L: L.tensor([1.5]).half())
idiom("to(dtype)")(lambda L: _m(L).to(L.float64))
idiom("to('cpu')")(lambda L: _m(L).to("cpu"))
idiom("to(other)")(lambda L: L.tensor([1, 2]).to(_m(L)))
idiom("cpu()")(lambda L: _m(L).cpu())
idiom("numpy()")(lambda L: _m(L).numpy())
idiom("detach().numpy()")(lambda L: _w(L).detach().numpy())
idiom("type_as")(lambda L: L.tensor([1, 2]).type_as(_m(L)))
idiom("cuda refused", "raises", "CUDA")(lambda L: _m(L).to("cuda"))

# --- indexing and slicing ------------------------------------------------------------------
idiom("index row")(lambda L: _m(L)[0])
idiom("index element")(lambda L: _m(L)[1, 2])
idiom("slice columns")(lambda L: _m(L)[:, 1:])
idiom("negative index")(lambda L: _m(L)[-1])
idiom("ellipsis")(lambda L: _m(L)[..., 0])
idiom("None adds a dim")(lambda L: _m(L)[None].shape)
idiom("scalar [None]")(lambda L: L.tensor(3.14)[None])
idiom("scalar [...]")(lambda L: L.tensor(3.14)[...])
idiom("bool mask")(lambda L: _m(L)[_m(L) > 0])
idiom("integer tensor index")(lambda L: _m(L)[L.tensor([1, 0, 1])])
idiom("fancy pair index")(lambda L: _m(L)[L.tensor([0, 1]), L.tensor([2, 0])])
idiom("step slice")(lambda L: L.arange(10)[::3])


@idiom("setitem no grad")
def _setitem(L: Any) -> Any:
    x = L.zeros(2, 3)
    x[0, 1] = 5.0
    x[1] = L.tensor([1.0, 2.0, 3.0])
    return x


@idiom("setitem mask")
def _setitem_mask(L: Any) -> Any:
    x = _m(L)
    x[x < 0] = 0.0
    return x


# --- arithmetic -----------------------------------------------------------------------------
idiom("add")(lambda L: _m(L) + _m(L))
idiom("add scalar")(lambda L: _m(L) + 1)
idiom("radd")(lambda L: 1 + _m(L))
idiom("sub")(lambda L: _m(L) - 2.5)
idiom("rsub")(lambda L: 2.5 - _m(L))
idiom("mul broadcast")(lambda L: _m(L) * L.tensor([1.0, 2.0, 3.0]))
idiom("div")(lambda L: _m(L) / 4)
idiom("rdiv")(lambda L: 1 / L.tensor([2.0, 4.0]))
idiom("pow operator")(lambda L: _m(L) ** 2)
idiom("rpow")(lambda L: 2 ** L.tensor([1.0, 3.0]))
idiom("neg")(lambda L: -_m(L))
idiom("abs builtin")(lambda L: abs(_m(L)))
idiom("matmul operator")(lambda L: _m(L) @ _m(L).T)
idiom("int tensor + 0.5 is default float")(lambda L: L.tensor([1, 2]) + 0.5)
idiom("int tensor * 2 stays int")(lambda L: L.tensor([1, 2]) * 2)
idiom("int tensor / int is float")(lambda L: L.tensor([1, 2]) / 2)
idiom("int tensor + float tensor")(lambda L: L.tensor([1, 2]) + L.tensor([0.5, 0.25]))
idiom("torch.add alpha")(lambda L: L.add(_m(L), _m(L), alpha=2))
idiom("torch.sub")(lambda L: L.sub(_m(L), 1.0))
idiom("torch.mul")(lambda L: L.mul(_m(L), 3.0))
idiom("torch.div")(lambda L: L.div(_m(L), 2.0))
idiom("div floor")(lambda L: L.div(_m(L), 4.0, rounding_mode="floor"))
idiom("torch.pow")(lambda L: L.pow(L.tensor([1.0, 2.0]), 3))
idiom("x.pow")(lambda L: L.tensor([1.0, 2.0]).pow(0.5))
idiom("square")(lambda L: _m(L).square())
idiom("sqrt")(lambda L: L.sqrt(L.tensor([4.0, 9.0])))
idiom("rsqrt")(lambda L: L.tensor([4.0, 9.0]).rsqrt())
idiom("reciprocal")(lambda L: L.tensor([4.0, 8.0]).reciprocal())
idiom("exp")(lambda L: L.exp(_v(L)))
idiom("log")(lambda L: L.log(L.tensor([1.0, 10.0])))
idiom("log2")(lambda L: L.log2(L.tensor([1.0, 8.0])))
idiom("log10")(lambda L: L.log10(L.tensor([1.0, 100.0])))
idiom("log1p")(lambda L: L.log1p(_v(L).abs()))
idiom("sin cos tan")(lambda L: (L.sin(_v(L)), L.cos(_v(L)), L.tan(_v(L))))
idiom("sinh cosh")(lambda L: (L.sinh(_v(L)), L.cosh(_v(L))))
idiom("tanh method")(lambda L: _v(L).tanh())
idiom("sigmoid")(lambda L: L.sigmoid(_v(L)))
idiom("relu")(lambda L: L.relu(_v(L)))
idiom("sign")(lambda L: L.sign(_v(L)))
idiom("clamp")(lambda L: _m(L).clamp(-1, 2))
idiom("clamp min only")(lambda L: _m(L).clamp(min=0))
idiom("clip")(lambda L: L.clip(_m(L), -1.0, 1.0))
idiom("floor ceil round trunc")(lambda L: (L.floor(_v(L)), L.ceil(_v(L)), L.round(_v(L)), L.trunc(_v(L))))
idiom("maximum")(lambda L: L.maximum(_m(L), L.zeros(2, 3)))
idiom("minimum")(lambda L: L.minimum(_m(L), L.zeros(3)))
idiom("where")(lambda L: L.where(_m(L) > 0, _m(L), L.zeros(2, 3)))
idiom("where scalar")(lambda L: L.where(_m(L) > 0, _m(L), 0.0))
idiom("masked_fill")(lambda L: _m(L).masked_fill(_m(L) < 0, 0.0))
idiom("lerp")(lambda L: L.lerp(_v(L), L.zeros(4), 0.25))
idiom("addcmul")(lambda L: L.addcmul(_v(L), _v(L), _v(L), value=0.5))
idiom("isnan")(lambda L: L.isnan(L.tensor([1.0, float("nan")])))
idiom("isinf isfinite")(lambda L: (L.isinf(L.tensor([float("inf"), 1.0])), L.isfinite(L.tensor([float("inf"), 1.0]))))
idiom("nan_to_num")(lambda L: L.nan_to_num(L.tensor([float("nan"), 1.0])))

# --- comparisons and logic ---------------------------------------------------------------
idiom("comparisons")(lambda L: (_m(L) > 0, _m(L) >= 1, _m(L) < 0, _m(L) <= 3, _m(L) == 5, _m(L) != 5))
idiom("torch.eq / gt")(lambda L: (L.eq(_m(L), 5.0), L.gt(_m(L), 0.0)))
idiom("logical and or not")(lambda L: ((_m(L) > 0) & (_m(L) < 4), (_m(L) > 4) | (_m(L) < -4), ~(_m(L) > 0)))
idiom("all any")(lambda L: ((_m(L) > -10).all(), (_m(L) > 5).any()))
idiom("all dim")(lambda L: (_m(L) > 0).all(dim=1))
idiom("any method dim")(lambda L: (_m(L) > 4).any(0))
idiom("allclose")(lambda L: L.allclose(_m(L), _m(L) + 1e-9))
idiom("isclose")(lambda L: L.isclose(_m(L), _m(L) + 1e-3))
idiom("equal")(lambda L: L.equal(_m(L), _m(L)))
idiom("count_nonzero")(lambda L: L.count_nonzero(L.tensor([0.0, 1.0, 2.0])))
idiom("sum of bools counts")(lambda L: (_m(L) > 0).sum())

# --- reductions -----------------------------------------------------------------------------
idiom("sum")(lambda L: _m(L).sum())
idiom("sum dim")(lambda L: _m(L).sum(dim=0))
idiom("sum dim keepdim")(lambda L: _m(L).sum(dim=1, keepdim=True))
idiom("sum positional dim")(lambda L: _m(L).sum(1))
idiom("sum tuple dims")(lambda L: L.ones(2, 3, 4).sum(dim=(0, 2)))
idiom("sum axis alias")(lambda L: _m(L).sum(axis=0))
idiom("torch.sum dim")(lambda L: L.sum(_m(L), dim=-1))
idiom("mean")(lambda L: _m(L).mean())
idiom("mean dim keepdim")(lambda L: _m(L).mean(dim=0, keepdim=True))
idiom("mean empty is nan")(lambda L: L.ones(0, 3).mean(dim=0))
idiom("max all")(lambda L: _m(L).max())
idiom("max dim values indices")(lambda L: tuple(_m(L).max(dim=1)))
idiom("max dim .values")(lambda L: _m(L).max(dim=0).values)
idiom("max positional dim [0]")(lambda L: _m(L).max(1)[0])
idiom("max dim indices")(lambda L: _m(L).max(1).indices)
idiom("min dim keepdim")(lambda L: tuple(_m(L).min(dim=1, keepdim=True)))
idiom("torch.max of two tensors")(lambda L: L.max(_m(L), L.zeros(2, 3)))
idiom("amax")(lambda L: L.amax(_m(L), dim=1))
idiom("amin")(lambda L: _m(L).amin(dim=0))
idiom("argmax")(lambda L: _m(L).argmax())
idiom("argmax dim")(lambda L: L.argmax(_m(L), dim=1))
idiom("argmin keepdim")(lambda L: _m(L).argmin(dim=0, keepdim=True))
idiom("prod")(lambda L: L.prod(_m(L)))
idiom("prod dim")(lambda L: _m(L).prod(dim=1))
idiom("var unbiased")(lambda L: _m(L).var())
idiom("var dim")(lambda L: _m(L).var(dim=1))
idiom("var correction=0")(lambda L: L.var(_m(L), dim=0, correction=0))
idiom("var unbiased=False")(lambda L: _m(L).var(unbiased=False))
idiom("std")(lambda L: _m(L).std())
idiom("std dim keepdim")(lambda L: _m(L).std(dim=0, keepdim=True))
idiom("norm")(lambda L: _m(L).norm())
idiom("norm p=1 dim")(lambda L: _m(L).norm(p=1, dim=1))
idiom("torch.norm")(lambda L: L.norm(_v(L)))
idiom("torch.norm p dim")(lambda L: L.norm(_m(L), p=1, dim=0))
idiom("linalg.norm")(lambda L: L.linalg.norm(_m(L)))
idiom("linalg.vector_norm ord inf")(lambda L: L.linalg.vector_norm(_m(L), ord=float("inf"), dim=1))
idiom("linalg.matrix_norm fro")(lambda L: L.linalg.matrix_norm(_m(L)))
idiom("logsumexp")(lambda L: L.logsumexp(_m(L), dim=1))
idiom("logsumexp keepdim")(lambda L: _m(L).logsumexp(dim=0, keepdim=True))
idiom("softmax dim")(lambda L: L.softmax(_m(L), dim=1))
idiom("softmax method")(lambda L: _m(L).softmax(dim=0))
idiom("log_softmax")(lambda L: L.log_softmax(_m(L), dim=-1))
idiom("cumsum")(lambda L: L.cumsum(_m(L), dim=1))
idiom("sort")(lambda L: tuple(L.sort(_v(L))))
idiom("sort descending")(lambda L: _v(L).sort(descending=True).values)
idiom("argsort")(lambda L: L.argsort(_v(L)))
idiom("topk")(lambda L: tuple(L.topk(_v(L), 2)))

# --- shapes ---------------------------------------------------------------------------------
idiom("reshape varargs")(lambda L: _m(L).reshape(3, 2))
idiom("reshape tuple")(lambda L: _m(L).reshape((3, 2)))
idiom("reshape -1")(lambda L: _m(L).reshape(-1))
idiom("view")(lambda L: _m(L).view(3, 2))
idiom("view -1")(lambda L: _m(L).view(-1, 2))
idiom("view_as")(lambda L: L.arange(6).view_as(_m(L)))
idiom("torch.reshape")(lambda L: L.reshape(_m(L), (6,)))
idiom("transpose two dims")(lambda L: _m(L).transpose(0, 1))
idiom("transpose 3-D")(lambda L: L.arange(24).reshape(2, 3, 4).transpose(0, 2))
idiom("torch.transpose")(lambda L: L.transpose(_m(L), 0, 1))
idiom("transpose negative dims")(lambda L: L.arange(24).reshape(2, 3, 4).transpose(-1, -2))
idiom("permute varargs")(lambda L: L.arange(24).reshape(2, 3, 4).permute(2, 0, 1))
idiom("permute tuple")(lambda L: L.arange(24).reshape(2, 3, 4).permute((1, 2, 0)))
idiom("torch.permute")(lambda L: L.permute(L.arange(6).reshape(2, 3), (1, 0)))
idiom(".T")(lambda L: _m(L).T)
idiom(".mT")(lambda L: L.arange(12).reshape(2, 2, 3).mT)
idiom("t()")(lambda L: _m(L).t())
idiom("t() of 1-D")(lambda L: _v(L).t())
idiom("unsqueeze")(lambda L: _v(L).unsqueeze(0))
idiom("unsqueeze -1")(lambda L: L.unsqueeze(_v(L), -1))
idiom("squeeze")(lambda L: L.zeros(1, 3, 1).squeeze())
idiom("squeeze dim")(lambda L: L.zeros(1, 3, 1).squeeze(0))
idiom("squeeze non-1 dim is a no-op")(lambda L: L.zeros(2, 3).squeeze(0))
idiom("flatten")(lambda L: L.arange(24).reshape(2, 3, 4).flatten())
idiom("flatten start_dim")(lambda L: L.arange(24).reshape(2, 3, 4).flatten(1))
idiom("torch.flatten range")(lambda L: L.flatten(L.arange(24).reshape(2, 3, 4), 0, 1))
idiom("expand")(lambda L: L.tensor([[1.0], [2.0]]).expand(2, 3))
idiom("expand -1")(lambda L: L.tensor([[1.0], [2.0]]).expand(-1, 4))
idiom("expand new dim")(lambda L: L.tensor([1.0, 2.0]).expand(3, 2))
idiom("expand_as")(lambda L: L.tensor([[1.0], [2.0]]).expand_as(_m(L)))
idiom("repeat")(lambda L: L.tensor([1.0, 2.0]).repeat(3))
idiom("repeat 2-D")(lambda L: _m(L).repeat(2, 1))
idiom("repeat adds dims")(lambda L: L.tensor([1.0, 2.0]).repeat(2, 2))
idiom("cat")(lambda L: L.cat([_m(L), _m(L)]))
idiom("cat dim")(lambda L: L.cat([_m(L), _m(L)], dim=1))
idiom("cat tuple")(lambda L: L.cat((_v(L), _v(L))))
idiom("concat alias")(lambda L: L.concat([_v(L), _v(L)]))
idiom("stack")(lambda L: L.stack([_v(L), _v(L)]))
idiom("stack dim")(lambda L: L.stack([_v(L), _v(L)], dim=1))
idiom("hstack vstack")(lambda L: (L.hstack([_v(L), _v(L)]), L.vstack([_v(L), _v(L)])))
idiom("chunk")(lambda L: L.arange(10).chunk(3))
idiom("torch.chunk dim")(lambda L: L.chunk(L.arange(12).reshape(2, 6), 2, dim=1))
idiom("split size")(lambda L: L.arange(10).split(4))
idiom("split sizes")(lambda L: L.split(L.arange(10), [2, 3, 5]))
idiom("unbind")(lambda L: L.unbind(_m(L)))
idiom("flip")(lambda L: L.flip(_m(L), dims=[1]))
idiom("roll")(lambda L: L.roll(_v(L), 1))
idiom("gather")(lambda L: L.gather(_m(L), 1, L.tensor([[0, 0], [2, 1]])))
idiom("take_along_dim")(lambda L: L.take_along_dim(_m(L), L.tensor([[2], [0]]), dim=1))
idiom("tril triu")(lambda L: (L.tril(L.ones(3, 3)), L.triu(L.ones(3, 3), diagonal=1)))
idiom("diag")(lambda L: (L.diag(L.tensor([1.0, 2.0])), L.diag(L.arange(9.0).reshape(3, 3))))
idiom("clone")(lambda L: _m(L).clone())
idiom("contiguous")(lambda L: _m(L).t().contiguous())

# --- linear algebra -----------------------------------------------------------------------
idiom("matmul")(lambda L: L.matmul(_m(L), _m(L).T))
idiom("mm")(lambda L: L.mm(_m(L), _m(L).t()))
idiom("mv")(lambda L: L.mv(_m(L), L.tensor([1.0, 0.0, -1.0])))
idiom("bmm")(lambda L: L.bmm(L.ones(2, 2, 3), L.ones(2, 3, 4)))
idiom("dot")(lambda L: L.dot(_v(L), _v(L)))
idiom("outer")(lambda L: L.outer(_v(L), L.tensor([1.0, 2.0])))
idiom("einsum matmul")(lambda L: L.einsum("ij,kj->ik", _m(L), _m(L)))
idiom("einsum batched")(lambda L: L.einsum("bij,bjk->bik", L.ones(2, 2, 3), L.ones(2, 3, 2)))
idiom("einsum trace-free sum")(lambda L: L.einsum("ij->", _m(L)))
idiom("einsum ellipsis")(lambda L: L.einsum("...ij,j->...i", L.ones(2, 2, 3), L.tensor([1.0, 2.0, 3.0])))
idiom("linalg.inv")(lambda L: L.linalg.inv(L.tensor([[2.0, 1.0], [1.0, 3.0]])))
idiom("linalg.det")(lambda L: L.linalg.det(L.tensor([[2.0, 1.0], [1.0, 3.0]])))
idiom("linalg.solve")(lambda L: L.linalg.solve(L.tensor([[2.0, 1.0], [1.0, 3.0]]), L.tensor([1.0, 2.0])))
idiom("trace method")(lambda L: L.arange(9.0).reshape(3, 3).trace())

# --- in-place ---------------------------------------------------------------------------------


def _inplace(L: Any, op: Callable[[Any], Any]) -> Any:
    x = _m(L)
    op(x)
    return x


idiom("+= in place")(lambda L: _inplace(L, lambda x: x.__iadd__(1.0)))
idiom("add_")(lambda L: _inplace(L, lambda x: x.add_(1.0)))
idiom("add_ alpha")(lambda L: _inplace(L, lambda x: x.add_(L.ones(3), alpha=-2.0)))
idiom("sub_")(lambda L: _inplace(L, lambda x: x.sub_(0.5)))
idiom("mul_")(lambda L: _inplace(L, lambda x: x.mul_(2)))
idiom("div_")(lambda L: _inplace(L, lambda x: x.div_(2)))
idiom("pow_")(lambda L: _inplace(L, lambda x: x.pow_(2)))
idiom("zero_")(lambda L: _inplace(L, lambda x: x.zero_()))
idiom("fill_")(lambda L: _inplace(L, lambda x: x.fill_(3.0)))
idiom("clamp_")(lambda L: _inplace(L, lambda x: x.clamp_(-1.0, 1.0)))
idiom("copy_")(lambda L: _inplace(L, lambda x: x.copy_(L.ones(2, 3))))
idiom("copy_ broadcast")(lambda L: _inplace(L, lambda x: x.copy_(L.tensor([1.0, 2.0, 3.0]))))
idiom("masked_fill_")(lambda L: _inplace(L, lambda x: x.masked_fill_(x < 0, 0.0)))
idiom("exp_ relu_ neg_ abs_")(lambda L: _inplace(L, lambda x: x.exp_().neg_().abs_().relu_()))
idiom("in-place on a view writes the base")(lambda L: _inplace(L, lambda x: x[0].mul_(10)))
idiom("int += 0.5 refused", "raises", "cannot be cast")(lambda L: _inplace(L, lambda x: x.long().add_(0.5)))


@idiom("in-place keeps identity")
def _identity(L: Any) -> Any:
    x = _m(L)
    before = id(x)
    x += 1
    return id(x) == before


@idiom("leaf in-place with grad refused", "raises", "no_grad")
def _leaf_refused(L: Any) -> Any:
    w = _w(L)
    w += 1
    return w


@idiom("uniform_ under no_grad", "shape")
def _uniform(L: Any) -> Any:
    w = L.zeros(3, requires_grad=True)
    with L.no_grad():
        w.uniform_(-1, 1)
    return w.detach()


@idiom("normal_", "shape")
def _normal(L: Any) -> Any:
    return L.zeros(2, 2).normal_(0.0, 0.02)


# --- autograd ---------------------------------------------------------------------------------
@idiom("backward of a scalar")
def _bw(L: Any) -> Any:
    x = L.tensor(2.0, requires_grad=True)
    y = x**2 + 3 * x
    y.backward()
    return x.grad


@idiom("tutorial: Q = 3a^3 - b^2 with external grad")
def _tut(L: Any) -> Any:
    a = L.tensor([2.0, 3.0], requires_grad=True)
    b = L.tensor([6.0, 4.0], requires_grad=True)
    Q = 3 * a**3 - b**2
    Q.backward(gradient=L.tensor([1.0, 1.0]))
    return a.grad, b.grad, (9 * a**2 == a.grad)


@idiom("grads accumulate")
def _acc(L: Any) -> Any:
    x = L.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    (x * x).sum().backward()
    return x.grad


@idiom("grad.zero_()")
def _zero(L: Any) -> Any:
    x = L.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    x.grad.zero_()
    return x.grad


@idiom("grad = None")
def _none(L: Any) -> Any:
    x = L.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    x.grad = None
    return x.grad is None


@idiom("p.grad = 0 refused", "raises", "grad = None")
def _grad0(L: Any) -> Any:
    x = L.tensor([1.0, 2.0], requires_grad=True)
    x.grad = 0
    return x


@idiom("grad of wrong shape refused", "raises", "shape")
def _grad_shape(L: Any) -> Any:
    x = L.tensor([1.0, 2.0], requires_grad=True)
    x.grad = L.zeros(3)
    return x


@idiom("manual SGD loop on parameters")
def _sgd(L: Any) -> Any:
    w = L.tensor([[0.5, -0.5], [0.25, 1.0]], requires_grad=True)
    b = L.zeros(2, requires_grad=True)
    x = L.tensor([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]])
    y = L.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    losses = []
    for _ in range(3):
        loss = ((x @ w + b - y) ** 2).mean()
        losses.append(loss.item())
        loss.backward()
        with L.no_grad():
            for p in (w, b):
                p -= 0.1 * p.grad
                p.grad.zero_()
    return losses, w, w.requires_grad


@idiom("p.data -= lr * p.grad")
def _data_update(L: Any) -> Any:
    p = L.tensor(2.0, requires_grad=True)
    (p * p).backward()
    p.data -= 0.25 * p.grad
    return p.detach(), p.requires_grad


@idiom("old idioms on .data: p.grad.data.zero_(), p.data.add_(g, alpha=-lr)")
def _old_data(L: Any) -> Any:
    p = L.tensor([1.0, 2.0], requires_grad=True)
    (p * p).sum().backward()
    p.data.add_(p.grad.data, alpha=-0.25)
    p.data.mul_(2).clamp_(max=1.5)
    p.grad.data.zero_()
    return p.detach(), p.grad


@idiom("w.data.normal_ / fill_ / copy_", "shape")
def _old_init(L: Any) -> Any:
    w = L.zeros(2, 3, requires_grad=True)
    w.data.normal_(0, 0.02)
    b = L.zeros(3, requires_grad=True)
    b.data.fill_(0.1)
    c = L.zeros(3, requires_grad=True)
    c.data.copy_(L.ones(3))
    return w.detach(), b.detach(), c.detach()


@idiom("no_grad result does not require grad")
def _nograd(L: Any) -> Any:
    w = _w(L)
    with L.no_grad():
        y = w * 2
    return y.requires_grad


@idiom("no_grad as decorator")
def _nograd_deco(L: Any) -> Any:
    @L.no_grad()
    def f(t: Any) -> Any:
        return t * 2

    return f(_w(L)).requires_grad


@idiom("enable_grad inside no_grad")
def _enable(L: Any) -> Any:
    with L.no_grad():
        with L.enable_grad():
            y = _w(L) * 2
    return y.requires_grad


@idiom("inference_mode")
def _inference(L: Any) -> Any:
    with L.inference_mode():
        y = _w(L) * 2
    return y.requires_grad


@idiom("is_grad_enabled")
def _is_enabled(L: Any) -> Any:
    with L.no_grad():
        off = L.is_grad_enabled()
    return off, L.is_grad_enabled()


@idiom("set_grad_enabled context")
def _set_enabled(L: Any) -> Any:
    with L.set_grad_enabled(False):
        off = (_w(L) * 2).requires_grad
    return off, (_w(L) * 2).requires_grad


@idiom("set_grad_enabled call")
def _set_enabled_call(L: Any) -> Any:
    L.set_grad_enabled(False)
    off = (_w(L) * 2).requires_grad
    L.set_grad_enabled(True)
    return off, L.is_grad_enabled()


@idiom("detach")
def _detach(L: Any) -> Any:
    y = (_w(L) * 2).detach()
    return y.requires_grad, y


@idiom("requires_grad_()")
def _rg(L: Any) -> Any:
    x = L.ones(2).requires_grad_()
    (x * 3).sum().backward()
    return x.grad


@idiom("retain_grad")
def _retain(L: Any) -> Any:
    x = L.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.retain_grad()
    (h * h).sum().backward()
    return h.grad, x.grad


@idiom("register_hook scales the gradient")
def _hook(L: Any) -> Any:
    x = L.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.register_hook(lambda g: g * 10)
    h.sum().backward()
    return x.grad


@idiom("register_hook on a leaf")
def _leaf_hook(L: Any) -> Any:
    x = L.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(g.sum().item()))
    handle = x.register_hook(lambda g: g * 2)
    (x * 3).sum().backward()
    handle.remove()
    (x * 3).sum().backward()
    return x.grad, seen


@idiom("autograd.grad create_graph second derivative")
def _second(L: Any) -> Any:
    x = L.tensor(1.5, requires_grad=True)
    y = x**3
    (g,) = L.autograd.grad(y, x, create_graph=True)
    (h,) = L.autograd.grad(g, x)
    return g.detach(), h


@idiom("backward(retain_graph=True) twice")
def _retain_graph(L: Any) -> Any:
    x = L.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    return x.grad


@idiom("gradient of mean over batch")
def _mean_grad(L: Any) -> Any:
    return _grad_of(L, lambda a: (a * a).mean(), [[1.0, 2.0], [3.0, 4.0]])


@idiom("gradient through max(dim).values")
def _maxdim_grad(L: Any) -> Any:
    return _grad_of(L, lambda a: a.max(dim=1).values.sum(), [[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]])


@idiom("gradient through softmax and log")
def _sm_grad(L: Any) -> Any:
    return _grad_of(L, lambda a: (L.softmax(a, dim=1)[:, 0]).log().sum(), [[1.0, 2.0, 0.5], [0.0, -1.0, 2.0]])


@idiom("gradient through norm at zero is zero")
def _norm0(L: Any) -> Any:
    return _grad_of(L, lambda a: a.norm(), [0.0, 0.0])


@idiom("gradient through std")
def _std_grad(L: Any) -> Any:
    return _grad_of(L, lambda a: a.std(), [1.0, 2.0, 4.0])


@idiom("gradient through einsum")
def _ein_grad(L: Any) -> Any:
    return _grad_of(L, lambda a, b: L.einsum("ij,j->i", a, b).sum(), [[1.0, 2.0], [3.0, 4.0]], [0.5, -1.0])


@idiom("gradient through cat and split")
def _cat_grad(L: Any) -> Any:
    def f(a: Any, b: Any) -> Any:
        c = L.cat([a, b * 2])
        p, q = c.split(2)
        return (p * q).sum()

    return _grad_of(L, f, [1.0, 2.0], [3.0, 4.0])


@idiom("gradient through sign is zero")
def _sign_grad(L: Any) -> Any:
    return _grad_of(L, lambda a: (L.sign(a) * a).sum(), [-1.0, 0.0, 2.0])


@idiom("gradient through expand and repeat")
def _expand_grad(L: Any) -> Any:
    return _grad_of(L, lambda a: (a.expand(3, 2) * a.repeat(3, 1)).sum(), [[1.0, 2.0]])


@idiom("gradient through masked_fill and where")
def _mask_grad(L: Any) -> Any:
    return _grad_of(L, lambda a: L.where(a > 0, a, a * 0.1).masked_fill(a > 2, 0.0).sum(), [-1.0, 1.0, 3.0])


@idiom("gradient through setitem on a non-leaf")
def _setitem_grad(L: Any) -> Any:
    def f(a: Any) -> Any:
        h = a * 2
        h[0] = a[1] * 5
        return (h * h).sum()

    return _grad_of(L, f, [1.0, 2.0, 3.0])


@idiom("gradient through an in-place op on a non-leaf")
def _inplace_grad(L: Any) -> Any:
    def f(a: Any) -> Any:
        h = a * 2
        h.mul_(a)
        h += 1
        return h.sum()

    return _grad_of(L, f, [1.0, 2.0])


@idiom("gradient of 0 ** y (masked rule) is finite")
def _pow0(L: Any) -> Any:
    return _grad_of(L, lambda y: (L.tensor(0.0) ** y).sum(), [0.5, 2.0])


@idiom("write into .data of a saved result raises (torch: a stale gradient)", "raises", "modified in place")
def _stale(L: Any) -> Any:
    x = L.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    y.data[0] = 5.0
    y.sum().backward()
    return x.grad


@idiom("np.exp on a tensor names the way", "raises", "cr.exp")
def _np_exp(L: Any) -> Any:
    import numpy as np

    t = L.tensor([1.0, 2.0], requires_grad=True)
    return np.exp(t)


# --- nn / optim / data (the other part of issue 12; counted separately) --------------------
def _nn(name: str, fn: Callable[[Any], Any], kind: str = "shape") -> None:
    IDIOMS.append(Idiom(name, fn, kind, "", "nn"))


_nn("nn.Linear forward", lambda L: L.nn.Linear(3, 2)(L.ones(4, 3)))
_nn("nn.Sequential", lambda L: L.nn.Sequential(L.nn.Linear(3, 4), L.nn.ReLU(), L.nn.Linear(4, 1))(L.ones(2, 3)))
_nn("nn.ReLU", lambda L: L.nn.ReLU()(_m(L)), "same")
_nn("nn.Tanh", lambda L: L.nn.Tanh()(_m(L)), "same")
_nn("nn.Sigmoid", lambda L: L.nn.Sigmoid()(_m(L)), "same")
_nn("nn.LeakyReLU", lambda L: L.nn.LeakyReLU(0.1)(_m(L)), "same")
_nn("nn.GELU", lambda L: L.nn.GELU()(_m(L)), "same")
_nn("nn.Softmax", lambda L: L.nn.Softmax(dim=1)(_m(L)), "same")
_nn("nn.Flatten", lambda L: L.nn.Flatten()(L.ones(2, 3, 4)), "same")
_nn("nn.MSELoss", lambda L: L.nn.MSELoss()(_m(L), L.zeros(2, 3)), "same")
_nn("nn.CrossEntropyLoss", lambda L: L.nn.CrossEntropyLoss()(_m(L), L.tensor([0, 2])), "same")
_nn("F.relu", lambda L: L.nn.functional.relu(_m(L)), "same")
_nn("F.softmax", lambda L: L.nn.functional.softmax(_m(L), dim=1), "same")
_nn("F.cross_entropy", lambda L: L.nn.functional.cross_entropy(_m(L), L.tensor([1, 0])), "same")
_nn("F.mse_loss", lambda L: L.nn.functional.mse_loss(_m(L), L.zeros(2, 3)), "same")
_nn("nn.ModuleList", lambda L: len(list(L.nn.ModuleList([L.nn.Linear(2, 2)]).parameters())), "same")
_nn("nn.Embedding", lambda L: L.nn.Embedding(10, 3)(L.tensor([1, 2])))
_nn("nn.Conv2d", lambda L: L.nn.Conv2d(1, 2, 3)(L.ones(1, 1, 5, 5)))
_nn("nn.MaxPool2d", lambda L: L.nn.MaxPool2d(2)(L.ones(1, 1, 4, 4)), "same")
_nn("nn.BatchNorm1d", lambda L: L.nn.BatchNorm1d(3)(_m(L)), "same")
_nn("optim.SGD step", lambda L: type(L.optim.SGD(L.nn.Linear(2, 1).parameters(), lr=0.1)).__name__, "same")
_nn("optim.Adam", lambda L: type(L.optim.Adam(L.nn.Linear(2, 1).parameters(), lr=0.1)).__name__, "same")
_nn("optim.RMSprop", lambda L: type(L.optim.RMSprop(L.nn.Linear(2, 1).parameters(), lr=0.1)).__name__, "same")
_nn("clip_grad_norm_", lambda L: L.nn.utils.clip_grad_norm_([L.ones(2, requires_grad=True)], 1.0), "same")
_nn("model.parameters() count", lambda L: len(list(L.nn.Linear(3, 2).parameters())), "same")
_nn("state_dict keys", lambda L: sorted(L.nn.Linear(3, 2).state_dict().keys()), "same")
_nn("train() / eval()", lambda L: L.nn.Linear(3, 2).eval().training, "same")
_nn("zero_grad", lambda L: L.optim.SGD([L.ones(2, requires_grad=True)], lr=0.1).zero_grad(), "same")
