"""A character-level MLP on names, and its backward pass written by hand, checked with ``cr.compare``.

This is the exercise learners do after the CS231n notes and Karpathy's "becoming a backprop ninja": train
a small MLP (embedding → view → linear → batch norm → tanh → linear → cross-entropy) with ``chainrule.nn``,
then write the backward pass of every intermediate by hand in NumPy (``dlogprobs``, ``dprobs``, …,
``dhpreact``, ``dbnraw``, …, ``demb``, ``dC``) and let ``cr.compare`` check each one against the engine's
backward pass.  Finally a mistake is planted (the fan-out of ``bndiff`` forgotten) and ``cr.compare``
points at it, with the correct step.

The names are made up here, deterministically (the project ships no names data set): syllables drawn by a
seeded generator.

Run:  python examples/char_mlp.py            (300 training steps)
      python examples/char_mlp.py --steps 20 (a quick run; CHAINRULE_EXAMPLE_QUICK=1 does the same)
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Optional

import numpy as np

import chainrule as cr
import chainrule.nn as nn
import chainrule.nn.functional as F

# --- the data: made-up names, as (three previous characters -> next character) pairs -----------------

ONSETS = ["b", "d", "k", "l", "m", "n", "r", "s", "t", "v", "j", "z", "ch", "sh", "th", "br", "kr", "st", "f", "g"]
VOWELS = ["a", "e", "i", "o", "u", "y", "ia", "ea", "ai", "ou"]
CODAS = ["", "", "", "n", "l", "r", "s", "h", "x", "th"]
CHARS = "." + "abcdefghijklmnopqrstuvwxyz"  # "." starts and ends a name
STOI = {c: i for i, c in enumerate(CHARS)}


def make_names(count: int, seed: int = 0) -> list[str]:
    """``count`` pronounceable made-up names (2 or 3 syllables), the same for the same seed."""
    rng = np.random.default_rng(seed)
    names = []
    for _ in range(count):
        syllables = int(rng.integers(2, 4))
        word = "".join(ONSETS[rng.integers(len(ONSETS))] + VOWELS[rng.integers(len(VOWELS))] for _ in range(syllables))
        names.append(word + CODAS[rng.integers(len(CODAS))])
    return names


def build_dataset(words: list[str], block_size: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Contexts X (n, block_size) of character indices, and the next character Y (n,)."""
    xs, ys = [], []
    for w in words:
        context = [0] * block_size
        for ch in w + ".":
            ix = STOI[ch]
            xs.append(list(context))
            ys.append(ix)
            context = context[1:] + [ix]
    return np.array(xs, dtype=np.int64), np.array(ys, dtype=np.int64)


# --- the model, with chainrule.nn ---------------------------------------------------------------------


class CharMLP(nn.Module):
    def __init__(self, vocab: int = 27, n_embd: int = 10, block_size: int = 3, n_hidden: int = 64) -> None:
        super().__init__()
        f64 = np.float64
        self.emb = nn.Embedding(vocab, n_embd, dtype=f64)
        self.fc1 = nn.Linear(n_embd * block_size, n_hidden, init="kaiming", nonlinearity="tanh", dtype=f64)
        self.bn = nn.BatchNorm1d(n_hidden, dtype=f64)
        self.fc2 = nn.Linear(n_hidden, vocab, init="xavier", dtype=f64)
        with cr.no_grad():
            self.fc2.weight *= 0.1  # a less confident start: the first loss is near log(27)
            self.bn.bias += 0.1 * cr.randn(n_hidden, dtype=f64)  # not zero, so its gradient is not trivial
            self.fc1.bias += 0.1 * cr.randn(n_hidden, dtype=f64)

    def forward(self, X: Any) -> cr.Tensor:
        emb = self.emb(X)
        embcat = emb.view(emb.shape[0], -1)
        return self.fc2(cr.tanh(self.bn(self.fc1(embcat))))


def train(model: CharMLP, X: np.ndarray, Y: np.ndarray, steps: int, batch: int = 32, seed: int = 1) -> float:
    rng = np.random.default_rng(seed)
    opt = cr.optim.SGD(model.parameters(), lr=0.1)
    loss = float("nan")
    for step in range(steps):
        ix = rng.integers(0, len(X), batch)
        loss_t = F.cross_entropy(model(X[ix]), Y[ix])
        opt.zero_grad()
        loss_t.backward()
        opt.step()
        loss = loss_t.item()
        if step % 100 == 0 or step == steps - 1:
            print(f"step {step:4d}  loss {loss:.4f}")
    return loss


def sample(model: CharMLP, count: int, seed: int = 2, block_size: int = 3) -> list[str]:
    rng = np.random.default_rng(seed)
    model.eval()
    out = []
    with cr.no_grad():
        for _ in range(count):
            context, word = [0] * block_size, ""
            while len(word) < 20:
                probs = F.softmax(model(np.array([context])), dim=1).numpy()[0]
                ix = int(rng.choice(len(probs), p=probs / probs.sum()))
                if ix == 0:
                    break
                word += CHARS[ix]
                context = context[1:] + [ix]
            out.append(word)
    model.train()
    return out


