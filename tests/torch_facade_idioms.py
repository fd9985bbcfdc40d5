"""Idioms for ``import chainrule.torch as torch``: each a function of the module ``T`` (real torch or
chainrule.torch), written in torch's spelling; tests/test_torch_facade.py runs each in both and compares
values, shapes and dtypes (and gradients where the idiom returns them).  No default dtype is switched:
these check that chainrule.torch has torch's defaults by itself."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any

import numpy as np

FACADE: list[tuple[str, Callable[[Any], Any]]] = []


def idiom(name: str) -> Callable:
    def register(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        FACADE.append((name, fn))
        return fn

    return register


def many(prefix: str, cases: dict[str, Callable[[Any], Any]]) -> None:
    for k, fn in cases.items():
        FACADE.append((f"{prefix}_{k}", fn))


def M(T: Any) -> Any:
    return T.tensor([[1.0, -2.0, 3.0], [4.0, 5.0, -6.0]])


def V(T: Any) -> Any:
    return T.tensor([0.5, -1.5, 2.0, 0.0])


def I(T: Any) -> Any:  # noqa: E743
    return T.tensor([[3, 1, 2], [0, 2, 2]])


def P(T: Any) -> Any:
    return T.tensor([[0.2, 1.3, -0.7], [2.1, -0.4, 0.9], [1.1, 0.6, -1.8], [0.3, -2.2, 0.4]], requires_grad=True)


def grad_of(T: Any, make: Callable, f: Callable) -> Any:
    """f's value and the gradient of f(x).sum() (weighted, so the gradient is not all ones)."""
    x = make(T)
    x = x.detach().requires_grad_(True) if not x.requires_grad else x
    y = f(T, x)
    w = T.arange(y.numel(), dtype=y.dtype).reshape(y.shape) / 7 + 0.5
    (y * w).sum().backward()
    return y, x.grad


# --- creation and default dtypes ------------------------------------------------------------------------------
many(
    "create",
    {
        "float_list": lambda T: T.tensor([1.0, 2.5]),
        "float_scalar": lambda T: T.tensor(3.0),
        "int_list": lambda T: T.tensor([1, 2]),
        "bool_list": lambda T: T.tensor([True, False]),
        "mixed_list": lambda T: T.tensor([1, 2.5]),
        "nested": lambda T: T.tensor([[1.0, 2.0], [3.0, 4.0]]),
        "numpy_f64": lambda T: T.tensor(np.array([1.5, 2.5])),
        "numpy_f32": lambda T: T.tensor(np.array([1.5, 2.5], np.float32)),
        "numpy_int32": lambda T: T.tensor(np.array([1, 2], np.int32)),
        "from_numpy": lambda T: T.from_numpy(np.arange(4.0)),
        "as_tensor": lambda T: T.as_tensor([1.0, 2.0]),
        "dtype_arg": lambda T: T.tensor([1, 2], dtype=T.float64),
        "dtype_float_alias": lambda T: T.tensor([1, 2], dtype=T.float),
        "dtype_long_alias": lambda T: T.tensor([1.7, 2.2], dtype=T.long),
        "zeros": lambda T: T.zeros(2, 3),
        "zeros_tuple": lambda T: T.zeros((2, 3)),
        "zeros_int": lambda T: T.zeros(2, dtype=T.int64),
        "ones": lambda T: T.ones(3),
        "full_float": lambda T: T.full((2, 2), 1.5),
        "full_int": lambda T: T.full((2,), 3),
        "full_bool": lambda T: T.full((2,), True),
        "arange_int": lambda T: T.arange(5),
        "arange_float_step": lambda T: T.arange(0, 1, 0.25),
        "arange_float_start": lambda T: T.arange(1.0, 4.0),
        "arange_dtype": lambda T: T.arange(3, dtype=T.float32),
        "linspace": lambda T: T.linspace(0, 1, 5),
        "logspace": lambda T: T.logspace(0, 2, 3),
        "eye": lambda T: T.eye(3),
        "eye_rect": lambda T: T.eye(2, 3),
        "empty_shape": lambda T: T.empty(2, 3).shape,
        "zeros_like_int": lambda T: T.zeros_like(I(T)),
        "ones_like": lambda T: T.ones_like(M(T)),
        "full_like": lambda T: T.full_like(M(T), 7),
        "empty_like_shape": lambda T: T.empty_like(M(T)).shape,
        "rand_shape_dtype": lambda T: (T.rand(2, 3).shape, T.rand(2, 3).dtype),
        "randn_shape_dtype": lambda T: (T.randn(4).shape, T.randn(4).dtype),
        "randint_dtype": lambda T: (T.randint(0, 10, (3,)).dtype, T.randint(5, (2, 2)).shape),
        "randperm_sorted": lambda T: T.randperm(6).sort().values,
        "rand_like_dtype": lambda T: T.rand_like(M(T)).dtype,
        "requires_grad_float32": lambda T: T.tensor([1.0], requires_grad=True).dtype,
        "default_dtype": lambda T: T.get_default_dtype(),
        "item_type": lambda T: type(T.tensor(2.5).item()).__name__,
        "item_value": lambda T: T.tensor([2.5]).item(),
        "tolist": lambda T: T.tensor([[1.5, 2.0]]).tolist(),
    },
)

# --- dtypes, devices and small helpers ------------------------------------------------------------------------
many(
    "meta",
    {
        "float_conv": lambda T: I(T).float(),
        "double_conv": lambda T: M(T).double(),
        "long_conv": lambda T: M(T).long(),
        "int_conv": lambda T: M(T).int(),
        "bool_conv": lambda T: V(T).bool(),
        "half_conv": lambda T: M(T).half(),
        "to_dtype": lambda T: M(T).to(T.float64),
        "to_cpu": lambda T: M(T).to("cpu"),
        "to_device_obj": lambda T: M(T).to(T.device("cpu")),
        "cpu": lambda T: M(T).cpu(),
        "device_str": lambda T: str(T.device("cpu")),
        "device_eq": lambda T: T.device("cpu") == T.device("cpu"),
        "device_type": lambda T: T.device("cuda:1").type,
        "device_index": lambda T: T.device("cuda:1").index,
        "cuda_available": lambda T: T.cuda.is_available(),
        "cuda_count": lambda T: T.cuda.device_count(),
        "tensor_device_type": lambda T: M(T).device.type,
        "is_tensor": lambda T: (T.is_tensor(M(T)), T.is_tensor([1.0])),
        "numel": lambda T: T.numel(M(T)),
        "size_type": lambda T: tuple(M(T).size()),
        "size_dim": lambda T: M(T).size(1),
        "Size_eq": lambda T: T.Size([2, 3]) == M(T).shape,
        "finfo_eps": lambda T: T.finfo(T.float32).eps,
        "finfo_max": lambda T: T.finfo(T.float32).max,
        "finfo_tiny": lambda T: T.finfo(T.float64).tiny,
        "finfo_default": lambda T: T.finfo().bits,
        "iinfo_max": lambda T: T.iinfo(T.int64).max,
        "iinfo_min": lambda T: T.iinfo(T.int32).min,
        "is_floating_point": lambda T: (T.is_floating_point(M(T)), T.is_floating_point(I(T))),
        "dtype_is_float": lambda T: M(T).dtype == T.float32,
        "dtype_long_eq": lambda T: I(T).dtype == T.long,
        "element_size": lambda T: M(T).element_size(),
        "dim": lambda T: M(T).dim(),
        "ndim": lambda T: M(T).ndim,
        "is_leaf": lambda T: (M(T).is_leaf, (P(T) * 2).is_leaf),
        "requires_grad_": lambda T: M(T).requires_grad_().requires_grad,
    },
)

# --- promotion (torch's rules) --------------------------------------------------------------------------------
many(
    "promote",
    {
        "f32_plus_pyfloat": lambda T: M(T) + 0.5,
        "f32_times_pyint": lambda T: M(T) * 2,
        "int_plus_pyint": lambda T: I(T) + 2,
        "int_times_f32": lambda T: I(T) * M(T),
        "f32_plus_f64": lambda T: M(T) + M(T).double(),
        "bool_plus_int": lambda T: T.tensor([True, False]) + T.tensor([1, 2]),
        "int_div_int": lambda T: T.tensor([3, 4]) / T.tensor([2.0, 8.0]),
        "f32_0d_f64": lambda T: M(T) * T.tensor(2.0, dtype=T.float64),
        "int_0d_f32": lambda T: I(T) + T.tensor(0.5),
        "comparison": lambda T: M(T) > 0,
        "where_mixed": lambda T: T.where(M(T) > 0, M(T), T.zeros(2, 3)),
    },
)

