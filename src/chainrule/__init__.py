"""chainrule: reverse-mode automatic differentiation on NumPy, built to show its work.

>>> import chainrule as cr
>>> x = cr.tensor(3.0, requires_grad=True)
>>> y = x * x + 2 * x
>>> y.backward()
>>> x.grad
tensor(8.0)
"""

from __future__ import annotations

from . import data, nn, optim
from .anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled
from .autodiff import GraphFreedError
from .autodiff import grad as autograd_grad
from .check import GradcheckError, gradcheck
from .checkpoint import CheckpointError, load, save
from .compile import CompileError, compile  # noqa: A004  (cr.compile, as torch.compile)
from .custom import custom_vjp
from .explain import ParseError, derive, draw, trace  # noqa: E402  (the tools read the engine above)
from .forward import JVPError, hessian, hvp, jacfwd, jvp, linearize
from .ops import (
    abs,
    add,
    arange,
    astype,
    broadcast_to,
    clip,
    concatenate,
    cos,
    divide,
    dot,
    exp,
    expand_dims,
    log,
    log1p,
    log_softmax,
    logsumexp,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    multiply,
    negative,
    ones,
    ones_like,
    power,
    relu,
    reshape,
    scatter_add,
    sigmoid,
    sign,
    sin,
    softmax,
    sqrt,
    squeeze,
    stack,
    subtract,
    sum,
    swapaxes,
    tanh,
    transpose,
    where,
    zeros,
    zeros_like,
)
from .primitive import REGISTRY, Primitive
from .primitives.linear import apply_linear as linear
from .tensor import Tensor, enable_grad, is_grad_enabled, no_grad, tensor
from .transforms import grad, jacobian, jacrev, value_and_grad, vjp

manual_seed = nn.manual_seed

clamp = clip

__version__ = "0.1.0"

__all__ = [
    "CompileError",
    "compile",
    "linear",
    "REGISTRY",
    "CheckpointError",
    "AnomalyError",
    "GradcheckError",
    "GraphFreedError",
    "JVPError",
    "ParseError",
    "Primitive",
    "Tensor",
    "abs",
    "add",
    "arange",
    "astype",
    "autograd_grad",
    "broadcast_to",
    "clamp",
    "clip",
    "concatenate",
    "cos",
    "data",
    "detect_anomaly",
    "custom_vjp",
    "derive",
    "divide",
    "draw",
    "dot",
    "enable_grad",
    "exp",
    "expand_dims",
    "grad",
    "is_anomaly_enabled",
    "gradcheck",
    "hessian",
    "hvp",
    "is_grad_enabled",
    "jacfwd",
    "jacobian",
    "jacrev",
    "jvp",
    "linearize",
    "log",
    "load",
    "log1p",
    "log_softmax",
    "logsumexp",
    "manual_seed",
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "multiply",
    "negative",
    "nn",
    "no_grad",
    "ones",
    "ones_like",
    "optim",
    "power",
    "relu",
    "reshape",
    "save",
    "scatter_add",
    "sigmoid",
    "sign",
    "sin",
    "softmax",
    "sqrt",
    "squeeze",
    "stack",
    "subtract",
    "sum",
    "swapaxes",
    "tanh",
    "tensor",
    "trace",
    "transpose",
    "value_and_grad",
    "vjp",
    "where",
    "zeros",
    "zeros_like",
]
