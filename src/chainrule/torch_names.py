"""torch's names that chainrule lacks: one clear error, on modules and on ``Tensor``.

A public name that is not there raises :class:`NotSupportedError`, which is both an
``AttributeError`` (so ``hasattr`` and ``getattr(x, name, default)`` work as usual) and a
``NotImplementedError``.  The message says that chainrule does not support the name and, where
there is one, the chainrule way to do the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

from .tensor import Tensor


class NotSupportedError(AttributeError, NotImplementedError):
    """A torch name that chainrule (or ``chainrule.torch``) does not provide."""


# torch name -> the chainrule way (shown in the error).  Keys are bare names; they apply on every module.
HINTS: dict[str, str] = {
    "cuda": "chainrule computes with NumPy on the CPU; t.to('cuda') moves a tensor onto a GPU array library "
    "(CuPy or torch) when one is installed, see docs/backends.md",
    "compile": "use chainrule.compile (cr.compile) for a compiled replay of a traced step",
    "jit": "chainrule has no TorchScript; cr.compile replays a traced step",
    "vmap": "loop over the batch, or use per-sample gradients with cr.jacobian",
    "atan2": "compose it: torch.atan(y / x) with the quadrant fixed by torch.where",
    "cumprod": "compose it: torch.exp(torch.cumsum(torch.log(x), dim)) for positive x",
    "kron": "compose it from reshape and broadcasting: (a[:, None, :, None] * b[None, :, None, :]).reshape(...)",
    "cross": "compose it from indexing: torch.stack([a[1]*b[2]-a[2]*b[1], ...])",
    "sparse": "chainrule has dense tensors only",
    "distributions": "draw with torch.rand / torch.randn and write the log-density as an expression",
    "quantization": "chainrule has float tensors only; no quantization",
    "fft": "no FFT in chainrule",
    "complex": "chainrule has real (float, int, bool) tensors only",
    "register_full_backward_hook": "use a tensor hook: out.register_hook(fn) on the module's output",
    "register_backward_hook": "use a tensor hook: out.register_hook(fn) on the module's output",
    "share_memory_": "chainrule has no multiprocessing tensors; cr.distributed trains on several processes",
    "pin_memory": "no pinned memory in chainrule (it computes on the CPU)",
    "is_cuda": "tensors live on the CPU unless moved to another array library (t.device says where)",
}

WHERE = "chainrule.torch"


def refusal(where: str, name: str) -> NotSupportedError:
    """The error for ``where.name``: not supported, and the chainrule way if :data:`HINTS` knows one."""
    hint = HINTS.get(name)
    text = f"{where}.{name} is not supported in chainrule.torch (chainrule has no such name)"
    if hint:
        text += f"; the chainrule way: {hint}"
    else:
        text += "; see docs/torch.md for what chainrule.torch provides"
    return NotSupportedError(text)


def module_getattr(where: str) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` that refuses every missing public name of module ``where`` clearly."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__") or name.startswith("_"):
            raise AttributeError(f"module {where!r} has no attribute {name!r}")
        raise refusal(where, name)

    return __getattr__


# torch.Tensor's public names (torch 2.13) that chainrule's Tensor lacks: each gets a class attribute that
# raises the clear refusal.  A class-level ``__getattr__`` would do it for every name, but a type with
# ``__getattr__`` routes every attribute lookup of every tensor through a slower hook (measured: a scalar op
# 35% slower), so the names are listed; tests/test_torch_facade.py checks the list against torch's own.
TENSOR_REFUSED = (
    "addbmm",
    "addbmm_",
    "addmm_",
    "addmv_",
    "addr_",
    "angle",
    "apply_",
    "as_strided",
    "as_strided_",
    "as_strided_scatter",
    "as_subclass",
    "baddbmm_",
    "bernoulli",
    "bfloat16",
    "bitwise_left_shift",
    "bitwise_left_shift_",
    "bitwise_right_shift",
    "bitwise_right_shift_",
    "cauchy_",
    "ccol_indices",
    "cdouble",
    "cfloat",
    "chalf",
    "cholesky",
    "cholesky_inverse",
    "cholesky_solve",
    "coalesce",
    "col_indices",
    "conj",
    "conj_physical",
    "conj_physical_",
    "const_data_ptr",
    "crow_indices",
    "cummax",
    "cummin",
    "data_ptr",
    "dense_dim",
    "dequantize",
    "diagonal_scatter",
    "digamma",
    "digamma_",
    "dim_order",
    "eig",
    "equal",
    "erfc",
    "erfc_",
    "erfinv",
    "erfinv_",
    "fill_diagonal_",
    "frexp",
    "geometric_",
    "geqrf",
    "grad_dtype",
    "hardshrink",
    "hash_tensor",
    "histogram",
    "i0",
    "i0_",
    "igamma",
    "igamma_",
    "igammac",
    "igammac_",
    "imag",
    "index",
    "index_copy",
    "index_copy_",
    "index_put",
    "index_put_",
    "index_reduce",
    "index_reduce_",
    "indices",
    "int_repr",
    "ipu",
    "is_coalesced",
    "is_conj",
    "is_distributed",
    "is_ipu",
    "is_maia",
    "is_meta",
    "is_mkldnn",
    "is_mps",
    "is_mtia",
    "is_neg",
    "is_nested",
    "is_pinned",
    "is_quantized",
    "is_set_to",
    "is_shared",
    "is_sparse",
    "is_sparse_csr",
    "is_vulkan",
    "is_xla",
    "is_xpu",
    "istft",
    "layout",
    "ldexp",
    "ldexp_",
    "lgamma",
    "lgamma_",
    "log_normal_",
    "logcumsumexp",
    "lstsq",
    "lu",
    "lu_solve",
    "map2_",
    "map_",
    "masked_scatter",
    "masked_scatter_",
    "matrix_exp",
    "mode",
    "module_load",
    "mtia",
    "multinomial",
    "mvlgamma",
    "mvlgamma_",
    "name",
    "nanquantile",
    "narrow_copy",
    "new",
    "new_empty_strided",
    "nextafter",
    "nextafter_",
    "nonzero_static",
    "orgqr",
    "ormqr",
    "output_nr",
    "pin_memory",
    "pinverse",
    "polygamma",
    "polygamma_",
    "prelu",
    "put",
    "put_",
    "q_per_channel_axis",
    "q_per_channel_scales",
    "q_per_channel_zero_points",
    "q_scale",
    "q_zero_point",
    "qr",
    "qscheme",
    "record_stream",
    "register_post_accumulate_grad_hook",
    "reinforce",
    "renorm",
    "renorm_",
    "resize",
    "resize_",
    "resize_as",
    "resize_as_",
    "resize_as_sparse_",
    "resolve_conj",
    "resolve_neg",
    "row_indices",
    "scatter_reduce",
    "scatter_reduce_",
    "select_scatter",
    "set_",
    "share_memory_",
    "sinc_",
    "slice_inverse",
    "slice_scatter",
    "slogdet",
    "smm",
    "solve",
    "sparse_dim",
    "sparse_mask",
    "sparse_resize_",
    "sparse_resize_and_clear_",
    "squeeze_",
    "sspaddmm",
    "stft",
    "storage",
    "storage_offset",
    "storage_type",
    "svd",
    "swapaxes_",
    "swapdims_",
    "symeig",
    "t_",
    "to_dense",
    "to_mkldnn",
    "to_padded_tensor",
    "to_sparse",
    "to_sparse_bsc",
    "to_sparse_bsr",
    "to_sparse_coo",
    "to_sparse_csc",
    "to_sparse_csr",
    "transpose_",
    "triangular_solve",
    "unfold",
    "unsafe_chunk",
    "unsafe_split",
    "unsafe_split_with_sizes",
    "unsqueeze_",
    "untyped_storage",
    "values",
    "xpu",
)


class _Refused:
    """A class attribute that refuses a torch name chainrule's Tensor does not have (an AttributeError, so
    ``hasattr`` is False and ``getattr(t, name, default)`` gives the default)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        raise refusal("Tensor", self.name)


def install_tensor_fallback(hints: Optional[dict[str, str]] = None) -> None:
    """Attach the ``Tensor`` refusals (done once, when chainrule is imported)."""
    if hints:
        HINTS.update(hints)
    for name in TENSOR_REFUSED:
        if name not in Tensor.__dict__ and not any(name in k.__dict__ for k in Tensor.__mro__):
            setattr(Tensor, name, _Refused(name))


install_tensor_fallback()