# --- %, //, fmod ---------------------------------------------------------------------------------------------
many(
    "mod",
    {
        "int_mod": lambda T: T.tensor([7, -7, 5]) % 3,
        "int_mod_neg": lambda T: T.tensor([7, -7, 5]) % -3,
        "float_mod": lambda T: T.tensor([7.5, -7.5, 2.25]) % 2.0,
        "float_mod_tensor": lambda T: M(T) % T.tensor([1.5, 2.0, 4.0]),
        "rmod": lambda T: 10 % T.tensor([3, 4]),
        "int_floordiv": lambda T: T.tensor([7, -7, 5]) // 2,
        "float_floordiv": lambda T: T.tensor([7.5, -7.5]) // 2.0,
        "rfloordiv": lambda T: 7 // T.tensor([2, -3]),
        "fmod": lambda T: T.fmod(T.tensor([7.5, -7.5, 3.0]), 2.0),
        "fmod_int": lambda T: T.fmod(T.tensor([7, -7]), 3),
        "remainder": lambda T: T.remainder(T.tensor([-3.0, 3.0]), 2.0),
        "floor_divide": lambda T: T.floor_divide(T.tensor([5.0, -5.0]), 2.0),
        "mod_grad": lambda T: grad_of(T, M, lambda T, x: x % 2.5),
        "fmod_grad": lambda T: grad_of(T, M, lambda T, x: T.fmod(x, 2.5)),
        "mod_grad_divisor": lambda T: grad_of(
            T, lambda T: T.tensor([1.5, 2.5, 4.0]), lambda T, d: T.tensor([7.0, -7.0, 9.0]) % d
        ),
        "imod": lambda T: (lambda a: (a.__imod__(3), a)[1])(T.tensor([7, 8, 9])),
    },
)

# --- indexing, selecting, scattering -------------------------------------------------------------------------
many(
    "index",
    {
        "index_select_0": lambda T: T.index_select(M(T), 0, T.tensor([1, 0, 1])),
        "index_select_1": lambda T: M(T).index_select(1, T.tensor([2, 0])),
        "index_select_grad": lambda T: grad_of(T, P, lambda T, x: x.index_select(0, T.tensor([3, 0, 3]))),
        "masked_select": lambda T: T.masked_select(M(T), M(T) > 0),
        "masked_select_bcast": lambda T: M(T).masked_select(T.tensor([True, False, True])),
        "masked_select_grad": lambda T: grad_of(T, P, lambda T, x: x.masked_select(x > 0)),
        "nonzero": lambda T: T.nonzero(V(T)),
        "nonzero_2d": lambda T: (M(T) > 0).nonzero(),
        "nonzero_tuple": lambda T: T.nonzero(M(T) > 0, as_tuple=True),
        "argwhere": lambda T: T.argwhere(M(T) < 0),
        "where_one_arg": lambda T: T.where(M(T) > 2),
        "scatter": lambda T: T.zeros(3, 4).scatter(1, T.tensor([[0, 2], [1, 3], [3, 0]]), T.ones(3, 2)),
        "scatter_value": lambda T: T.zeros(2, 3).scatter(0, T.tensor([[1, 0, 1]]), 5.0),
        "scatter_": lambda T: T.zeros(2, 3).scatter_(1, T.tensor([[2], [0]]), T.tensor([[7.0], [8.0]])),
        "scatter_add": lambda T: T.zeros(5).scatter_add(0, T.tensor([0, 1, 0, 4]), T.tensor([1.0, 2.0, 3.0, 4.0])),
        "scatter_add_": lambda T: T.ones(2, 3).scatter_add_(
            1, T.tensor([[0, 0], [2, 1]]), T.tensor([[1.0, 2.0], [3.0, 4.0]])
        ),
        "scatter_add_grad": lambda T: grad_of(
            T,
            lambda T: T.tensor([1.0, 2.0, 3.0, 4.0]),
            lambda T, s: T.zeros(3).scatter_add(0, T.tensor([0, 2, 0, 1]), s),
        ),
        "scatter_grad_self": lambda T: grad_of(
            T, lambda T: T.ones(2, 3), lambda T, x: x.scatter(1, T.tensor([[2], [0]]), T.tensor([[7.0], [8.0]]))
        ),
        "index_add": lambda T: T.zeros(4, 2).index_add(0, T.tensor([0, 2, 0]), T.ones(3, 2)),
        "index_add_": lambda T: T.ones(3).index_add_(0, T.tensor([2, 2]), T.tensor([1.0, 5.0])),
        "index_add_alpha": lambda T: T.zeros(3).index_add(0, T.tensor([1]), T.tensor([2.0]), alpha=3),
        "index_add_grad": lambda T: grad_of(
            T,
            lambda T: T.tensor([[1.0, 2.0], [3.0, 4.0]]),
            lambda T, s: T.zeros(3, 2).index_add(0, T.tensor([2, 2]), s),
        ),
        "index_fill": lambda T: M(T).index_fill(1, T.tensor([0, 2]), -1.0),
        "gather": lambda T: T.gather(M(T), 1, T.tensor([[2, 0], [1, 1]])),
        "fancy_rows": lambda T: M(T)[T.tensor([1, 0, 1])],
        "bool_mask": lambda T: M(T)[M(T) > 0],
        "setitem_mask": lambda T: (lambda m: (m.__setitem__(m < 0, 0.0), m)[1])(M(T)),
        "take_along_dim": lambda T: T.take_along_dim(M(T), T.tensor([[0], [2]]), dim=1),
    },
)

# --- counting -----------------------------------------------------------------------------------------------
many(
    "count",
    {
        "unique": lambda T: T.unique(T.tensor([3, 1, 2, 3, 1])),
        "unique_float": lambda T: T.tensor([2.5, 1.0, 2.5]).unique(),
        "unique_inverse": lambda T: T.unique(T.tensor([3, 1, 3]), return_inverse=True),
        "unique_counts": lambda T: T.unique(T.tensor([3, 1, 3, 3]), return_counts=True),
        "unique_dim": lambda T: T.unique(T.tensor([[1, 2], [1, 2], [0, 1]]), dim=0),
        "bincount": lambda T: T.bincount(T.tensor([0, 1, 1, 3])),
        "bincount_minlength": lambda T: T.tensor([1, 1]).bincount(minlength=4),
        "bincount_weights": lambda T: T.bincount(T.tensor([0, 1, 1]), weights=T.tensor([0.5, 1.0, 2.0])),
        "histc": lambda T: T.histc(T.tensor([1.0, 2.0, 1.0, 4.0]), bins=4, min=0, max=4),
        "histc_auto": lambda T: T.histc(T.tensor([1.0, 2.0, 1.0, 4.0]), bins=3),
        "searchsorted": lambda T: T.searchsorted(T.tensor([1.0, 3.0, 5.0]), T.tensor([0.0, 3.0, 6.0])),
        "searchsorted_right": lambda T: T.searchsorted(T.tensor([1.0, 3.0, 5.0]), T.tensor([3.0]), right=True),
        "isin": lambda T: T.isin(T.tensor([1, 2, 3]), T.tensor([2, 5])),
        "logical_and": lambda T: T.logical_and(M(T) > 0, M(T) < 4),
        "logical_or": lambda T: T.logical_or(M(T) > 4, M(T) < -4),
        "logical_xor": lambda T: T.logical_xor(M(T) > 0, M(T) > 3),
        "count_nonzero": lambda T: T.count_nonzero(V(T)),
    },
)

# --- shapes --------------------------------------------------------------------------------------------------
many(
    "shape",
    {
        "narrow": lambda T: T.narrow(M(T), 1, 1, 2),
        "narrow_method": lambda T: M(T).narrow(0, 1, 1),
        "unflatten": lambda T: T.arange(12.0).unflatten(0, (3, 4)),
        "movedim": lambda T: T.movedim(T.zeros(2, 3, 4), 0, -1).shape,
        "movedim_values": lambda T: T.arange(24).reshape(2, 3, 4).movedim((0, 1), (2, 0)),
        "moveaxis": lambda T: T.moveaxis(T.zeros(2, 3, 4), 2, 0).shape,
        "repeat_interleave": lambda T: T.repeat_interleave(T.tensor([1, 2]), 2),
        "repeat_interleave_dim": lambda T: M(T).repeat_interleave(2, dim=0),
        "repeat_interleave_tensor": lambda T: T.tensor([[1, 2], [3, 4]]).repeat_interleave(T.tensor([1, 2]), dim=0),
        "repeat_interleave_grad": lambda T: grad_of(T, P, lambda T, x: x.repeat_interleave(2, dim=1)),
        "meshgrid_ij": lambda T: T.meshgrid(T.tensor([1, 2, 3]), T.tensor([4, 5]), indexing="ij"),
        "meshgrid_xy": lambda T: T.meshgrid(T.tensor([1, 2, 3]), T.tensor([4, 5]), indexing="xy"),
        "broadcast_tensors": lambda T: T.broadcast_tensors(T.tensor([[1.0], [2.0]]), T.tensor([3.0, 4.0, 5.0])),
        "diff": lambda T: T.diff(T.tensor([1.0, 4.0, 9.0, 16.0])),
        "diff_n2": lambda T: T.tensor([1.0, 4.0, 9.0, 16.0]).diff(n=2),
        "diff_dim0": lambda T: T.diff(M(T), dim=0),
        "diff_prepend": lambda T: T.diff(T.tensor([2.0, 5.0]), prepend=T.tensor([0.0])),
        "diff_grad": lambda T: grad_of(T, P, lambda T, x: T.diff(x, dim=1)),
        "view": lambda T: M(T).view(3, 2),
        "view_infer": lambda T: M(T).view(-1),
        "flatten": lambda T: T.zeros(2, 3, 4).flatten(1).shape,
        "permute": lambda T: T.zeros(2, 3, 4).permute(2, 0, 1).shape,
        "transpose": lambda T: M(T).transpose(0, 1),
        "unsqueeze": lambda T: M(T).unsqueeze(1).shape,
        "squeeze": lambda T: T.zeros(1, 3, 1).squeeze().shape,
        "cat": lambda T: T.cat([M(T), M(T)], dim=1),
        "stack": lambda T: T.stack([V(T), V(T)]),
        "chunk": lambda T: T.arange(7).chunk(3),
        "split": lambda T: T.arange(7).split([2, 5]),
        "expand": lambda T: T.tensor([[1.0], [2.0]]).expand(2, 3),
        "repeat": lambda T: T.tensor([1, 2]).repeat(2, 2),
        "flip": lambda T: T.flip(M(T), [0, 1]),
        "tril": lambda T: T.tril(T.ones(3, 3)),
        "roll": lambda T: T.roll(T.arange(5), 2),
    },
)

