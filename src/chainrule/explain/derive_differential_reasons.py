"""Why each line of the differential route holds: the differential rule of a primitive, and the inner-product
identity that moves its operator across ``⟨·,·⟩`` (its adjoint).  Chosen by the primitive and the operand's role,
never per program."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import symbolic as S
from ..graph import node_of
from .derive_records import STAND_IN


@dataclass
class Term:
    """``⟨grad, diff⟩`` (or, with ``trace``, ``tr(F1 · F2 · …)``); ``fwd`` is the assignment whose change
    ``diff`` claims to be (set on a line that introduces a differential, so the check can test it)."""

    grad: Any = None
    diff: Any = None
    trace: tuple = ()
    fwd: Any = None
    wrt: str = ""  # the value the direction moves where ``fwd`` is set


ELEMENTWISE = {
    "exp": "d exp(Z) = exp(Z) ⊙ dZ",
    "log": "d log(Z) = dZ / Z",
    "log1p": "d log(1 + Z) = dZ / (1 + Z)",
    "sqrt": "d √Z = dZ / (2 √Z)",
    "sin": "d sin(Z) = cos(Z) ⊙ dZ",
    "cos": "d cos(Z) = −sin(Z) ⊙ dZ",
    "tanh": "d tanh(Z) = (1 − tanh(Z)²) ⊙ dZ",
    "sigmoid": "d σ(Z) = σ(Z) ⊙ (1 − σ(Z)) ⊙ dZ",
    "relu": "d relu(Z) = [Z > 0] ⊙ dZ",
    "abs": "d |Z| = sign(Z) ⊙ dZ",
    "pow": "d(Zⁿ) = n Zⁿ⁻¹ ⊙ dZ (and d(aᶻ) = log(a) aᶻ ⊙ dZ)",
    "maximum": "d maximum(A, B) = [A > B] ⊙ dA + [B > A] ⊙ dB (half each at a tie)",
    "minimum": "d minimum(A, B) = [A < B] ⊙ dA + [B < A] ⊙ dB (half each at a tie)",
    "erf": "d erf(Z) = (2/√π) exp(−Z²) ⊙ dZ",
}

RULES = {
    "add": "d(A + B) = dA + dB",
    "sub": "d(A − B) = dA − dB",
    "neg": "d(−A) = −dA",
    "mul": "d(A ⊙ B) = dA ⊙ B + A ⊙ dB (the product rule, entry by entry)",
    "div": "d(A / B) = dA / B − (A / B) ⊙ dB / B",
    "matmul": "d(A · B) = dA · B + A · dB (the product rule; the order of the factors stays)",
    "transpose": "d(Aᵀ) = (dA)ᵀ",
    "sum": "d Σ A = Σ dA (a sum is linear)",
    "mean": "d mean(A) = mean(dA) (linear)",
    "reshape": "d reshape(A) = reshape(dA) (linear)",
    "broadcast_to": "d broadcast(A) = broadcast(dA) (linear)",
    "getitem": "d(A[i]) = (dA)[i] (linear)",
    "softmax": "d softmax(Z) = p ⊙ (dZ − Σ(p ⊙ dZ, keepdims)), p = softmax(Z)",
    "log_softmax": "d log_softmax(Z) = dZ − Σ(p ⊙ dZ, keepdims), p = softmax(Z)",
    "logsumexp": "d logsumexp(Z) = Σ(softmax(Z) ⊙ dZ)",
    "max": "d max(Z) = the change of the largest entry (the mean of the tied ones)",
    "min": "d min(Z) = the change of the smallest entry (the mean of the tied ones)",
}


def differential_rule(b: Any, t: Any) -> str:
    """The rule that gives the differential of the operation at node ``t``."""

    name = node_of(t).prim.name
    if b.walk.generic and name == STAND_IN:
        return "d f(Z) = f′(Z) ⊙ dZ (f acts entry by entry)"
    if name in ELEMENTWISE:
        return ELEMENTWISE[name] + " (entry by entry)"
    return RULES.get(name, f"the differential of {name} (its forward-mode rule)")


def _broadcast_note(t: Any, i: int) -> str:
    view = node_of(t)
    if tuple(view.inputs[i].shape) == tuple(t.shape):
        return ""
    return (
        f"; the operand was broadcast ({S.shape_text(view.inputs[i].shape)} to {S.shape_text(t.shape)}): "
        "⟨A, broadcast(C)⟩ = ⟨Σ of A over the copies, C⟩, the adjoint of a copy is a sum"
    )


def _one(b: Any, t: Any, i: int, d: Any = None) -> str:

    view = node_of(t)
    name = view.prim.name
    note = _broadcast_note(t, i)
    if b.walk.generic and name == STAND_IN:
        return "⟨A, f′(Z) ⊙ C⟩ = ⟨A ⊙ f′(Z), C⟩ (both are Σ_k A_k f′(Z)_k C_k)" + note
    if name in ("add", "sub") and not (name == "sub" and i == 1):
        return "⟨A, B + C⟩ = ⟨A, B⟩ + ⟨A, C⟩: the inner product is linear, the term in this operand stays" + note
    if name in ("neg", "sub"):
        return "⟨A, −C⟩ = ⟨−A, C⟩" + note
    if name == "mul":
        return "⟨A, B ⊙ C⟩ = ⟨A ⊙ B, C⟩ (both are Σ_k A_k B_k C_k)" + note
    if name == "div" and i == 0:
        return "⟨A, C / B⟩ = ⟨A / B, C⟩ (both are Σ_k A_k C_k / B_k)" + note
    if (name in ELEMENTWISE or name == "div") and isinstance(d, S.Sym) and d.op == "div":
        return "⟨A, C / B⟩ = ⟨A / B, C⟩: the elementwise derivative moves to the left (both are Σ_k A_k C_k / B_k)" + (
            note
        )
    if name in ELEMENTWISE or name == "div":
        return "⟨A, B ⊙ C⟩ = ⟨A ⊙ B, C⟩: the elementwise derivative B moves to the left (both are Σ_k A_k B_k C_k)" + (
            note
        )
    if name == "matmul":
        return _matmul(view, i)
    if name == "transpose":
        return "⟨A, Cᵀ⟩ = ⟨Aᵀ, C⟩ (tr(Aᵀ Cᵀ) = tr((C A)ᵀ) = tr(C A) = tr(A C))"
    if name == "sum":
        full = len(view.params[0] or ()) in (0, len(view.inputs[0].shape)) and not t.shape
        if full:
            return "⟨a, Σ C⟩ = ⟨a ones, C⟩ (a times a sum is the sum of a times each entry)"
        return "⟨A, Σ_axis C⟩ = ⟨A copied along the summed axes, C⟩ (the adjoint of a sum is a copy)"
    if name == "mean":
        return "⟨A, mean(C)⟩ = ⟨A / n copied along the averaged axes, C⟩ (n entries averaged)"
    if name == "softmax":
        return (
            "⟨A, p ⊙ (C − Σ(p ⊙ C, keepdims))⟩ = ⟨p ⊙ (A − Σ(A ⊙ p, keepdims)), C⟩: the Jacobian diag(p) − p pᵀ "
            "of each slice is symmetric, so the same map moves across"
        )
    if name == "log_softmax":
        return (
            "⟨A, C − Σ(p ⊙ C, keepdims)⟩ = ⟨A − p ⊙ Σ(A, keepdims), C⟩: each slice's Jacobian I − 1 pᵀ moves "
            "across as its transpose I − p 1ᵀ (p = exp(log_softmax))"
        )
    if name == "logsumexp":
        return "⟨A, Σ(softmax(Z) ⊙ C)⟩ = ⟨A copied along the axis ⊙ softmax(Z), C⟩ (a sum's adjoint is a copy)"
    if name in ("max", "min"):
        return (
            "⟨A, Σ(C ⊙ w) / Σ w⟩ = ⟨A copied ⊙ w / Σ w, C⟩ (w marks the selected entries: the adjoint of a "
            "selection puts A back where it was taken)"
        )
    if name == "reshape":
        return "⟨A, reshape(C)⟩ = ⟨reshape(A, shape of C), C⟩ (the same entries, the same sum of products)"
    if name == "broadcast_to":
        return "⟨A, broadcast(C)⟩ = ⟨Σ of A over the copies, C⟩ (the adjoint of a copy is a sum)"
    if name == "getitem":
        return "⟨A, C[i]⟩ = ⟨scatter(A, i), C⟩ (the adjoint of taking entries is putting them back)"
    return f"⟨A, L(C)⟩ = ⟨Lᵀ(A), C⟩: the adjoint of {name}'s differential (its VJP rule)"


MATMUL = {  # (operand, ndim of the left factor, ndim of the right factor) -> the identity that moves it
    (0, 2, 2): "⟨A, B · C⟩ = ⟨A · Cᵀ, B⟩ (tr(Aᵀ B C) = tr(C Aᵀ B), a cyclic shift)",
    (0, 2, 1): "⟨a, B · c⟩ = ⟨a ⊗ c, B⟩ (c a vector: Σ_i a_i Σ_j B_ij c_j, an outer product)",
    (0, 1, 2): "⟨a, b · C⟩ = ⟨C · a, b⟩ (b a vector: Σ_j a_j Σ_i b_i C_ij)",
    (0, 1, 1): "⟨a, b · c⟩ = ⟨a c, b⟩ (b · c = Σ_i b_i c_i is a number; a scalar a scales c)",
    (1, 2, 2): "⟨A, B · C⟩ = ⟨Bᵀ · A, C⟩ (tr(Aᵀ B C) = tr((Bᵀ A)ᵀ C))",
    (1, 2, 1): "⟨a, B · c⟩ = ⟨Bᵀ · a, c⟩ (Σ_i a_i Σ_j B_ij c_j = Σ_j (Σ_i B_ij a_i) c_j)",
    (1, 1, 2): "⟨a, b · C⟩ = ⟨b ⊗ a, C⟩ (b a vector: Σ_j a_j Σ_i b_i C_ij, an outer product)",
    (1, 1, 1): "⟨a, b · c⟩ = ⟨a b, c⟩ (b · c = Σ_i b_i c_i is a number; a scalar a scales b)",
}


def _matmul(view: Any, i: int) -> str:
    ls, rs = (len(x.shape) for x in view.inputs)
    base = MATMUL[(i, min(ls, 2), min(rs, 2))]
    if max(ls, rs) > 2:
        base += "; for each matrix of the stack, summed over the axes where one factor was broadcast"
    return base


def identity_reason(b: Any, t: Any, roles: list[int], d: Any = None) -> str:
    """The identity (one per operand that holds the differential) that moves node ``t``'s operator across;
    ``d`` is the differential being moved (``dp / p`` takes the identity for a quotient)."""
    parts = [_one(b, t, i, d) for i in roles]
    if len(parts) == 1:
        return parts[0]
    uniq = list(dict.fromkeys(parts))
    head = "both operands hold it: ⟨A, X + Y⟩ = ⟨A, X⟩ + ⟨A, Y⟩ splits the term; then "
    return (
        head + " and ".join(f"operand {i + 1}: {p}" for i, p in zip(roles, parts))
        if len(uniq) > 1
        else (head + uniq[0] + " (for each operand)")
    )


def trace_lines(b: Any, t: Any, role: int, g: Any, d_operand: Any) -> list[tuple[list, str]]:
    """For ``⟨A, dW · a⟩`` with matrices: the trace lines ``tr(Aᵀ · dW · a) = tr(a · Aᵀ · dW)`` before the move."""
    view = node_of(t)
    if view.prim.name != "matmul" or any(len(x.shape) != 2 for x in view.inputs) or len(S.shape_of(g)) != 2:
        return []
    left, right = (b.walk.fwd(x) for x in view.inputs)
    gt = S._transpose(g)
    if role == 0:
        return [
            ([Term(trace=(gt, d_operand, right))], "⟨A, B⟩ = tr(Aᵀ · B), the Frobenius inner product as a trace"),
            ([Term(trace=(right, gt, d_operand))], "tr(X · Y) = tr(Y · X): a cyclic shift leaves the trace unchanged"),
        ]
    return [([Term(trace=(gt, left, d_operand))], "⟨A, B⟩ = tr(Aᵀ · B), the Frobenius inner product as a trace")]