# --- the forward pass in small pieces (each one a tensor whose gradient we write by hand) --------------


def forward_in_pieces(model: CharMLP, Xb: np.ndarray, Yb: np.ndarray) -> dict[str, cr.Tensor]:
    """The model's forward pass, one operation per line, with the module's own parameters.

    Batch norm in training mode normalizes with the biased variance (1/n), as torch and chainrule do, so
    ``loss`` here equals ``F.cross_entropy(model(Xb), Yb)``.
    """
    C, W1, b1 = model.emb.weight, model.fc1.weight, model.fc1.bias
    bngain, bnbias, W2, b2 = model.bn.weight, model.bn.bias, model.fc2.weight, model.fc2.bias
    n = Xb.shape[0]
    emb = C[Xb]
    embcat = emb.view(n, -1)
    hprebn = embcat @ W1.T + b1
    bnmeani = 1 / n * hprebn.sum(0, keepdim=True)
    bndiff = hprebn - bnmeani
    bndiff2 = bndiff**2
    bnvar = 1 / n * bndiff2.sum(0, keepdim=True)
    bnvar_inv = (bnvar + model.bn.eps) ** -0.5
    bnraw = bndiff * bnvar_inv
    hpreact = bngain * bnraw + bnbias
    h = cr.tanh(hpreact)
    logits = h @ W2.T + b2
    logit_maxes = logits.max(1, keepdim=True).values
    norm_logits = logits - logit_maxes
    counts = norm_logits.exp()
    counts_sum = counts.sum(1, keepdim=True)
    counts_sum_inv = counts_sum**-1
    probs = counts * counts_sum_inv
    logprobs = probs.log()
    loss = -logprobs[np.arange(n), Yb].mean()
    return {name: x for name, x in locals().items() if isinstance(x, cr.Tensor)}


# --- the backward pass by hand, in NumPy ---------------------------------------------------------------


def backward_by_hand(t: dict[str, Any], Xb: np.ndarray, Yb: np.ndarray, plant: Optional[str] = None) -> dict:
    """Every gradient of ``loss``, derived one step at a time (upstream × local = downstream).

    ``plant="fanout"`` forgets that ``bndiff`` is used twice (by ``bndiff2`` and by ``bnraw``).
    """
    v = {k: x.detach().numpy() for k, x in t.items() if isinstance(x, cr.Tensor)}
    n = Xb.shape[0]
    probs, counts, counts_sum, counts_sum_inv = v["probs"], v["counts"], v["counts_sum"], v["counts_sum_inv"]
    h, W2, bnraw, bngain, bndiff = v["h"], v["W2"], v["bnraw"], v["bngain"], v["bndiff"]
    bnvar, bnvar_inv, embcat, W1, C = v["bnvar"], v["bnvar_inv"], v["embcat"], v["W1"], v["C"]
    eps = 1e-5

    dlogprobs = np.zeros_like(v["logprobs"])
    dlogprobs[np.arange(n), Yb] = -1.0 / n
    dprobs = (1.0 / probs) * dlogprobs
    dcounts_sum_inv = (counts * dprobs).sum(1, keepdims=True)
    dcounts = counts_sum_inv * dprobs
    dcounts_sum = -(counts_sum**-2) * dcounts_sum_inv
    dcounts = dcounts + np.ones_like(counts) * dcounts_sum  # counts is used twice: the two terms add
    dnorm_logits = counts * dcounts
    dlogit_maxes = -dnorm_logits.sum(1, keepdims=True)
    dlogits = dnorm_logits.copy()
    dlogits[np.arange(n), v["logits"].argmax(1)] += dlogit_maxes[:, 0]
    dh = dlogits @ W2  # logits = h @ W2ᵀ + b2
    dW2 = dlogits.T @ h
    db2 = dlogits.sum(0)
    dhpreact = (1.0 - h**2) * dh
    dbngain = (bnraw * dhpreact).sum(0)
    dbnraw = bngain * dhpreact
    dbnbias = dhpreact.sum(0)
    dbndiff = bnvar_inv * dbnraw
    dbnvar_inv = (bndiff * dbnraw).sum(0, keepdims=True)
    dbnvar = -0.5 * (bnvar + eps) ** -1.5 * dbnvar_inv
    dbndiff2 = 1.0 / n * np.ones_like(bndiff) * dbnvar
    if plant != "fanout":
        dbndiff = dbndiff + 2 * bndiff * dbndiff2  # bndiff is used twice: by bnraw and by bndiff2
    dbnmeani = -dbndiff.sum(0, keepdims=True)
    dhprebn = dbndiff + 1.0 / n * np.ones_like(dbndiff) * dbnmeani
    dembcat = dhprebn @ W1  # hprebn = embcat @ W1ᵀ + b1
    dW1 = dhprebn.T @ embcat
    db1 = dhprebn.sum(0)
    demb = dembcat.reshape(v["emb"].shape)
    dC = np.zeros_like(C)
    np.add.at(dC, Xb, demb)  # each row of C gets the sum of demb over the places it was looked up
    names = (
        "logprobs probs counts_sum_inv counts_sum counts norm_logits logit_maxes logits h W2 b2 hpreact bngain "
        "bnbias bnraw bnvar_inv bnvar bndiff2 bndiff bnmeani hprebn embcat W1 b1 emb C"
    ).split()
    got = locals()
    return {k: got["d" + k] for k in names}