# --- reductions and products ---------------------------------------------------------------------------------
many(
    "reduce",
    {
        "median_all": lambda T: T.median(T.tensor([3.0, 1.0, 4.0, 2.0])),
        "median_dim": lambda T: T.median(M(T), dim=1),
        "median_keepdim": lambda T: M(T).median(0, keepdim=True),
        "median_grad": lambda T: grad_of(T, P, lambda T, x: x.median(dim=0).values),
        "var_mean": lambda T: T.var_mean(M(T), dim=1),
        "var_mean_unbiased": lambda T: T.var_mean(M(T), unbiased=False),
        "std_mean": lambda T: T.std_mean(M(T), dim=0),
        "nanmean": lambda T: T.nanmean(T.tensor([1.0, float("nan"), 3.0])),
        "nanmean_dim": lambda T: T.tensor([[1.0, float("nan")], [2.0, 4.0]]).nanmean(dim=1),
        "nansum": lambda T: T.nansum(T.tensor([1.0, float("nan"), 3.0])),
        "addmm": lambda T: T.addmm(T.ones(2, 2), M(T), M(T).T),
        "addmm_scaled": lambda T: T.addmm(T.ones(2, 2), M(T), M(T).T, beta=0.5, alpha=2.0),
        "addmm_grad": lambda T: grad_of(T, P, lambda T, x: T.addmm(T.ones(4, 4), x, x.T, alpha=0.5)),
        "baddbmm": lambda T: T.baddbmm(T.zeros(2, 2, 2), T.ones(2, 2, 3), T.ones(2, 3, 2)),
        "sum_dim": lambda T: M(T).sum(dim=1),
        "sum_int": lambda T: I(T).sum(),
        "mean_keepdim": lambda T: M(T).mean(1, keepdim=True),
        "max_dim": lambda T: M(T).max(dim=1),
        "argmax": lambda T: M(T).argmax(),
        "prod": lambda T: M(T).prod(1),
        "cumsum": lambda T: T.cumsum(M(T), dim=1),
        "logsumexp": lambda T: T.logsumexp(M(T), dim=1),
        "norm": lambda T: T.norm(M(T)),
        "topk": lambda T: T.topk(V(T), 2),
        "sort_desc": lambda T: T.sort(V(T), descending=True),
        "einsum": lambda T: T.einsum("ij,kj->ik", M(T), M(T)),
        "matmul": lambda T: M(T) @ M(T).T,
        "bmm": lambda T: T.bmm(T.ones(2, 2, 3), T.ones(2, 3, 1)),
        "erf": lambda T: T.erf(V(T)),
    },
)


# --- autograd --------------------------------------------------------------------------------------------------
@idiom("autograd_grad")
def _ag_grad(T: Any) -> Any:
    x = P(T)
    (g,) = T.autograd.grad((x**2).sum(), x)
    return g


@idiom("autograd_grad_create_graph")
def _ag_create(T: Any) -> Any:
    x = T.tensor([1.5, -0.5], requires_grad=True)
    (g,) = T.autograd.grad((x**3).sum(), x, create_graph=True)
    (h,) = T.autograd.grad(g.sum(), x)
    return g.detach(), h


@idiom("autograd_backward")
def _ag_backward(T: Any) -> Any:
    x = P(T)
    T.autograd.backward([(x * 2).sum()], [T.tensor(1.5)])
    return x.grad


class _Defs:
    """Custom Functions, defined lazily for each library."""

    @staticmethod
    def exp_fn(T: Any) -> Any:
        class MyExp(T.autograd.Function):
            @staticmethod
            def forward(ctx: Any, i: Any) -> Any:
                result = i.exp()
                ctx.save_for_backward(result)
                return result

            @staticmethod
            def backward(ctx: Any, grad_output: Any) -> Any:
                (result,) = ctx.saved_tensors
                return grad_output * result

        return MyExp

    @staticmethod
    def scale_fn(T: Any) -> Any:
        class Scale(T.autograd.Function):
            @staticmethod
            def forward(ctx: Any, x: Any, k: float) -> Any:
                ctx.k = k
                ctx.seen = ctx.needs_input_grad
                return x * k

            @staticmethod
            def backward(ctx: Any, g: Any) -> Any:
                return g * ctx.k, None

        return Scale

    @staticmethod
    def setup_ctx_fn(T: Any) -> Any:
        class Cube(T.autograd.Function):
            @staticmethod
            def forward(x: Any) -> Any:
                return x**3

            @staticmethod
            def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
                (x,) = inputs
                ctx.save_for_backward(x)

            @staticmethod
            def backward(ctx: Any, g: Any) -> Any:
                (x,) = ctx.saved_tensors
                return g * 3 * x**2

        return Cube


@idiom("function_exp")
def _fn_exp(T: Any) -> Any:
    x = P(T)
    y = _Defs.exp_fn(T).apply(x)
    (y * 2).sum().backward()
    return y, x.grad


@idiom("function_non_tensor_arg")
def _fn_scale(T: Any) -> Any:
    x = P(T)
    y = _Defs.scale_fn(T).apply(x, 3.0)
    y.sum().backward()
    return y, x.grad


@idiom("function_setup_context")
def _fn_setup(T: Any) -> Any:
    x = T.tensor([1.0, -2.0], requires_grad=True)
    y = _Defs.setup_ctx_fn(T).apply(x)
    y.sum().backward()
    return y, x.grad


@idiom("function_double_backward")
def _fn_double(T: Any) -> Any:
    x = T.tensor([0.5, 1.0], requires_grad=True)
    y = _Defs.exp_fn(T).apply(x)
    (g,) = T.autograd.grad(y.sum(), x, create_graph=True)
    (h,) = T.autograd.grad(g.sum(), x)
    return h


@idiom("function_no_grad_input")
def _fn_no_grad(T: Any) -> Any:
    y = _Defs.exp_fn(T).apply(T.tensor([0.0, 1.0]))
    return y, y.requires_grad


def _f(T: Any, x: Any) -> Any:
    return (x.sin() * x).sum()


def _vecf(T: Any, x: Any) -> Any:
    return T.stack([x[0] * x[1], x[1] ** 2, x.sum()])


many(
    "functional",
    {
        "jacobian": lambda T: T.autograd.functional.jacobian(lambda x: _vecf(T, x), T.tensor([1.0, 2.0])),
        "jacobian_tuple": lambda T: T.autograd.functional.jacobian(
            lambda a, b: a * b, (T.tensor([1.0, 2.0]), T.tensor([3.0, 4.0]))
        ),
        "hessian": lambda T: T.autograd.functional.hessian(lambda x: _f(T, x), T.tensor([0.5, 1.0])),
        "vjp": lambda T: T.autograd.functional.vjp(lambda x: x**2, T.tensor([1.0, 2.0]), T.tensor([1.0, 0.5])),
        "jvp": lambda T: T.autograd.functional.jvp(lambda x: x**2, T.tensor([1.0, 2.0]), T.tensor([1.0, 0.5])),
        "hvp": lambda T: T.autograd.functional.hvp(lambda x: _f(T, x), T.tensor([0.5, 1.0]), T.tensor([1.0, 0.0])),
        "func_grad": lambda T: T.func.grad(lambda x: _f(T, x))(T.tensor([0.5, 1.0])),
        "func_grad_argnums": lambda T: T.func.grad(lambda x, y: (x * y).sum(), argnums=(0, 1))(
            T.tensor([1.0, 2.0]), T.tensor([3.0, 4.0])
        ),
        "func_grad_and_value": lambda T: T.func.grad_and_value(lambda x: _f(T, x))(T.tensor([0.5, 1.0])),
        "func_grad_aux": lambda T: T.func.grad(lambda x: ((x**2).sum(), x.mean()), has_aux=True)(T.tensor([1.0, 3.0])),
        "func_vjp": lambda T: T.func.vjp(lambda x: x.exp(), T.tensor([0.0, 1.0]))[1](T.tensor([1.0, 2.0])),
        "func_jvp": lambda T: T.func.jvp(lambda x: x.exp(), (T.tensor([0.0, 1.0]),), (T.tensor([1.0, 2.0]),)),
        "func_jacrev": lambda T: T.func.jacrev(lambda x: _vecf(T, x))(T.tensor([1.0, 2.0])),
        "func_jacfwd": lambda T: T.func.jacfwd(lambda x: _vecf(T, x))(T.tensor([1.0, 2.0])),
        "func_hessian": lambda T: T.func.hessian(lambda x: _f(T, x))(T.tensor([0.5, 1.0])),
    },
)


