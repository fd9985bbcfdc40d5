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

from . import init
from .init import manual_seed
from .layers import MLP, Dropout, Identity, LayerNorm, Linear, ReLU, Sigmoid, Tanh
from .losses import binary_cross_entropy_with_logits, cross_entropy, hinge_loss, mse_loss
from .module import IncompatibleKeys, Module, Parameter, Sequential

__all__ = [
    "MLP",
    "Dropout",
    "Identity",
    "IncompatibleKeys",
    "LayerNorm",
    "Linear",
    "Module",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "hinge_loss",
    "init",
    "manual_seed",
    "mse_loss",
]
