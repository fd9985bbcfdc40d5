"""The namespace a primitive's own forward runs in on symbols, for ``cr.compile``'s schedule writer.

It is the symbolic namespace (:data:`chainrule.symbolic.SYM`), which the rules run in, plus the names the
forwards use.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from ..primitive import REGISTRY
from ..symbolic import SYM, Sym, _sum, binary, shape_of

# --- forwards on symbols -----------------------------------------------------------------------------
# cr.compile runs a primitive's own forward (``prim.xfwd(FWD, *inputs, *statics)``) in this namespace:
# the symbolic vocabulary of the rules, plus the forwards' names.  A name the forwards share with a
# primitive (``xp.tanh``, ``xp.maximum``) becomes that primitive's formula node; functions without an
# exact symbolic form (``astype``, ``widesum``, ``isfinite``, ...) raise, and the forward is then not
# written out.


def _named(name: str, nin: int) -> Any:
    def forward(*args: Any) -> Sym:
        inputs, params = args[:nin], args[nin:]
        shape = np.broadcast_shapes(*(shape_of(a) for a in inputs))
        return Sym("prim", tuple(inputs), shape, (REGISTRY[name], *params))

    return forward


def _reduction(name: str) -> Any:
    def forward(x: Any, axis: Any = None, keepdims: bool = False) -> Sym:
        return Sym("prim", (x,), _sum(x, axis, keepdims).shape, (REGISTRY[name], axis, keepdims))

    return forward


def _no_symbolic_form(*args: Any) -> Any:
    raise TypeError("no exact symbolic form")


FWD = SimpleNamespace(**vars(SYM))
FWD.add = FWD.add_fresh = lambda x, y: binary("add", x, y)
FWD.subtract = lambda x, y: binary("sub", x, y)
FWD.multiply = lambda x, y: binary("mul", x, y)
FWD.divide = lambda x, y: binary("div", x, y)
FWD.pow = lambda x, y: binary("pow", x, y)
FWD.negative = lambda x: -x
FWD.astype = FWD.dtype_of = _no_symbolic_form  # (SYM's are the identity and None: right for printing only)
for _name in ("tanh", "abs", "log1p", "log2", "log10", "erf"):
    setattr(FWD, _name, _named(_name, 1))
FWD.maximum, FWD.minimum, FWD.clip = _named("maximum", 2), _named("minimum", 2), _named("clip", 1)
FWD.mean, FWD.max, FWD.min = _reduction("mean"), _reduction("max"), _reduction("min")