# --- nn: parameters, modules, hooks -----------------------------------------------------------------------------
def _fixed_linear(T: Any, i: int = 3, o: int = 2) -> Any:
    lin = T.nn.Linear(i, o)
    with T.no_grad():
        lin.weight.copy_(T.arange(o * i, dtype=T.float32).reshape(o, i) / 10 - 0.2)
        lin.bias.copy_(T.arange(o, dtype=T.float32) / 4)
    return lin


class _Net:
    @staticmethod
    def make(T: Any) -> Any:
        class Net(T.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.fc1 = _fixed_linear(T, 3, 4)
                self.act = T.nn.Tanh()
                self.fc2 = _fixed_linear(T, 4, 2)

            def forward(self, x: Any) -> Any:
                return self.fc2(self.act(self.fc1(x)))

        return Net()


@idiom("nn_parameter_isinstance")
def _p_isinstance(T: Any) -> Any:
    lin = T.nn.Linear(2, 2)
    p = T.nn.Parameter(T.zeros(3))
    return (
        isinstance(lin.weight, T.nn.Parameter),
        isinstance(p, T.nn.Parameter),
        isinstance(p, T.Tensor),
        isinstance(T.zeros(2), T.nn.Parameter),
        p.requires_grad,
        p.dtype,
    )


@idiom("nn_parameter_no_grad")
def _p_nograd(T: Any) -> Any:
    p = T.nn.Parameter(T.ones(2), requires_grad=False)
    return p.requires_grad, isinstance(p, T.nn.Parameter)


@idiom("nn_parameter_in_module")
def _p_module(T: Any) -> Any:
    class Scale(T.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.s = T.nn.Parameter(T.tensor([2.0, 3.0]))

        def forward(self, x: Any) -> Any:
            return x * self.s

    m = Scale()
    y = m(T.tensor([1.0, 1.0])).sum()
    y.backward()
    return [n for n, _ in m.named_parameters()], m.s.grad


@idiom("nn_layer_dtypes")
def _layer_dtypes(T: Any) -> Any:
    return (
        T.nn.Linear(3, 2).weight.dtype,
        T.nn.Conv2d(1, 2, 3).bias.dtype,
        T.nn.Embedding(5, 2).weight.dtype,
        T.nn.LayerNorm(4).weight,
        T.nn.BatchNorm1d(3).running_var,
        T.nn.Linear(3, 2, dtype=T.float64).weight.dtype,
    )


@idiom("nn_param_shapes")
def _param_shapes(T: Any) -> Any:
    return [tuple(p.shape) for p in T.nn.Sequential(T.nn.Linear(4, 3), T.nn.ReLU(), T.nn.Conv2d(2, 5, 3)).parameters()]


@idiom("nn_forward_fixed")
def _nn_forward(T: Any) -> Any:
    net = _Net.make(T)
    x = T.tensor([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]])
    out = net(x)
    out.pow(2).mean().backward()
    return out, net.fc1.weight.grad, net.fc2.bias.grad


@idiom("nn_forward_hook")
def _fwd_hook(T: Any) -> Any:
    net = _Net.make(T)
    seen = []
    h = net.fc1.register_forward_hook(lambda m, inp, out: seen.append(out.detach().clone()))
    net(T.tensor([[1.0, 2.0, -1.0]]))
    h.remove()
    net(T.tensor([[1.0, 2.0, -1.0]]))
    return len(seen), seen[0]


@idiom("nn_forward_hook_replaces")
def _fwd_hook_replace(T: Any) -> Any:
    net = _Net.make(T)
    net.act.register_forward_hook(lambda m, inp, out: out * 0)
    return net(T.tensor([[1.0, 2.0, -1.0]]))


@idiom("nn_forward_pre_hook")
def _pre_hook(T: Any) -> Any:
    net = _Net.make(T)
    net.fc1.register_forward_pre_hook(lambda m, args: (args[0] * 2,))
    return net(T.tensor([[1.0, 2.0, -1.0]]))


@idiom("nn_requires_grad_freeze")
def _freeze(T: Any) -> Any:
    net = _Net.make(T)
    net.fc1.requires_grad_(False)
    net(T.tensor([[1.0, 2.0, -1.0]])).sum().backward()
    return net.fc1.weight.grad is None, net.fc2.weight.grad


@idiom("nn_get_submodule")
def _get_sub(T: Any) -> Any:
    seq = T.nn.Sequential(T.nn.Linear(2, 2), T.nn.Sequential(T.nn.ReLU(), T.nn.Linear(2, 1)))
    return type(seq.get_submodule("1.1")).__name__, tuple(seq.get_parameter("1.1.weight").shape)


@idiom("nn_state_dict_keys")
def _sd_keys(T: Any) -> Any:
    net = T.nn.Sequential(T.nn.Linear(2, 3), T.nn.BatchNorm1d(3))
    return list(net.state_dict().keys())


@idiom("nn_mse_broadcast")
def _mse_b(T: Any) -> Any:
    import warnings

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        loss = T.nn.functional.mse_loss(T.tensor([[1.0], [2.0]]), T.tensor([1.0, 3.0]))
    return loss, any("broadcasting" in str(x.message) for x in w)


many(
    "F",
    {
        "normalize": lambda T: T.nn.functional.normalize(M(T), dim=1),
        "normalize_p1": lambda T: T.nn.functional.normalize(M(T), p=1, dim=0),
        "normalize_grad": lambda T: grad_of(T, P, lambda T, x: T.nn.functional.normalize(x, dim=1)),
        "cosine_similarity": lambda T: T.nn.functional.cosine_similarity(M(T), M(T).flip(1), dim=1),
        "cosine_similarity_grad": lambda T: grad_of(T, P, lambda T, x: T.nn.functional.cosine_similarity(x, x.flip(0))),
        "pairwise_distance": lambda T: T.nn.functional.pairwise_distance(M(T), M(T).flip(0)),
        "pad": lambda T: T.nn.functional.pad(M(T), (1, 2)),
        "pad_2d": lambda T: T.nn.functional.pad(M(T), (1, 0, 0, 1), value=-1.0),
        "pad_grad": lambda T: grad_of(T, P, lambda T, x: T.nn.functional.pad(x, (2, 1, 1, 0))),
        "mse_loss": lambda T: T.nn.functional.mse_loss(M(T), M(T) * 0.5),
        "l1_loss_sum": lambda T: T.nn.functional.l1_loss(M(T), M(T) * 0.5, reduction="sum"),
        "smooth_l1": lambda T: T.nn.functional.smooth_l1_loss(M(T), M(T) * 0.5),
        "smooth_l1_beta": lambda T: T.nn.functional.smooth_l1_loss(M(T), M(T) * 0.5, beta=2.0),
        "huber": lambda T: T.nn.functional.huber_loss(M(T), M(T) * 0.5, delta=1.5),
        "bce": lambda T: T.nn.functional.binary_cross_entropy(T.tensor([0.2, 0.9, 0.5]), T.tensor([0.0, 1.0, 1.0])),
        "bce_grad": lambda T: grad_of(
            T,
            lambda T: T.tensor([0.2, 0.9, 0.5]),
            lambda T, p: T.nn.functional.binary_cross_entropy(p, T.tensor([0.0, 1.0, 1.0])),
        ),
        "kl_div": lambda T: T.nn.functional.kl_div(
            T.log_softmax(M(T), 1), T.softmax(M(T).flip(1), 1), reduction="batchmean"
        ),
        "kl_div_log_target": lambda T: T.nn.functional.kl_div(
            T.log_softmax(M(T), 1), T.log_softmax(M(T).flip(1), 1), reduction="sum", log_target=True
        ),
        "logsigmoid": lambda T: T.nn.functional.logsigmoid(V(T)),
        "softsign": lambda T: T.nn.functional.softsign(V(T)),
        "mish": lambda T: T.nn.functional.mish(V(T)),
        "hardswish": lambda T: T.nn.functional.hardswish(T.tensor([-4.0, -1.0, 0.5, 4.0])),
        "hardsigmoid": lambda T: T.nn.functional.hardsigmoid(T.tensor([-4.0, -1.0, 0.5, 4.0])),
        "glu": lambda T: T.nn.functional.glu(T.tensor([[1.0, 2.0, -1.0, 0.5]])),
        "softmin": lambda T: T.nn.functional.softmin(M(T), dim=1),
        "tanhshrink": lambda T: T.nn.functional.tanhshrink(V(T)),
        "sdpa": lambda T: T.nn.functional.scaled_dot_product_attention(P(T)[None], P(T)[None].flip(1), P(T)[None]),
        "sdpa_causal": lambda T: T.nn.functional.scaled_dot_product_attention(
            P(T)[None], P(T)[None], P(T)[None], is_causal=True
        ),
        "sdpa_grad": lambda T: grad_of(
            T, P, lambda T, x: T.nn.functional.scaled_dot_product_attention(x[None], x[None], x[None], is_causal=True)
        ),
        "MSELoss_module": lambda T: T.nn.MSELoss()(M(T), M(T) * 0.5),
        "SmoothL1Loss_module": lambda T: T.nn.SmoothL1Loss()(M(T), M(T) * 0.5),
        "HuberLoss_module": lambda T: T.nn.HuberLoss(delta=0.5)(M(T), M(T) * 0.5),
        "BCELoss_module": lambda T: T.nn.BCELoss()(T.tensor([0.2, 0.9]), T.tensor([0.0, 1.0])),
        "KLDivLoss_module": lambda T: T.nn.KLDivLoss(reduction="batchmean")(T.log_softmax(M(T), 1), T.softmax(M(T), 1)),
        "cross_entropy": lambda T: T.nn.functional.cross_entropy(M(T), T.tensor([2, 0])),
        "relu": lambda T: T.nn.functional.relu(V(T)),
        "gelu": lambda T: T.nn.functional.gelu(V(T)),
        "one_hot": lambda T: T.nn.functional.one_hot(T.tensor([0, 2]), 3),
    },
)


# --- nn.init ---------------------------------------------------------------------------------------------------
many(
    "init",
    {
        "constant_": lambda T: T.nn.init.constant_(T.empty(2, 3), 0.25),
        "ones_": lambda T: T.nn.init.ones_(T.empty(2)),
        "zeros_": lambda T: T.nn.init.zeros_(T.empty(2)),
        "eye_": lambda T: T.nn.init.eye_(T.empty(2, 3)),
        "dirac_": lambda T: T.nn.init.dirac_(T.empty(2, 2, 3)),
        "gain_relu": lambda T: T.nn.init.calculate_gain("relu"),
        "gain_leaky": lambda T: T.nn.init.calculate_gain("leaky_relu", 0.2),
        "gain_tanh": lambda T: T.nn.init.calculate_gain("tanh"),
        "gain_selu": lambda T: T.nn.init.calculate_gain("selu"),
        "fans": lambda T: T.nn.init._calculate_fan_in_and_fan_out(T.empty(4, 3, 2, 5)),
        "trunc_normal_bounds": lambda T: (lambda t: (bool((t >= -0.5).all()), bool((t <= 0.5).all()), t.dtype))(
            T.nn.init.trunc_normal_(T.empty(2000), std=1.0, a=-0.5, b=0.5)
        ),
        "orthogonal_": lambda T: (lambda w: (w @ w.T - T.eye(3)).abs().max() < 1e-5)(
            T.nn.init.orthogonal_(T.empty(3, 5))
        ),
        "orthogonal_tall": lambda T: (lambda w: (w.T @ w - T.eye(3)).abs().max() < 1e-5)(
            T.nn.init.orthogonal_(T.empty(6, 3))
        ),
        "orthogonal_gain": lambda T: (lambda w: ((w @ w.T) - 4 * T.eye(2)).abs().max() < 1e-4)(
            T.nn.init.orthogonal_(T.empty(2, 4), gain=2.0)
        ),
        "kaiming_bound": lambda T: bool(T.nn.init.kaiming_uniform_(T.empty(64, 10)).abs().max() <= math.sqrt(6 / 10)),
        "xavier_bound": lambda T: bool(T.nn.init.xavier_uniform_(T.empty(64, 10)).abs().max() <= math.sqrt(6 / 74)),
        "linear_init_bound": lambda T: (
            lambda l: (
                bool(l.weight.abs().max() <= 1 / math.sqrt(50)),
                bool(l.weight.abs().max() > 0.9 / math.sqrt(50)),
                bool(l.bias.abs().max() <= 1 / math.sqrt(50)),
            )
        )(T.nn.Linear(50, 400)),
        "conv_init_bound": lambda T: (
            lambda c: (
                bool(c.weight.abs().max() <= 1 / math.sqrt(27)) and bool(c.weight.abs().max() > 0.9 / math.sqrt(27))
            )
        )(T.nn.Conv2d(3, 64, 3)),
        "embedding_init_std": lambda T: bool(abs(float(T.nn.Embedding(400, 50).weight.std()) - 1) < 0.05),
    },
)


# --- optim and schedules -----------------------------------------------------------------------------------------
def _train(T: Any, make_opt: Callable, steps: int = 5, sched: Any = None) -> Any:
    w = T.tensor([[0.5, -0.3], [0.8, 0.1]], requires_grad=True)
    b = T.tensor([0.1, -0.2], requires_grad=True)
    x = T.tensor([[1.0, 2.0], [0.5, -1.0], [2.0, 0.0]])
    y = T.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    opt = make_opt([w, b])
    s = sched(opt) if sched else None
    lrs = []
    for _ in range(steps):
        opt.zero_grad()
        loss = ((x @ w + b - y) ** 2).mean()
        loss.backward()
        opt.step()
        if s is not None:
            s.step()
            lrs.append(s.get_last_lr()[0])
    return w.detach(), b.detach(), loss.detach(), lrs


many(
    "optim",
    {
        "sgd": lambda T: _train(T, lambda p: T.optim.SGD(p, lr=0.1)),
        "sgd_momentum": lambda T: _train(T, lambda p: T.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True)),
        "adam": lambda T: _train(T, lambda p: T.optim.Adam(p, lr=0.05)),
        "adam_amsgrad": lambda T: _train(T, lambda p: T.optim.Adam(p, lr=0.05, amsgrad=True), steps=8),
        "adamw_amsgrad": lambda T: _train(
            T, lambda p: T.optim.AdamW(p, lr=0.05, amsgrad=True, weight_decay=0.1), steps=8
        ),
        "adamw": lambda T: _train(T, lambda p: T.optim.AdamW(p, lr=0.05)),
        "adagrad": lambda T: _train(T, lambda p: T.optim.Adagrad(p, lr=0.3)),
        "adagrad_decay": lambda T: _train(
            T, lambda p: T.optim.Adagrad(p, lr=0.3, lr_decay=0.1, weight_decay=0.01, initial_accumulator_value=0.1)
        ),
        "rmsprop": lambda T: _train(T, lambda p: T.optim.RMSprop(p, lr=0.01)),
        "lambda_lr": lambda T: _train(
            T, lambda p: T.optim.SGD(p, lr=0.1), 6, lambda o: T.optim.lr_scheduler.LambdaLR(o, lambda e: 0.9**e)
        ),
        "multiplicative_lr": lambda T: _train(
            T, lambda p: T.optim.SGD(p, lr=0.1), 6, lambda o: T.optim.lr_scheduler.MultiplicativeLR(o, lambda e: 0.8)
        ),
        "multistep_lr": lambda T: _train(
            T, lambda p: T.optim.SGD(p, lr=0.1), 7, lambda o: T.optim.lr_scheduler.MultiStepLR(o, [2, 5], gamma=0.5)
        ),
        "linear_lr": lambda T: _train(
            T,
            lambda p: T.optim.SGD(p, lr=0.1),
            7,
            lambda o: T.optim.lr_scheduler.LinearLR(o, start_factor=0.25, total_iters=4),
        ),
        "constant_lr": lambda T: _train(
            T,
            lambda p: T.optim.SGD(p, lr=0.1),
            6,
            lambda o: T.optim.lr_scheduler.ConstantLR(o, factor=0.5, total_iters=3),
        ),
        "step_lr": lambda T: _train(
            T, lambda p: T.optim.SGD(p, lr=0.1), 6, lambda o: T.optim.lr_scheduler.StepLR(o, 2, 0.5)
        ),
        "cosine_lr": lambda T: _train(
            T, lambda p: T.optim.SGD(p, lr=0.1), 6, lambda o: T.optim.lr_scheduler.CosineAnnealingLR(o, 5)
        ),
        "clip_grad_norm_dtype": lambda T: (
            lambda w: ((w * 3).sum().backward(), T.nn.utils.clip_grad_norm_([w], 1.0))[1]
        )(T.tensor([1.0, 2.0], requires_grad=True)),
    },
)


