"""``import chainrule.torch as torch``: torch's names and defaults over chainrule's engine.

The same tensors, graph and teaching tools as ``import chainrule as cr``; what differs is the defaults,
which are torch's here: float32 for tensors made from Python floats and for creation functions, torch's
initialisation of layers, torch's random streams where ``chainrule.torch_random`` provides them.
Importing this module leaves ``chainrule``'s own default dtype at float64, but two rules of the shared engine
become torch's for every tensor in the process: integer promotion and the printed form (docs/torch.md).

A torch name this namespace lacks raises :class:`NotSupportedError` (an ``AttributeError`` and a
``NotImplementedError``) naming the chainrule way where there is one.
"""

from __future__ import annotations

import functools as _functools
from typing import Any

from .. import linalg  # noqa: F401
from .. import ops as _ops
from .. import torch_more as _tmore
from .. import torch_ops as _tops
from ..anomaly import detect_anomaly, is_anomaly_enabled  # noqa: F401
from ..grad_mode import enable_grad, grad_enabled, inference_mode, is_grad_enabled, no_grad  # noqa: F401
from ..torch_names import NotSupportedError, module_getattr  # noqa: F401  (torch.NotSupportedError)
from . import _random, cuda  # noqa: F401
from ._core import (  # noqa: F401
    Size,
    arange,
    as_tensor,
    bool_,
    device,
    double,
    empty,
    empty_like,
    eye,
    finfo,
    float16,
    float32,
    float64,
    from_numpy,
    full,
    full_like,
    get_default_device,
    get_default_dtype,
    half,
    iinfo,
    int8,
    int16,
    int32,
    int64,
    is_floating_point,
    is_nonzero,
    is_tensor,
    linspace,
    logspace,
    long,
    numel,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    set_default_device,
    set_default_dtype,
    set_printoptions,
    short,
    tensor,
    uint8,
    uint16,
    uint32,
    uint64,
    zeros,
    zeros_like,
)
from ._histogram import histogram  # noqa: F401
from ._random import (  # noqa: F401
    Generator,
    bernoulli,
    default_generator,
    get_rng_state,
    initial_seed,
    manual_seed,
    multinomial,
    normal,
    poisson,
    randint_like,
    seed,
    set_rng_state,
)
from ._serialization import load, save  # noqa: F401
from ._tensor_class import (  # noqa: F401
    BoolTensor,
    ByteTensor,
    CharTensor,
    DoubleTensor,
    FloatTensor,
    HalfTensor,
    IntTensor,
    LongTensor,
    ShortTensor,
    Tensor,
)

# the engine's functions, under torch's names (cr's own, unchanged)
for _name in (
    "abs add addcdiv addcmul all allclose amax amin any argmax argmin argsort bmm broadcast_to cat ceil "
    "chunk clamp_max clamp_min clip clone concat concatenate cos cosh count_nonzero cumsum diag div divide dot "
    "einsum eq equal exp exp2 expand_dims flatten flip floor gather ge gt hstack isclose isfinite isinf isnan le lerp "
    "log log10 log1p log2 log_softmax logical_not logsumexp lt masked_fill matmul max maximum mean min minimum mm mul "
    "multiply mv nan_to_num ne neg negative outer permute pow prod reciprocal relu repeat reshape roll round rsqrt "
    "sigmoid sign sin sinh softmax sort split sqrt square squeeze stack std sub subtract sum swapaxes swapdims t "
    "take_along_dim tan tanh tile topk transpose tril triu true_divide trunc unbind unsqueeze var vstack"
).split():
    globals()[_name] = getattr(_ops, _name)
for _name in (
    "index_select masked_select nonzero argwhere scatter scatter_add index_add index_fill unique bincount histc "
    "remainder fmod floor_divide narrow unflatten movedim repeat_interleave meshgrid broadcast_tensors median "
    "var_mean std_mean nanmean nansum diff addmm baddbmm addmv logical_and logical_or logical_xor isin searchsorted "
    "where"
).split():
    globals()[_name] = getattr(_tops, _name)


def _torch_keywords(fn: Any, names: tuple[str, ...]) -> Any:
    """``fn`` that also takes its leading arguments by torch's keyword names (``matmul(input=a, other=b)``)."""

    @_functools.wraps(fn)
    def call(*args: Any, **kw: Any) -> Any:
        if kw:  # (this module's globals shadow any/list/len: only plain statements here)
            given = [*args]
            for n in names[args.__len__() :]:
                if n not in kw:
                    break
                given.append(kw.pop(n))
            args = tuple(given)
        return fn(*args, **kw)

    return call


for _name in (
    "add sub mul div matmul mm bmm outer maximum minimum eq ne lt le gt ge true_divide multiply subtract "
    "divide equal allclose isclose"
).split():
    globals()[_name] = _torch_keywords(globals()[_name], ("input", "other"))
pow = _torch_keywords(_ops.pow, ("input", "exponent"))  # noqa: A001
mv = _torch_keywords(_ops.mv, ("input", "vec"))
dot = _torch_keywords(_ops.dot, ("input", "tensor"))
lerp = _torch_keywords(_ops.lerp, ("input", "end", "weight"))
moveaxis = _tops.movedim
for _name in _tmore.NAMES:
    globals()[_name] = getattr(_tmore, _name)
arcsin, arccos, arctan, arctan2 = _tmore.asin, _tmore.acos, _tmore.atan, _tmore.atan2
absolute = _ops.abs
clamp = _ops.clip
norm = linalg.norm_torch
inverse = linalg.inv  # torch.inverse(A) is torch.linalg.inv(A)
set_grad_enabled = grad_enabled
float = float32  # noqa: A001
int = int32  # noqa: A001
bool = bool_  # noqa: A001
from ..nn.functional import erf  # noqa: E402, F401

# the submodules (imported last: they read the names above)
from . import autograd, distributions, func, nn, optim, utils  # noqa: E402, F401

# The torch release whose names, defaults and random streams this namespace follows (programs print it or
# compare it); the local label says which library answers.
__version__ = "2.13.0+chainrule"

__getattr__ = module_getattr("torch")
__all__ = [n for n in dir() if not n.startswith("_") and n not in ("annotations",)]
