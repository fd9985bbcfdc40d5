"""``torch.nn``: chainrule's layers with torch's initialisation and signatures, ``Parameter`` as a class,
and a clear error for every torch name chainrule lacks."""

from __future__ import annotations

from ... import nn as _nn
from ...nn.hooks import RemovableHandle  # noqa: F401
from ...torch_names import module_getattr
from . import functional, init, utils  # noqa: F401
from ._attention import (  # noqa: F401
    MultiheadAttention,
    NonDynamicallyQuantizableLinear,
    TransformerEncoder,
    TransformerEncoderLayer,
)
from ._layers import BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Embedding, LayerNorm, Linear  # noqa: F401
from ._layers_more import (  # noqa: F401
    CELU,
    GLU,
    SELU,
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AvgPool1d,
    ConstantPad1d,
    ConstantPad2d,
    Conv1d,
    ConvTranspose2d,
    CosineSimilarity,
    GroupNorm,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    LogSigmoid,
    MaxPool1d,
    Mish,
    PairwiseDistance,
    PReLU,
    ReLU6,
    Softmin,
    Softsign,
    Tanhshrink,
    Upsample,
    ZeroPad1d,
    ZeroPad2d,
)
from ._losses import BCELoss, HuberLoss, KLDivLoss, L1Loss, MSELoss, SmoothL1Loss  # noqa: F401
from ._parameter import Buffer, Parameter  # noqa: F401
from ._rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell  # noqa: F401

Module = _nn.Module
Sequential = _nn.Sequential
ModuleList = _nn.ModuleList
ModuleDict = _nn.ModuleDict
ParameterList = _nn.ParameterList
ParameterDict = _nn.ParameterDict
Identity = _nn.Identity
ReLU = _nn.ReLU
Tanh = _nn.Tanh
Sigmoid = _nn.Sigmoid
GELU = _nn.GELU
ELU = _nn.ELU
SiLU = _nn.SiLU
LeakyReLU = _nn.LeakyReLU
Softplus = _nn.Softplus
Softmax = _nn.Softmax
LogSoftmax = _nn.LogSoftmax
Flatten = _nn.Flatten
Unflatten = _nn.Unflatten
MaxPool2d = _nn.MaxPool2d
AvgPool2d = _nn.AvgPool2d
Unfold = _nn.Unfold
Fold = _nn.Fold
CrossEntropyLoss = _nn.CrossEntropyLoss
NLLLoss = _nn.NLLLoss
BCEWithLogitsLoss = _nn.BCEWithLogitsLoss

__getattr__ = module_getattr("torch.nn")
