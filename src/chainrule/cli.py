"""The ``chainrule`` command."""

from __future__ import annotations

import sys
from typing import Optional, Sequence

import numpy as np


def sigmoid_neuron_demo() -> str:
    """The CS231n sigmoid neuron ``1/(1+exp(-(w0 x0 + w1 x1 + w2)))``: forward value and gradients."""
    import chainrule as cr

    w = cr.tensor([2.0, -3.0, -3.0], requires_grad=True)
    x = cr.tensor([-1.0, -2.0], requires_grad=True)
    z = w[0] * x[0] + w[1] * x[1] + w[2]
    f = 1 / (1 + cr.exp(-z))
    f.backward()
    lines = [
        "CS231n sigmoid neuron: f = 1 / (1 + exp(-(w0*x0 + w1*x1 + w2)))",
        "  at w = [2, -3, -3], x = [-1, -2]",
        f"  f  = {f.item():.4f}",
        f"  df/dw = {np.array2string(w.grad.data, precision=4, separator=', ')}",
        f"  df/dx = {np.array2string(x.grad.data, precision=4, separator=', ')}",
    ]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv:
        print(f"chainrule: unknown arguments {' '.join(argv)}; run with no arguments for the demo", file=sys.stderr)
        return 2
    print(sigmoid_neuron_demo())
    return 0