# --- save / load ----------------------------------------------------------------------------------------------
@idiom("save_load_bytesio")
def _save_bytes(T: Any) -> Any:
    lin = _fixed_linear(T)
    buf = io.BytesIO()
    T.save(lin.state_dict(), buf)
    buf.seek(0)
    sd = T.load(buf, map_location="cpu", weights_only=True)
    return sorted(sd), sd["weight"]


@idiom("save_load_checkpoint")
def _save_ckpt(T: Any) -> Any:
    lin = _fixed_linear(T)
    opt = T.optim.SGD(lin.parameters(), lr=0.1, momentum=0.9)
    lin(T.ones(1, 3)).sum().backward()
    opt.step()
    buf = io.BytesIO()
    T.save({"epoch": 3, "model": lin.state_dict(), "loss": 0.25}, buf)
    buf.seek(0)
    ck = T.load(buf, map_location=T.device("cpu"))
    lin2 = _fixed_linear(T)
    lin2.load_state_dict(ck["model"])
    return ck["epoch"], ck["loss"], lin2.weight


@idiom("data_loader")
def _loader(T: Any) -> Any:
    ds = T.utils.data.TensorDataset(T.arange(6.0).reshape(6, 1), T.arange(6))
    return [(x, y) for x, y in T.utils.data.DataLoader(ds, batch_size=4)]