def closed_forms(model: CharMLP, t: dict[str, Any], Yb: np.ndarray) -> dict[str, np.ndarray]:
    """The short forms: cross-entropy's (softmax − onehot)/n and batch norm's backward in one line."""
    v = {k: x.detach().numpy() for k, x in t.items() if isinstance(x, cr.Tensor)}
    n = Yb.shape[0]
    logits, h, bnraw, bngain = v["logits"], v["h"], v["bnraw"], v["bngain"]
    e = np.exp(logits - logits.max(1, keepdims=True))
    dlogits = e / e.sum(1, keepdims=True)
    dlogits[np.arange(n), Yb] -= 1
    dlogits /= n
    dhpreact = (1.0 - h**2) * (dlogits @ v["W2"])
    bnvar_inv = v["bnvar_inv"]
    dhprebn = (
        bngain * bnvar_inv / n * (n * dhpreact - dhpreact.sum(0) - bnraw * (dhpreact * bnraw).sum(0))
    )  # batch norm's backward, with the biased variance of the forward pass
    return {"logits": dlogits, "hpreact": dhpreact, "hprebn": dhprebn}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    quick = os.environ.get("CHAINRULE_EXAMPLE_QUICK") == "1"
    parser.add_argument("--steps", type=int, default=20 if quick else 300, help="training steps")
    parser.add_argument("--names", type=int, default=300 if quick else 2000, help="made-up names to train on")
    args = parser.parse_args(argv)

    cr.manual_seed(0)
    words = make_names(args.names)
    print(f"{len(words)} made-up names, e.g. {', '.join(words[:6])}")
    X, Y = build_dataset(words)
    model = CharMLP()
    print(f"training {sum(p.numel() for p in model.parameters())} parameters for {args.steps} steps")
    train(model, X, Y, args.steps)
    print("samples:", ", ".join(sample(model, 6)))

    # one batch, the forward pass in pieces
    rng = np.random.default_rng(3)
    ix = rng.integers(0, len(X), 32)
    Xb, Yb = X[ix], Y[ix]
    pieces = forward_in_pieces(model, Xb, Yb)
    loss = pieces["loss"]
    module_loss = F.cross_entropy(model(Xb), Yb)
    print(f"\nloss of the batch: {loss.item():.6f} (in pieces), {module_loss.item():.6f} (the modules)")

    print("\n== the backward pass derived in matrix form from the recorded graph (cr.derive, batch size B) ==")
    derived = cr.derive(module_loss, module=model, batch="Xb")  # Xb's leading axis is the batch: printed as B
    print(derived.text().split("local Jacobians")[0].rstrip())
    print("dlogits", derived.steps["dlogits"][-1].text, "  (the closed form of softmax cross-entropy)")
    derived_ok = derived.check is not None and derived.check.status == "passed"

    print("\n== the backward pass by hand, every intermediate ==")
    mine = backward_by_hand(pieces, Xb, Yb)
    check = cr.compare(mine, loss, names=pieces)
    print(check)

    print("\n== the short forms, against the modules' own graph (module paths name the parameters) ==")
    short = closed_forms(model, pieces, Yb)
    logits = model(Xb)
    module_loss = F.cross_entropy(logits, Yb)
    params = {"emb.weight": mine["C"], "fc1.weight": mine["W1"], "fc1.bias": mine["b1"]}
    params.update({"bn.weight": mine["bngain"], "bn.bias": mine["bnbias"], "fc2.weight": mine["W2"]})
    params.update({"fc2.bias": mine["b2"], "logits": short["logits"]})
    module_check = cr.compare(params, module_loss, names={"logits": logits}, module=model)
    print(module_check)

    print("\n== a planted mistake: bndiff's fan-out forgotten ==")
    wrong = backward_by_hand(pieces, Xb, Yb, plant="fanout")
    planted = cr.compare(wrong, loss, names=pieces)
    print(planted)
    ok = check.ok and module_check.ok and not planted.ok and derived_ok
    right = check.ok and module_check.ok
    print(f"\nall hand-written gradients right: {right}; the planted mistake caught: {not planted.ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
