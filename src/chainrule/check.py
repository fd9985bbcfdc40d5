"""gradcheck: compare backprop with central finite differences in float64."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import autodiff
from .tensor import Tensor, as_value


class GradcheckError(AssertionError):
    """Backprop and finite differences disagree."""


def _evaluate(f: Callable, args: list) -> np.ndarray:
    out = f(*args)
    return np.asarray(out.data if isinstance(out, Tensor) else out, dtype=np.float64)


def _host(value: Any) -> Any:
    from .backend import is_foreign, to_numpy

    return np.array(to_numpy(value)) if is_foreign(value) else value


def gradcheck(
    f: Callable[..., Any],
    *inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
) -> bool:
    """Check ``f``'s reverse-mode Jacobian against central differences, in float64.

    Every floating-point input is checked (others are passed through as
    constants).  Returns True, or raises :class:`GradcheckError` naming the
    input, the worst element, and the expected (finite-difference) and obtained
    (backprop) values.
    """
    # in float64 on the host: another library's arrays are checked through NumPy copies
    values = [_host(as_value(x, "gradcheck")) for x in inputs]
    is_var = [type(v) is float or np.result_type(v).kind == "f" for v in values]
    base = [np.array(v, dtype=np.float64) if var else v for v, var in zip(values, is_var)]

    variables = [Tensor(b.copy(), True) if var else b for b, var in zip(base, is_var)]
    out = f(*variables)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: f must return a Tensor, got {type(out).__name__}")
    out_shape = out.shape
    m = out.size
    wrt = [v for v, var in zip(variables, is_var) if var]
    analytic = [np.zeros((m,) + w.shape) for w in wrt]
    for k in range(m):
        seed = np.zeros(m)
        seed[k] = 1.0
        if out.requires_grad:
            gs = autodiff.grad(out, wrt, grad_outputs=seed.reshape(out_shape), retain_graph=True, allow_unused=True)
            for a, g in zip(analytic, gs):
                if g is not None:
                    a[k] = np.asarray(g.data)

    j = 0
    for idx, (b, var) in enumerate(zip(base, is_var)):
        if not var:
            continue
        numeric = np.zeros((m,) + b.shape)
        flat = b.reshape(-1)
        for e in range(flat.size):
            args_plus = [x.copy() if isinstance(x, np.ndarray) else x for x in base]
            args_minus = [x.copy() if isinstance(x, np.ndarray) else x for x in base]
            args_plus[idx].reshape(-1)[e] += eps
            args_minus[idx].reshape(-1)[e] -= eps
            plus = _evaluate(f, [Tensor(a) if v else a for a, v in zip(args_plus, is_var)])
            minus = _evaluate(f, [Tensor(a) if v else a for a, v in zip(args_minus, is_var)])
            diff = plus - minus
            numeric.reshape(m, -1)[:, e] = diff.reshape(-1) / (2 * eps)
        got = analytic[j]
        j += 1
        err = np.abs(got - numeric) - (atol + rtol * np.abs(numeric))
        bad = ~(err <= 0) & ~(np.isnan(got) & np.isnan(numeric))
        if bad.any():
            worst = np.unravel_index(int(np.nanargmax(np.where(bad, np.abs(got - numeric), -1.0))), numeric.shape)
            out_index = np.unravel_index(int(worst[0]), out_shape) if out_shape else ()
            in_index = tuple(int(w) for w in worst[1:])
            raise GradcheckError(
                f"gradcheck: input {idx}, element {in_index} (of output element {tuple(int(o) for o in out_index)}): "
                f"finite differences give {numeric[worst]:.10g} but backprop gives {got[worst]:.10g} "
                f"(atol={atol}, rtol={rtol})"
            )
    return True