# --- distributions and random draws (values that do not depend on the stream; shapes and dtypes of draws) ------
def _dist_grads(T: Any) -> Any:
    loc = T.tensor([0.5, -1.0], requires_grad=True)
    sc = T.tensor([1.5, 0.3], requires_grad=True)
    n = T.distributions.Normal(loc, sc)
    (n.log_prob(T.tensor([0.1, 0.2])).sum() + n.entropy().sum() + n.cdf(T.tensor([0.1, 0.2])).sum()).backward()
    return loc.grad, sc.grad


_LOGITS = [[1.0, 2.0, 0.5], [0.1, 0.1, 3.0]]
many(
    "dist",
    {
        "normal_log_prob": lambda T: T.distributions.Normal(T.tensor([0.5, -1.0]), T.tensor([1.5, 0.3])).log_prob(
            T.tensor([0.1, 0.2])
        ),
        "normal_entropy": lambda T: T.distributions.Normal(T.tensor([0.5]), T.tensor([2.0])).entropy(),
        "normal_cdf": lambda T: T.distributions.Normal(0.0, 1.0).cdf(T.tensor([-1.0, 0.0, 2.0])),
        "normal_grads": _dist_grads,
        "normal_moments": lambda T: (lambda n: (n.mean, n.stddev, n.variance))(
            T.distributions.Normal(T.tensor([1.0]), T.tensor([2.0]))
        ),
        "normal_rsample_shape": lambda T: (lambda s: (tuple(s.shape), s.dtype))(
            T.distributions.Normal(T.zeros(2), T.ones(2)).rsample((3,))
        ),
        "normal_batch_shape": lambda T: tuple(T.distributions.Normal(T.zeros(2, 3), 1.0).batch_shape),
        "categorical_log_prob": lambda T: T.distributions.Categorical(logits=T.tensor(_LOGITS)).log_prob(
            T.tensor([2, 0])
        ),
        "categorical_probs_arg": lambda T: T.distributions.Categorical(probs=T.tensor([0.2, 0.3, 0.5])).log_prob(
            T.tensor(1)
        ),
        "categorical_entropy": lambda T: T.distributions.Categorical(logits=T.tensor(_LOGITS)).entropy(),
        "categorical_probs": lambda T: T.distributions.Categorical(logits=T.tensor(_LOGITS)).probs,
        "categorical_sample_shape": lambda T: (lambda s: (tuple(s.shape), s.dtype))(
            T.distributions.Categorical(logits=T.tensor(_LOGITS)).sample((4,))
        ),
        "bernoulli_log_prob": lambda T: T.distributions.Bernoulli(logits=T.tensor([0.3, -2.0])).log_prob(
            T.tensor([1.0, 0.0])
        ),
        "bernoulli_probs": lambda T: T.distributions.Bernoulli(probs=T.tensor([0.3, 0.9])).logits,
        "bernoulli_entropy": lambda T: T.distributions.Bernoulli(probs=T.tensor([0.3, 0.9])).entropy(),
        "uniform_log_prob": lambda T: T.distributions.Uniform(T.tensor([0.0]), T.tensor([2.0])).log_prob(
            T.tensor([0.5])
        ),
        "uniform_entropy": lambda T: T.distributions.Uniform(T.tensor([0.0, 1.0]), T.tensor([2.0, 1.5])).entropy(),
        "kl_normal": lambda T: T.distributions.kl_divergence(
            T.distributions.Normal(T.tensor([0.5]), T.tensor([1.5])),
            T.distributions.Normal(T.tensor([0.0]), T.tensor([1.0])),
        ),
        "kl_categorical": lambda T: T.distributions.kl_divergence(
            T.distributions.Categorical(logits=T.tensor(_LOGITS)),
            T.distributions.Categorical(logits=T.tensor(_LOGITS).flip(1)),
        ),
        "multinomial_shape": lambda T: (lambda s: (tuple(s.shape), s.dtype, bool((s >= 0).all() and (s < 3).all())))(
            T.multinomial(T.tensor([[0.2, 0.3, 0.5]]), 5, replacement=True)
        ),
        "multinomial_no_repeat": lambda T: T.multinomial(T.tensor([0.2, 0.3, 0.5]), 3).sort().values,
        "bernoulli_draw": lambda T: (lambda s: (s.dtype, tuple(s.shape)))(T.bernoulli(T.full((2, 3), 0.5))),
        "bernoulli_certain": lambda T: T.bernoulli(T.tensor([0.0, 1.0, 1.0])),
        "normal_draw": lambda T: (lambda s: (s.dtype, tuple(s.shape)))(T.normal(T.zeros(4), T.ones(4))),
        "normal_draw_size": lambda T: (lambda s: (s.dtype, tuple(s.shape)))(T.normal(0.0, 1.0, size=(2, 3))),
        "manual_seed_repeats": lambda T: (lambda a, b: bool((a == b).all()))(
            *[(T.manual_seed(5), T.randn(4))[1] for _ in range(2)]
        ),
    },
)


# --- more math: inverse trigonometry, cumprod, cdist, quantile, matrices, shapes, integers ------------------------
def U(T: Any) -> Any:
    return T.tensor([[0.3, -0.6, 0.9], [0.1, 0.5, -0.2]], requires_grad=True)


def second_order(T: Any, fn: Callable) -> Any:
    x = T.tensor([0.3, -0.45, 0.7], requires_grad=True)
    (g,) = T.autograd.grad(fn(T, x).sum(), x, create_graph=True)
    (h,) = T.autograd.grad((g * g).sum(), x)
    return g.detach(), h


