"""Forward mode: Jacobian-vector products swept over a recorded graph.

``f`` is evaluated once with its inputs as tensors that require grad, which
records the graph exactly as for backprop.  A *tangent sweep* then visits the
recorded nodes inputs-first and computes each node's output tangent from its
inputs' tangents with the primitive's JVP rule.  One sweep pushes one input
direction through the whole graph; the recording can be swept any number of
times (``linearize``, ``jacfwd``).

Where a primitive's JVP comes from (``jvp_source`` reports it):

* ``kind="linear"`` (add, sum, reshape, getitem ...): the JVP is the primitive
  itself applied to the tangents (static arguments unchanged).
* ``kind="bilinear"`` (mul, matmul): ``f(tx, y) + f(x, ty)``.
* ``kind="elementwise"`` (exp, div, where ...): the Jacobian is diagonal, so the
  VJP rule called with ``g = tangent`` is the JVP; the terms of all inputs add.
* an explicit ``defjvp`` rule (max, min, logsumexp, softmax, log_softmax).
* anything else (a :class:`chainrule.custom_vjp` primitive): the VJP is
  transposed: ``J t = d/dg <vjp(g), t>``, one small reverse pass per node.

Tangents are ``None`` for symbolic zeros: a node none of whose inputs depends on
the seeded inputs costs nothing.  At top level the sweep runs the rules on
NumPy arrays; when the primals or tangents are themselves being differentiated
(inside ``grad``, ``jacrev`` ...) it runs them on tensors, so the sweep is
recorded and can be differentiated again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import autodiff
from .backend import is_foreign, namespace_of
from .creation import tensor
from .grad_mode import enable_grad
from .graph import node_of, topological
from .numeric import NUMPY
from .ops import TENSOR, broadcast_to, unbroadcast
from .primitive import Primitive
from .primitives.batching import moveaxis
from .saved import keep_values
from .tensor import Tensor, apply, as_value, node_parts
from .transforms import _DEPTH, ArgNums, _argnums, _raw, _run, _variables, refuse_other_libraries
from .values import foreign_forward
from .vectorize import vmap

ndarray = np.ndarray


class JVPError(TypeError):
    """A primitive has no forward-mode rule and none could be derived from its VJP."""


def jvp_source(prim: Primitive) -> str:
    """How forward mode computes ``prim``'s JVP: 'explicit', 'linear', 'bilinear', 'elementwise' or 'transposed VJP'."""
    if prim.jvp is not None:
        return "explicit"
    if prim.kind in ("linear", "bilinear", "elementwise"):
        return prim.kind
    return "transposed VJP"


# --- helpers that work on both raw values and tensors --------------------------------------


def _zeros(value: Any, tensors: bool) -> Any:
    """Zeros shaped like a primal value or tensor, as a raw array or a constant tensor."""
    raw = value._data if type(value) is Tensor else value
    if is_foreign(raw):
        z = namespace_of(raw).zeros_as(tuple(raw.shape), raw)
    else:
        z = np.zeros(np.shape(raw), dtype=_dtype(value))
    return Tensor(z) if tensors else z


def _dtype(value: Any) -> np.dtype:
    if type(value) is Tensor:
        return value.dtype
    if type(value) is float:
        return np.dtype(np.float64)
    dt = np.result_type(value)
    return dt if dt.kind == "f" else np.dtype(np.float64)


def _call(prim: Primitive, args: Sequence[Any], tensors: bool) -> Any:
    """Run a primitive's forward: recorded (on tensors) or raw (NumPy)."""
    if tensors:
        return apply(prim, *args)
    raw = tuple(a._data if isinstance(a, Tensor) else a for a in args)  # Parameter too
    nin = len(args) - 1 if prim.variadic else prim.nin
    if any(is_foreign(v) for v in raw[:nin]):  # another array library's values: its own namespace runs them
        return foreign_forward(prim, raw, nin)
    return prim.fwd(*raw)


