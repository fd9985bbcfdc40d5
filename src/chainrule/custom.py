"""User-defined primitives: a forward on NumPy arrays plus a hand-written VJP."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Optional

import numpy as np

from .backend import is_foreign, numpy_dtype
from .primitive import Primitive
from .tensor import Tensor, apply


def _shape_and_dtype(x: Any) -> Optional[tuple[tuple, np.dtype]]:
    """``(shape, NumPy dtype)`` of an array, tensor or number; None for anything else (a string, a list...)."""
    if isinstance(x, np.ndarray):
        return x.shape, x.dtype
    if isinstance(x, Tensor):
        return tuple(x.shape), x.dtype
    if isinstance(x, (bool, int, float, complex, np.generic)):
        return (), np.asarray(x).dtype
    if hasattr(x, "shape") and hasattr(x, "dtype") and is_foreign(x):
        return tuple(x.shape), numpy_dtype(x.dtype)
    return None


def _gradient_problem(gi: Any, value: Any) -> Optional[tuple[type, str]]:
    """Why ``gi`` cannot be the gradient of an input holding ``value`` (by shape and dtype): (error, text) or None."""
    got = _shape_and_dtype(gi)
    if got is None:
        return TypeError, f"a {type(gi).__name__}; a gradient is an array (or tensor) or a number"
    want = _shape_and_dtype(value)
    if want is None:  # (an input the engine holds in a form without a shape: nothing to compare)
        return None
    (g_shape, g_dtype), (v_shape, v_dtype) = got, want
    real = v_dtype.kind != "c"
    if g_dtype.kind not in "biuf" + ("" if real else "c"):
        kinds = "real numbers" if real else "numbers"
        return TypeError, f"a gradient of dtype {g_dtype} for an input of dtype {v_dtype}; a gradient holds {kinds}"
    try:
        reducible = np.broadcast_shapes(g_shape, v_shape) == g_shape  # (the engine sums broadcast axes away)
    except ValueError:
        reducible = False
    if not reducible:
        return ValueError, (
            f"a gradient of shape {g_shape} for an input of shape {v_shape}; a gradient has the input's shape "
            "(or one the input broadcasts to, which is summed back)"
        )
    return None


class custom_vjp:
    """Turn a NumPy function into a chainrule primitive with its own backward rule.

    Example::

        @cr.custom_vjp
        def cube(x):
            return x ** 3

        @cube.defvjp
        def cube_vjp(g, out, x):
            return (g * 3 * x ** 2,)   # one gradient per input

        cube(cr.tensor(2.0, requires_grad=True))

    The forward receives the inputs' NumPy arrays (or floats) and returns an
    array; the VJP receives the upstream gradient ``g``, the forward's ``out``
    and the inputs, and returns a tuple with one gradient per input (``None`` for
    an input that gets no gradient).  Under ``create_graph=True`` the VJP is
    called with tensors instead, so if it uses only operators and ``cr.``
    functions its result is differentiable too.
    """

    def __init__(self, fwd: Callable[..., Any], name: Optional[str] = None) -> None:
        params = inspect.signature(fwd).parameters.values()
        if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
            raise TypeError("custom_vjp: the forward must take a fixed number of positional inputs")
        self.nin = len(params)
        self._names = [p.name for p in params]
        self.prim = Primitive(name or getattr(fwd, "__name__", "custom"), fwd, nin=self.nin, plain=True)
        self._rule: Optional[Callable[..., Any]] = None
        functools.update_wrapper(self, fwd)

    def defvjp(self, rule: Callable[..., Any]) -> Callable[..., Any]:
        """Set the backward rule ``rule(g, out, *inputs) -> tuple of gradients``."""
        self._rule = rule
        rule_name = getattr(rule, "__name__", None) or repr(rule)
        where = f"custom_vjp {self.prim.name}: its VJP {rule_name}"

        # The engine asks for one input's gradient at a time; call the user's VJP
        # once per node and hand out its results (keyed by the objects of this call).
        last: list[Any] = [None, None, None]

        def grads_for(g: Any, out: Any, args: tuple) -> tuple:
            if last[0] is g and last[1] is out:
                return last[2]
            grads = rule(g, out, *args[: self.nin])
            if not isinstance(grads, tuple) or len(grads) != self.nin:
                got = f"a tuple of {len(grads)}" if isinstance(grads, tuple) else f"a {type(grads).__name__}"
                raise TypeError(f"{where} must return a tuple of {self.nin} gradients (one per input), got {got}")
            last[:] = [g, out, grads]
            return grads

        def pick(i: int) -> Callable[..., Any]:
            def vjp_i(xp: Any, g: Any, out: Any, *args: Any) -> Any:
                gi = grads_for(g, out, args)[i]
                if gi is None:  # no gradient for this input: zeros of its shape
                    return xp.broadcast_to(xp.sum(g, None, False) * 0.0, xp.shape(args[i]))
                problem = _gradient_problem(gi, args[i])  # checked only for the inputs the engine asks about
                if problem is not None:
                    error, text = problem
                    raise error(f"{where} returned, for input {i} ({self._names[i]}), {text}")
                return gi

            return vjp_i

        self.prim.vjps = tuple(pick(i) for i in range(self.nin))
        return rule

    def __call__(self, *args: Any) -> Tensor:
        if len(args) != self.nin:
            raise TypeError(f"{self.prim.name}: expected {self.nin} inputs, got {len(args)}")
        if self._rule is None:
            raise RuntimeError(f"{self.prim.name}: no VJP defined yet; decorate one with @{self.prim.name}.defvjp")
        return apply(self.prim, *args)