many(
    "math",
    {
        "asin": lambda T: grad_of(T, U, lambda T, x: T.asin(x)),
        "acos": lambda T: grad_of(T, U, lambda T, x: x.acos()),
        "atan": lambda T: grad_of(T, M, lambda T, x: T.atan(x)),
        "asinh": lambda T: grad_of(T, M, lambda T, x: T.asinh(x)),
        "acosh": lambda T: grad_of(T, lambda T: T.tensor([1.5, 2.0, 7.0]), lambda T, x: T.acosh(x)),
        "atanh": lambda T: grad_of(T, U, lambda T, x: x.atanh()),
        "expm1": lambda T: grad_of(T, lambda T: T.tensor([1e-8, 0.5, -2.0]), lambda T, x: T.expm1(x)),
        "arctan_alias": lambda T: T.arctan(V(T)),
        "atan2": lambda T: T.atan2(T.tensor([1.0, -1.0, 0.5, -2.0]), T.tensor([-1.0, -1.0, 2.0, 0.0])),
        "atan2_grad_y": lambda T: grad_of(T, M, lambda T, y: T.atan2(y, T.tensor([1.5, -2.0, 0.5]))),
        "atan2_grad_x": lambda T: grad_of(T, M, lambda T, x: T.atan2(T.tensor([1.5, -2.0, 0.5]), x)),
        "asin_second": lambda T: second_order(T, lambda T, x: T.asin(x)),
        "atan_second": lambda T: second_order(T, lambda T, x: T.atan(x)),
        "atan2_second": lambda T: second_order(T, lambda T, x: T.atan2(x, x * x + 1)),
        "cumprod": lambda T: T.cumprod(M(T), dim=1),
        "cumprod_zero_grad": lambda T: grad_of(
            T, lambda T: T.tensor([[2.0, 0.0, 3.0, -1.5], [0.5, 1.5, 0.0, 0.0]]), lambda T, x: x.cumprod(1)
        ),
        "cumprod_int": lambda T: T.cumprod(T.tensor([1, 2, 3, 4]), 0),
        "logaddexp": lambda T: grad_of(T, M, lambda T, x: T.logaddexp(x, x.flip(1))),
        "hypot": lambda T: T.hypot(T.tensor([3.0, 5.0]), T.tensor([4.0, 12.0])),
        "xlogy": lambda T: T.xlogy(T.tensor([0.0, 2.0, 0.0]), T.tensor([0.0, 3.0, 5.0])),
        "xlogy_grad": lambda T: grad_of(
            T, lambda T: T.tensor([0.5, 2.0, 1.5]), lambda T, y: T.xlogy(T.tensor([0.0, 2.0, 1.0]), y)
        ),
        "logit": lambda T: T.logit(T.tensor([0.2, 0.5, 0.9])),
        "logit_eps": lambda T: T.logit(T.tensor([0.0, 1.0, 0.3]), eps=1e-6),
        "frac": lambda T: T.frac(T.tensor([1.5, -2.25, 3.0])),
        "deg2rad": lambda T: T.deg2rad(T.tensor([180.0, 90.0])),
        "cdist": lambda T: T.cdist(P(T), P(T)[:2]),
        "cdist_grad": lambda T: grad_of(T, P, lambda T, x: T.cdist(x, x.flip(0)[:3])),
        "cdist_p1": lambda T: T.cdist(P(T), P(T)[1:], p=1),
        "dist": lambda T: T.dist(M(T), M(T).flip(0)),
        "quantile": lambda T: T.quantile(T.tensor([1.0, 7.0, 3.0, 4.0]), 0.4),
        "quantile_vec": lambda T: T.quantile(M(T), T.tensor([0.25, 0.5]), dim=1),
        "quantile_keepdim": lambda T: T.quantile(M(T), 0.5, dim=0, keepdim=True),
        "quantile_lower": lambda T: T.quantile(T.tensor([1.0, 7.0, 3.0, 4.0]), 0.4, interpolation="lower"),
        "quantile_grad": lambda T: grad_of(T, P, lambda T, x: T.quantile(x, 0.3, dim=0)),
        "trace": lambda T: T.trace(T.arange(9.0).reshape(3, 3)),
        "trace_grad": lambda T: grad_of(T, lambda T: T.ones(3, 4), lambda T, x: T.trace(x)),
        "diagonal": lambda T: T.diagonal(T.arange(12.0).reshape(3, 4), offset=1),
        "diagonal_neg": lambda T: T.arange(12.0).reshape(3, 4).diagonal(-1),
        "diag_embed": lambda T: T.diag_embed(T.tensor([[1.0, 2.0], [3.0, 4.0]])),
        "kron": lambda T: T.kron(T.tensor([[1.0, 2.0], [3.0, 4.0]]), T.tensor([[0.0, 1.0], [1.0, 0.0]])),
        "kron_grad": lambda T: grad_of(
            T, lambda T: T.tensor([[1.0, 2.0], [3.0, 4.0]]), lambda T, x: T.kron(x, T.tensor([[0.5, 1.0, 2.0]]))
        ),
        "cross": lambda T: T.cross(T.tensor([[1.0, 0.0, 0.0]]), T.tensor([[0.0, 1.0, 0.0]]), dim=1),
        "linalg_cross": lambda T: T.cross(T.tensor([1.0, 2.0, 3.0]), T.tensor([-1.0, 0.5, 2.0]), dim=0),
        "tensordot": lambda T: T.tensordot(T.arange(24.0).reshape(2, 3, 4), T.arange(12.0).reshape(3, 4), dims=2),
        "tensordot_pairs": lambda T: T.tensordot(
            T.arange(6.0).reshape(2, 3), T.arange(6.0).reshape(3, 2), dims=([1], [0])
        ),
        "block_diag": lambda T: T.block_diag(T.ones(2, 2), T.tensor([[5.0, 6.0, 7.0]])),
        "cartesian_prod": lambda T: T.cartesian_prod(T.tensor([1, 2]), T.tensor([3, 4, 5])),
        "tril_indices": lambda T: T.tril_indices(3, 3),
        "triu_indices_offset": lambda T: T.triu_indices(3, 4, 1),
        "rot90": lambda T: T.rot90(M(T)),
        "rot90_k3": lambda T: T.rot90(M(T), 3, [0, 1]),
        "fliplr": lambda T: T.fliplr(M(T)),
        "atleast_2d": lambda T: T.atleast_2d(T.tensor([1.0, 2.0])).shape,
        "atleast_3d": lambda T: T.atleast_3d(M(T)).shape,
        "column_stack": lambda T: T.column_stack([T.tensor([1.0, 2.0]), T.tensor([3.0, 4.0])]),
        "dstack": lambda T: T.dstack([M(T), M(T)]).shape,
        "tensor_split": lambda T: T.tensor_split(T.arange(7), 3),
        "tensor_split_idx": lambda T: T.tensor_split(T.arange(7), [1, 5]),
        "aminmax": lambda T: tuple(T.aminmax(M(T))),
        "aminmax_dim": lambda T: tuple(T.aminmax(M(T), dim=1)),
        "kthvalue": lambda T: T.kthvalue(T.tensor([3.0, 1.0, 2.0, 5.0]), 2),
        "kthvalue_dim": lambda T: T.kthvalue(M(T), 2, dim=1),
        "msort": lambda T: T.msort(M(T)),
        "bitwise_and": lambda T: T.bitwise_and(T.tensor([12, 10]), T.tensor([10, 6])),
        "bitwise_xor_bool": lambda T: T.bitwise_xor(T.tensor([True, False]), T.tensor([True, True])),
        "bitwise_not": lambda T: T.bitwise_not(T.tensor([0, 5])),
        "gcd": lambda T: T.gcd(T.tensor([12, 18]), T.tensor([8, 27])),
        "signbit": lambda T: T.signbit(T.tensor([-1.0, 0.0, 2.0])),
        "fmax": lambda T: T.fmax(T.tensor([1.0, float("nan"), 3.0]), T.tensor([2.0, 5.0, float("nan")])),
        "fmin_grad": lambda T: grad_of(T, M, lambda T, x: T.fmin(x, T.tensor([0.0, 0.0, 0.0]))),
    },
)


def _lrs(T: Any, make_opt: Callable, make_sched: Callable, steps: int) -> Any:
    w = T.tensor([1.0, -2.0], requires_grad=True)
    opt = make_opt([w])
    s = make_sched(opt)
    out = []
    for _ in range(steps):
        opt.zero_grad()
        (w * w).sum().backward()
        opt.step()
        s.step()
        g = opt.param_groups[0]
        out.append((g["lr"], g.get("momentum"), tuple(g["betas"]) if "betas" in g else None))
    return out, w.detach()


many(
    "sched",
    {
        "onecycle_sgd": lambda T: _lrs(
            T,
            lambda p: T.optim.SGD(p, lr=0.1, momentum=0.9),
            lambda o: T.optim.lr_scheduler.OneCycleLR(o, max_lr=0.5, total_steps=10),
            10,
        ),
        "onecycle_adam_linear": lambda T: _lrs(
            T,
            lambda p: T.optim.Adam(p, lr=0.1),
            lambda o: T.optim.lr_scheduler.OneCycleLR(
                o, max_lr=0.05, epochs=2, steps_per_epoch=6, anneal_strategy="linear"
            ),
            12,
        ),
        "onecycle_three_phase": lambda T: _lrs(
            T,
            lambda p: T.optim.SGD(p, lr=0.1, momentum=0.9),
            lambda o: T.optim.lr_scheduler.OneCycleLR(o, max_lr=0.5, total_steps=12, three_phase=True, pct_start=0.25),
            12,
        ),
        "onecycle_no_momentum": lambda T: _lrs(
            T,
            lambda p: T.optim.SGD(p, lr=0.1, momentum=0.9),
            lambda o: T.optim.lr_scheduler.OneCycleLR(o, max_lr=0.5, total_steps=8, cycle_momentum=False),
            8,
        ),
        "sequential_warmup_cosine": lambda T: _lrs(
            T,
            lambda p: T.optim.SGD(p, lr=0.1),
            lambda o: T.optim.lr_scheduler.SequentialLR(
                o,
                [
                    T.optim.lr_scheduler.LinearLR(o, 0.1, total_iters=3),
                    T.optim.lr_scheduler.CosineAnnealingLR(o, T_max=6),
                ],
                milestones=[3],
            ),
            10,
        ),
        "sequential_constant_exp": lambda T: _lrs(
            T,
            lambda p: T.optim.SGD(p, lr=0.1),
            lambda o: T.optim.lr_scheduler.SequentialLR(
                o,
                [T.optim.lr_scheduler.ConstantLR(o, 0.5, total_iters=2), T.optim.lr_scheduler.ExponentialLR(o, 0.9)],
                milestones=[2],
            ),
            6,
        ),
        "warm_restarts": lambda T: _lrs(
            T,
            lambda p: T.optim.SGD(p, lr=0.1),
            lambda o: T.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.01),
            12,
        ),
        "polynomial": lambda T: _lrs(
            T,
            lambda p: T.optim.SGD(p, lr=0.1),
            lambda o: T.optim.lr_scheduler.PolynomialLR(o, total_iters=4, power=2.0),
            6,
        ),
    },
)