def _add(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


# --- the JVP of one node -----------------------------------------------------------------


def node_jvp(prim: Primitive, tangents: Sequence[Any], out: Any, args: Sequence[Any], xp: Any) -> Any:
    """The output tangent of one primitive application (``None`` if all input tangents are zero).

    ``tangents`` has one entry per tensor input (``None`` = zero); ``out`` and
    ``args`` are the primal result and the forward's arguments, raw values for
    ``xp = NUMPY`` or tensors for the ``TENSOR`` namespace.
    """
    tensors = xp is not NUMPY
    nin = len(tangents)
    if all(t is None for t in tangents):
        return None
    if prim.jvp is not None:
        return prim.jvp(xp, tuple(tangents), out, *args)
    kind = prim.kind
    if kind == "linear":
        targs = [t if t is not None else _zeros(args[i], tensors) for i, t in enumerate(tangents)]
        return _call(prim, list(targs) + list(args[nin:]), tensors)
    if kind == "bilinear":
        result = None
        for i, t in enumerate(tangents):
            if t is not None:
                swapped = list(args)
                swapped[i] = t
                result = _add(result, _call(prim, swapped, tensors))
        return result
    if kind == "elementwise":
        result = None
        for i, t in enumerate(tangents):
            if t is not None:
                rule = prim.vjps[i]
                if rule is not None:
                    result = _add(result, rule(xp, t, out, *args))
        return result
    return _transposed_vjp(prim, tangents, out, args, tensors)


def _transposed_vjp(prim: Primitive, tangents: Sequence[Any], out: Any, args: Sequence[Any], tensors: bool) -> Any:
    """JVP of a primitive with only a VJP: ``J t = d/dg Σ_i <vjp_i(g), t_i>`` (the VJP is linear in g).

    Needs the VJP rule to be differentiable in ``g`` on tensors, as every rule in
    the registry is and as a ``custom_vjp`` rule written with chainrule
    operations is.
    """

    def as_tensor(v: Any) -> Any:
        return v if type(v) is Tensor or v is None else Tensor(v)

    out_t = as_tensor(out)
    nin = len(tangents)
    # inputs with a tangent are tensors in the recorded graph; constants stay raw, as in backprop
    args_t = [as_tensor(a) if i < nin and tangents[i] is not None else a for i, a in enumerate(args)]
    g = Tensor(_zeros(out_t, False), True)
    with enable_grad():
        total = None
        for i, t in enumerate(tangents):
            if t is None:
                continue
            rule = prim.vjps[0] if prim.variadic else (prim.vjps[i] if i < len(prim.vjps) else None)
            if rule is None:
                continue
            try:
                gi = rule(TENSOR, g, out_t, i, *args_t) if prim.variadic else rule(TENSOR, g, out_t, *args_t)
            except Exception as exc:  # any failure: report it with the primitive's name
                raise JVPError(
                    f"jvp: primitive {prim.name!r} has no forward-mode rule, and its VJP rule could not run on "
                    f"chainrule tensors to derive one ({type(exc).__name__}: {exc}). Write the VJP with chainrule "
                    "operations, or attach a JVP with chainrule.primitive.defjvp"
                ) from exc
            if type(gi) is not Tensor:
                gi = Tensor(np.broadcast_to(np.asarray(gi, dtype=out_t.dtype), np.shape(args_t[i])).copy())
            gi = unbroadcast(gi, np.shape(args_t[i]._data if type(args_t[i]) is Tensor else args_t[i]))
            total = _add(total, (gi * as_tensor(t)).sum())
        if total is None or not total.requires_grad:
            return None
        (jt,) = autodiff.grad(total, [g], create_graph=tensors, allow_unused=True)
    if jt is None:
        return None
    return jt if tensors else jt._data


def _fit(t: Any, out: Any, tensors: bool) -> Any:
    """A node's tangent with its output's shape (broadcast) and dtype, in the sweep's representation."""
    if tensors:
        if type(t) is not Tensor:
            t = Tensor(np.asarray(t, dtype=out.dtype))
        if t.shape != out.shape:
            t = broadcast_to(t, out.shape)
        if t.dtype != out.dtype:
            t = t.astype(out.dtype)
        return t
    if type(out) is float:
        return float(t)
    if type(out) is not ndarray and is_foreign(out):  # another library's array (a to_device node's result)
        return t
    if type(t) is not ndarray:
        t = np.asarray(t)
    if t.shape != out.shape:
        t = np.broadcast_to(t, out.shape)
    if t.dtype != out.dtype:
        t = t.astype(out.dtype)
    return t


# --- the sweep ------------------------------------------------------------------------------


class Recording:
    """A recorded evaluation that tangents can be pushed through, any number of times.

    ``outputs`` are the tensors ``f`` returned and ``variables`` the tensors that
    stood for the differentiated inputs.  With ``tensors=True`` the sweeps run on
    tensors (recorded, so they can be differentiated again); otherwise on raw
    NumPy values.
    """

    def __init__(self, outputs: Sequence[Tensor], variables: Sequence[Tensor], tensors: bool) -> None:
        self.outputs = list(outputs)
        self.variables = list(variables)
        self.tensors = tensors
        skip = {id(v) for v in variables}  # a variable's tangent is its seed, never recomputed
        depends = set(skip)  # the variables and the nodes made from them: only those get tangents
        steps: list[tuple] = []
        for out in self.outputs:
            if out._node is None:
                continue
            # topological() lists the output first; reversed, every tensor follows its inputs.
            # Concatenating the per-output orders (without repeats) keeps that property.
            for t in reversed(topological(out)):
                if id(t) in skip:
                    continue
                skip.add(id(t))
                # A node no variable reaches (an earlier graph's, say) is a constant here: its values,
                # which may have been released (chainrule.saved), are never read.
                if not any(x is not None and id(x) in depends for x in node_parts(t)[0]):
                    continue
                depends.add(id(t))
                node = node_of(t)
                assert node is not None
                ins = node.inputs
                if tensors:
                    args = tuple(ins[i] if ins[i] is not None else node.args[i] for i in range(len(ins))) + node.params
                    steps.append((t, node.prim, ins, args, t))
                else:
                    steps.append((t, node.prim, ins, node.args, t._data))
        self.steps = steps

    def push(self, seeds: Sequence[Any]) -> list[Any]:
        """Tangents of the outputs for one tangent per variable (``None`` = zero, also in the result)."""
        tangents: dict[int, Any] = {}
        for v, s in zip(self.variables, seeds):
            if s is not None:
                tangents[id(v)] = s
        if not tangents:
            return [None] * len(self.outputs)
        tensors = self.tensors
        if tensors:
            with enable_grad():
                self._sweep(tangents, TENSOR)
        else:
            self._sweep(tangents, NUMPY)
        return [tangents.get(id(o)) for o in self.outputs]

    def _sweep(self, tangents: dict[int, Any], xp: Any) -> None:
        get = tangents.get
        tensors = self.tensors
        for t, prim, ins, args, out in self.steps:
            tin = [None if inp is None else get(id(inp)) for inp in ins]
            for x in tin:
                if x is not None:
                    break
            else:
                continue  # no input depends on the seeded ones: a symbolic zero, nothing to compute
            tout = node_jvp(prim, tin, out, args, xp)
            if tout is not None:
                tangents[id(t)] = _fit(tout, out, tensors)


# --- the transforms ----------------------------------------------------------------------------


def _evaluate(
    f: Callable, args: Sequence[Any], kwargs: dict, op: str, has_aux: bool = False
) -> tuple[list[Tensor], bool, Any]:
    """Call ``f`` recording the graph: its result as a list of tensors, whether it was a tuple, and its aux."""
    with keep_values():  # forward mode replays the recorded values (a JVP rule may read any of them)
        out = _run(f, args, kwargs)
    aux = None
    if has_aux:
        out, aux = _split_aux(out, op)
    multi = isinstance(out, (tuple, list))
    items = list(out) if multi else [out]
    if multi and not items:
        raise ValueError(f"{op}: f returned an empty {type(out).__name__}; return an array or a tuple of arrays")
    return [o if isinstance(o, Tensor) else Tensor(as_value(o, op)) for o in items], multi, aux


def _split_aux(out: Any, op: str) -> tuple[Any, Any]:
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        size = f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""
        raise TypeError(f"{op}: with has_aux=True, f must return a pair (output, aux), got {type(out).__name__}{size}")
    return out[0], out[1]


def _aux(aux: Any, nested: bool) -> Any:
    """The auxiliary data ``f`` returned, passed through undifferentiated (tensors become values at top level)."""
    if nested:
        return aux
    if isinstance(aux, Tensor):
        return _raw(aux)
    if isinstance(aux, (tuple, list)):
        return type(aux)(_aux(a, False) for a in aux)
    if isinstance(aux, dict):
        return {k: _aux(v, False) for k, v in aux.items()}
    return aux


def _pack(items: Sequence[Any], multi: bool) -> Any:
    return tuple(items) if multi else items[0]


def _result(t: Any, like: Tensor, nested: bool) -> Any:
    """A tangent (``None`` = zero) as the caller sees it: a tensor when nested, else a float or array."""
    if t is None:
        z = 0.0 if type(like._data) is float else _zeros(like, False)
        return Tensor(z) if nested else z
    if nested:
        return t if type(t) is Tensor else Tensor(t)
    t = t._data if type(t) is Tensor else t
    if type(t) is ndarray and not t.flags.writeable:
        t = t.copy()  # a broadcast view made by the sweep: give the caller an array of its own
    return t


def _seed(tangent: Any, var: Tensor, i: int, tensors: bool, op: str) -> Any:
    """A user's tangent for input ``i``, checked against the primal and converted for the sweep."""
    if tensors and isinstance(tangent, Tensor):
        value: Any = tangent
        shape = tangent.shape
    else:
        value = as_value(tangent, op)
        shape = np.shape(value)
    if shape != var.shape:
        raise ValueError(
            f"{op}: tangent {i} has shape {shape} but primal {i} has shape {var.shape}; "
            "each tangent must have its primal's shape"
        )
    if isinstance(value, Tensor):
        return value if value.dtype == var.dtype else value.astype(var.dtype)
    if type(var._data) is float:
        value = float(value)
    elif is_foreign(var._data):
        value = tensor(value, dtype=var.dtype, device=var.device)._data  # the primal's library and device
    else:
        value = np.array(value, dtype=var.dtype)  # a copy: the sweep may hand it back as an output tangent
    return Tensor(value) if tensors else value


def _sequence(x: Any, op: str, what: str) -> tuple:
    if not isinstance(x, (tuple, list)):
        raise TypeError(
            f"{op}: {what} must be a tuple or list with one entry per argument of f, got {type(x).__name__}; "
            f"for a function of one argument write {op}(f, (x,), (v,))"
        )
    return tuple(x)


def _any_foreign(variables: Sequence[Tensor]) -> bool:
    return any(type(v._data) is not ndarray and type(v._data) is not float for v in variables)


def _wants_tensors(nested: bool, tangents: Sequence[Any]) -> bool:
    return nested or any(isinstance(t, Tensor) and t.requires_grad for t in tangents)


def jvp(f: Callable, primals: Sequence[Any], tangents: Sequence[Any], has_aux: bool = False) -> tuple:
    """Evaluate ``f(*primals)`` and its directional derivative: ``(out, J · tangents)``.

    ``primals`` and ``tangents`` are tuples (or lists) with one entry per
    argument of ``f``; each tangent has its primal's shape.  One forward pass
    plus one tangent sweep, whatever the sizes.  If ``f`` returns a tuple, both
    results are tuples.  With ``has_aux=True``, ``f`` returns ``(output, aux)``
    and the result is ``(out, tangent_out, aux)``.
    """
    primals = _sequence(primals, "jvp", "primals")
    tangents = _sequence(tangents, "jvp", "tangents")
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: got {len(primals)} primals but {len(tangents)} tangents; give one tangent per primal")
    if not primals:
        raise ValueError("jvp: primals is empty; f needs at least one argument to differentiate")
    new, variables, nested = _variables(primals, tuple(range(len(primals))), "jvp")
    tensors = _wants_tensors(nested, tangents)
    sweep = tensors or _any_foreign(variables)  # another array library: sweep with the engine's own ops
    seeds = [_seed(t, v, i, sweep, "jvp") for i, (t, v) in enumerate(zip(tangents, variables))]
    outs, multi, aux = _evaluate(f, new, {}, "jvp", has_aux)
    touts = Recording(outs, variables, sweep).push(seeds)
    values = [o if tensors else _raw(o) for o in outs]
    result = (_pack(values, multi), _pack([_result(t, o, tensors) for t, o in zip(touts, outs)], multi))
    return result + (_aux(aux, tensors),) if has_aux else result


def linearize(f: Callable, *primals: Any, has_aux: bool = False) -> tuple:
    """Evaluate ``f(*primals)`` once and return ``(out, f_jvp)``; ``f_jvp(*tangents)`` is ``J · tangents``.

    ``f`` is not run again: each call of ``f_jvp`` is one tangent sweep over the
    recorded graph, so pushing many directions through the same point is cheap.
    With ``has_aux=True``, ``f`` returns ``(output, aux)`` and the result is
    ``(out, f_jvp, aux)``.
    """
    if not primals:
        raise ValueError("linearize: give at least one primal: linearize(f, x)")
    new, variables, nested = _variables(primals, tuple(range(len(primals))), "linearize")
    outs, multi, aux = _evaluate(f, new, {}, "linearize", has_aux)
    recording = Recording(outs, variables, nested)

    def f_jvp(*tangents: Any) -> Any:
        if len(tangents) != len(variables):
            raise TypeError(f"linearize: f_jvp takes {len(variables)} tangents (one per primal), got {len(tangents)}")
        seeds = [_seed(t, v, i, nested, "linearize") for i, (t, v) in enumerate(zip(tangents, variables))]
        touts = recording.push(seeds)
        return _pack([_result(t, o, nested) for t, o in zip(touts, outs)], multi)

    values = [o if nested else _raw(o) for o in outs]
    result = (_pack(values, multi), f_jvp)
    return result + (_aux(aux, nested),) if has_aux else result


def jacfwd(f: Callable, argnums: ArgNums = 0, has_aux: bool = False) -> Callable:
    """The Jacobian of ``f`` by forward mode: one tangent sweep per input element.

    For ``f: Rⁿ → Rᵐ`` this costs one forward pass plus ``n`` sweeps, where
    :func:`chainrule.jacrev` costs one forward pass plus ``m`` backward passes:
    use ``jacfwd`` for tall Jacobians (few inputs, many outputs) and ``jacrev``
    for wide ones (many inputs, few outputs, such as a loss).  Both give an
    array of shape ``out.shape + arg.shape`` (a tuple over ``argnums`` when it
    is a tuple; a tuple over outputs when ``f`` returns a tuple).  With
    ``has_aux=True``, ``f`` returns ``(output, aux)`` and the result is
    ``(jacobian, aux)``.
    """

    @functools.wraps(f)
    def jacfwd_f(*args: Any, **kwargs: Any) -> Any:
        from . import ops

        nums = _argnums(argnums, len(args), "jacfwd")
        new, variables, nested = _variables(args, nums, "jacfwd")
        refuse_other_libraries(variables, "jacfwd")
        outs, multi, aux = _evaluate(f, new, kwargs, "jacfwd", has_aux)
        # one tangent sweep per variable, traced once and run by vmap on all its basis vectors at once
        recording = Recording(outs, variables, True)
        blocks: list[list[Any]] = [[None] * len(variables) for _ in outs]  # blocks[o][j]: (n_j,) + out.shape
        for j, v in enumerate(variables):
            if v.size == 0:
                for o, out in enumerate(outs):
                    blocks[o][j] = Tensor(np.zeros((0,) + out.shape, out.dtype))
                continue

            def push(e: Tensor, j: int = j) -> tuple:
                seeds: list[Any] = [None] * len(variables)
                seeds[j] = e
                return tuple(_result(t, o, True) for t, o in zip(recording.push(seeds), outs))

            basis = np.eye(v.size, dtype=v.dtype).reshape((v.size,) + v.shape)
            for o, col in enumerate(vmap(push)(Tensor(basis))):
                blocks[o][j] = col
        result = []
        for o, out in enumerate(outs):
            per_arg = []
            for j, v in enumerate(variables):
                cols = blocks[o][j]  # (v.size,) + out.shape
                if nested and v.shape == () and out.shape == ():
                    per_arg.append(cols.sum())  # one entry, as a Python float (the scalar path keeps floats)
                elif nested and v.shape == ():
                    per_arg.append(cols[0])
                elif nested:
                    moved = moveaxis(TENSOR, cols, 0, -1) if out.shape else cols
                    per_arg.append(ops.reshape(moved, out.shape + v.shape))
                else:
                    jac = np.moveaxis(np.asarray(cols._data), 0, -1).reshape(out.shape + v.shape).astype(out.dtype)
                    scalar = type(out._data) is float and type(v._data) is float
                    per_arg.append(float(jac) if scalar else jac)
            result.append(per_arg[0] if isinstance(argnums, int) else tuple(per_arg))
        return (_pack(result, multi), _aux(aux, nested)) if has_aux else _pack(result, multi)

    return jacfwd_f


def hessian(f: Callable, argnums: ArgNums = 0, has_aux: bool = False) -> Callable:
    """The Hessian of ``f``, forward over reverse: ``jacfwd(jacrev(f))``.

    For a scalar ``f`` of ``x`` the result has shape ``x.shape + x.shape``
    (generally ``out.shape + x.shape + x.shape``).  With a tuple ``argnums`` it
    is a tuple of tuples of blocks, ``H[i][j] = ∂²f / ∂xᵢ ∂xⱼ``.  With
    ``has_aux=True``, ``f`` returns ``(output, aux)`` and the result is
    ``(hessian, aux)``.
    """
    from .transforms import jacobian

    if not has_aux:
        return jacfwd(jacobian(f, argnums), argnums)

    @functools.wraps(f)
    def hessian_f(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
        box: list[Any] = []

        def main(*a: Any, **k: Any) -> Any:  # evaluated exactly once, inside both transforms
            out, aux = _split_aux(f(*a, **k), "hessian")
            box.append(aux)
            return out

        H = jacfwd(jacobian(main, argnums), argnums)(*args, **kwargs)
        nested = _DEPTH.value > 0 or any(isinstance(a, Tensor) and a.requires_grad for a in args)
        return H, _aux(box[0], nested)

    return hessian_f


def hvp(f: Callable, x: Any, v: Any) -> Any:
    """The Hessian-vector product ``∇²f(x) · v`` of a scalar ``f``, without building the Hessian.

    Forward over reverse: the JVP of ``grad(f)`` along ``v``, which costs one
    forward pass, one recorded backward pass and one tangent sweep: a few times
    the cost of ``f`` itself, however large ``x`` is.  For a function of several
    arguments pass tuples: ``hvp(f, (x, y), (vx, vy))`` returns a tuple.
    """
    from .transforms import grad

    if isinstance(x, tuple):
        v = _sequence(v, "hvp", "v (for a tuple x)")
        return jvp(grad(f, argnums=tuple(range(len(x)))), x, v)[1]
    return jvp(grad(f), (x,), (v,))[1]
