"""Neural-network building blocks with ``torch.nn`` names and layouts.

>>> import chainrule as cr
>>> model = cr.nn.MLP([64, 32, 10], rng=0)
>>> model
MLP(
  (0): Linear(in_features=64, out_features=32, bias=True)
  (1): ReLU()
  (2): Linear(in_features=32, out_features=10, bias=True)
)
"""

from __future__ import annotations

from . import functional, hooks, init, utils  # noqa: F401  (hooks: forward hooks, get_submodule on Module)
from .activation import ELU, GELU, Flatten, LeakyReLU, LogSoftmax, SiLU, Softmax, Softplus, Unflatten
from .containers import ModuleDict, ModuleList, ParameterDict, ParameterList
from .conv import AvgPool2d, Conv2d, Fold, MaxPool2d, Unfold
from .embedding import Embedding
from .init import manual_seed
from .layers import MLP, Dropout, Identity, LayerNorm, Linear, ReLU, Sigmoid, Tanh
from .losses import (
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    binary_cross_entropy_with_logits,
    cross_entropy,
    hinge_loss,
    l1_loss,
    mse_loss,
    nll_loss,
)
from .module import IncompatibleKeys, Module, Parameter, Sequential
from .norm import BatchNorm1d, BatchNorm2d

__all__ = [
    "ELU",
    "GELU",
    "MLP",
    "AvgPool2d",
    "BCEWithLogitsLoss",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Embedding",
    "Flatten",
    "Fold",
    "Identity",
    "IncompatibleKeys",
    "L1Loss",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "MSELoss",
    "MaxPool2d",
    "Module",
    "ModuleDict",
    "ModuleList",
    "NLLLoss",
    "Parameter",
    "ParameterDict",
    "ParameterList",
    "ReLU",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
    "Unflatten",
    "Unfold",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "functional",
    "hinge_loss",
    "init",
    "l1_loss",
    "manual_seed",
    "mse_loss",
    "nll_loss",
    "utils",
]