# --- Tensor methods: aliases, in-place twins, predicates -------------------------------------------------------------
def _inplace_grad(T: Any, name: str, *args: Any) -> Any:
    x = T.tensor([0.3, -0.4, 0.6], requires_grad=True)
    h = x * 1.0
    getattr(h, name)(*args)
    (h * T.tensor([1.0, 2.0, 3.0])).sum().backward()
    return h.detach(), x.grad


many(
    "method",
    {
        "greater": lambda T: M(T).greater(0),
        "less_equal": lambda T: M(T).less_equal(T.tensor([1.0, 5.0, -6.0])),
        "not_equal": lambda T: I(T).not_equal(2),
        "positive": lambda T: M(T).positive(),
        "fix": lambda T: T.tensor([1.7, -1.7]).fix(),
        "sgn": lambda T: V(T).sgn(),
        "erf": lambda T: V(T).erf(),
        "ger": lambda T: V(T).ger(T.tensor([1.0, 2.0])),
        "inner": lambda T: V(T).inner(V(T)),
        "inner_2d": lambda T: M(T).inner(M(T)),
        "vdot": lambda T: V(T).vdot(V(T)),
        "addmv": lambda T: T.ones(2).addmv(M(T), T.tensor([1.0, 0.5, -1.0]), alpha=2),
        "addr": lambda T: T.zeros(2, 3).addr(T.tensor([1.0, 2.0]), T.tensor([1.0, 0.0, -1.0])),
        "inverse": lambda T: T.tensor([[2.0, 1.0], [1.0, 3.0]]).inverse(),
        "det": lambda T: T.tensor([[2.0, 1.0], [1.0, 3.0]]).det(),
        "logdet": lambda T: T.tensor([[2.0, 1.0], [1.0, 3.0]]).logdet(),
        "matrix_power": lambda T: T.tensor([[1.0, 1.0], [0.0, 1.0]]).matrix_power(3),
        "matrix_power_neg": lambda T: T.tensor([[2.0, 1.0], [1.0, 3.0]]).matrix_power(-2),
        "mH": lambda T: M(T).mH,
        "adjoint": lambda T: M(T).adjoint(),
        "is_complex": lambda T: M(T).is_complex(),
        "is_signed": lambda T: (M(T).is_signed(), T.tensor([1], dtype=T.uint8).is_signed()),
        "is_cpu": lambda T: M(T).is_cpu,
        "is_contiguous": lambda T: (M(T).is_contiguous(), M(T).T.is_contiguous()),
        "is_same_size": lambda T: M(T).is_same_size(M(T) * 2),
        "is_nonzero": lambda T: T.tensor([2.0]).is_nonzero(),
        "get_device": lambda T: M(T).get_device(),
        "stride": lambda T: (T.zeros(2, 3, 4).stride(), T.zeros(2, 3, 4).stride(1), T.zeros(2, 3).T.stride()),
        "isposinf": lambda T: T.tensor([float("inf"), -float("inf"), 1.0]).isposinf(),
        "float_power": lambda T: T.tensor([2, 3]).float_power(2),
        "copysign": lambda T: M(T).copysign(T.tensor([-1.0, 1.0, -0.0])),
        "heaviside": lambda T: T.tensor([-1.0, 0.0, 2.0]).heaviside(T.tensor([0.5])),
        "logaddexp2": lambda T: V(T).logaddexp2(T.tensor(1.0)),
        "sinc": lambda T: T.tensor([0.0, 0.5, 1.5]).sinc(),
        "char": lambda T: T.tensor([1.7, -2.2]).char(),
        "split_with_sizes": lambda T: T.arange(6).split_with_sizes([2, 4]),
        "hsplit": lambda T: T.arange(12).reshape(3, 4).hsplit(2),
        "vsplit": lambda T: T.arange(12).reshape(4, 3).vsplit([1]),
        "diagflat": lambda T: T.tensor([1.0, 2.0]).diagflat(),
        "take": lambda T: M(T).take(T.tensor([0, 4, 5])),
        "select": lambda T: M(T).select(1, 2),
        "sum_to_size": lambda T: T.ones(2, 3, 4).sum_to_size(3, 1),
        "unique_consecutive": lambda T: T.tensor([1, 1, 2, 2, 3, 1, 1]).unique_consecutive(
            return_counts=True, return_inverse=True
        ),
        "nanmedian": lambda T: T.tensor([1.0, float("nan"), 3.0, 2.0]).nanmedian(),
        "cov": lambda T: M(T).cov(),
        "corrcoef": lambda T: T.tensor([[1.0, 2.0, 4.0], [2.0, 1.0, 0.5]]).corrcoef(),
        "inplace_asin_": lambda T: _inplace_grad(T, "asin_"),
        "inplace_cumsum_": lambda T: _inplace_grad(T, "cumsum_", 0),
        "inplace_tril_": lambda T: (lambda t: (t.tril_(), t)[1])(T.ones(3, 3)),
        "inplace_eq_": lambda T: (lambda t: (t.eq_(T.tensor([1.0, 0.0])), t)[1])(T.tensor([1.0, 2.0])),
        "inplace_hypot_": lambda T: _inplace_grad(T, "hypot_", T.tensor([1.0, 2.0, 0.5])),
        "inplace_logical_and_": lambda T: (lambda t: (t.logical_and_(T.tensor([True, False])), t)[1])(
            T.tensor([True, True])
        ),
        "inplace_frac_": lambda T: _inplace_grad(T, "frac_"),
        "inplace_xlogy_": lambda T: _inplace_grad(T, "xlogy_", T.tensor([2.0, 3.0, 4.0])),
    },
)

many(
    "inplace_graph",
    {
        "remainder_": lambda T: _inplace_grad(T, "remainder_", 0.25),
        "fmod_": lambda T: _inplace_grad(T, "fmod_", 0.25),
        "scatter_": lambda T: _inplace_grad(T, "scatter_", 0, T.tensor([2, 0]), T.tensor([5.0, 6.0])),
        "scatter_add_": lambda T: _inplace_grad(T, "scatter_add_", 0, T.tensor([2, 2]), T.tensor([5.0, 6.0])),
        "index_add_": lambda T: _inplace_grad(T, "index_add_", 0, T.tensor([1, 1]), T.tensor([5.0, 6.0])),
        "index_fill_": lambda T: _inplace_grad(T, "index_fill_", 0, T.tensor([1]), -1.0),
        "imod": lambda T: _inplace_grad(T, "__imod__", 0.25),
    },
)

_SEQS = [[1.0, 2.0, 3.0], [4.0], [5.0, 6.0]]
many(
    "rnn_utils",
    {
        "pad_sequence": lambda T: T.nn.utils.rnn.pad_sequence([T.tensor(s) for s in _SEQS]),
        "pad_sequence_bf": lambda T: T.nn.utils.rnn.pad_sequence(
            [T.tensor(s) for s in _SEQS], batch_first=True, padding_value=-1.0
        ),
        "pad_sequence_left": lambda T: T.nn.utils.rnn.pad_sequence(
            [T.tensor(s) for s in _SEQS], batch_first=True, padding_side="left"
        ),
        "pad_sequence_2d": lambda T: T.nn.utils.rnn.pad_sequence([T.ones(2, 3), T.zeros(4, 3)]).shape,
        "pad_sequence_grad": lambda T: grad_of(
            T, lambda T: T.tensor([1.0, 2.0, 3.0]), lambda T, x: T.nn.utils.rnn.pad_sequence([x, x[:1] * 2])
        ),
        "unpad_sequence": lambda T: T.nn.utils.rnn.unpad_sequence(
            T.nn.utils.rnn.pad_sequence([T.tensor(s) for s in _SEQS]), T.tensor([3, 1, 2])
        ),
    },
)

many(
    "legacy",
    {
        "Tensor_list": lambda T: T.Tensor([1, 2]),
        "Tensor_sizes": lambda T: (T.Tensor(2, 3).shape, T.Tensor(2, 3).dtype),
        "Tensor_empty": lambda T: T.Tensor().shape,
        "FloatTensor": lambda T: T.FloatTensor([[1, 2], [3, 4]]),
        "LongTensor": lambda T: T.LongTensor([1, 5, 2]),
        "DoubleTensor_sizes": lambda T: (T.DoubleTensor(3).shape, T.DoubleTensor(3).dtype),
        "BoolTensor": lambda T: T.BoolTensor([True, False]),
        "isinstance_typed": lambda T: (
            isinstance(T.tensor([1.0]), T.FloatTensor),
            isinstance(T.tensor([1]), T.FloatTensor),
            isinstance(T.tensor([1]), T.LongTensor),
        ),
        "isinstance_Tensor": lambda T: (
            isinstance(T.zeros(1), T.Tensor),
            isinstance(T.nn.Parameter(T.zeros(1)), T.Tensor),
            isinstance(1.0, T.Tensor),
        ),
        "Tensor_unbound_method": lambda T: T.Tensor.sum(T.ones(3)),
    },
)
