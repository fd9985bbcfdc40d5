"""The floor for a replayed MLP step on torch's kernels: a hand-written torch step against torch eager.

The MLP step of bench/workloads/mlp_step.py (784-512-512-10, batch 256, float32,
SGD) written out by hand in torch with no autograd: buffers allocated once,
``addmm`` with the bias folded in, ReLU in place, the softmax-cross-entropy
backward fused, and torch's own fused SGD update (``_foreach_add_``).  It is
what no replay that keeps eager's results can beat (a replay may not fold the
bias into the GEMM: that rounds differently).  ``--fold`` also folds the SGD
update into the weight-gradient GEMMs (``W.addmm_(g.T, h, alpha=-lr)``), which
leaves no ``.grad``.  Timed in interleaved rounds with a 0.3 s settle against
``torch_nn_step`` and chainrule's step on torch tensors under ``cr.compile``.

    python bench/torch_floor.py [--threads 2] [--rounds 8] [--fold]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "workloads"))


def hand_step(torch, params, x0, y0, lr, fold):
    """The step by hand; returns a function that runs it and gives the loss."""
    Ws = [torch.tensor(np.ascontiguousarray(W.T)) for W, _ in params]  # nn.Linear layout, W[out, in]
    bs = [torch.tensor(b) for _, b in params]
    x, y = torch.tensor(x0), torch.tensor(y0)
    n = x.shape[0]
    rows = torch.arange(n)
    hs = [torch.empty(n, W.shape[0]) for W in Ws]
    gs = [torch.empty(n, W.shape[0]) for W in Ws]
    gWs = [torch.empty_like(W) for W in Ws]
    gbs = [torch.empty_like(b) for b in bs]
    masks = [torch.empty(n, W.shape[0], dtype=torch.bool) for W in Ws[:-1]]

    def step():
        with torch.no_grad():
            a = x
            for k, (W, b) in enumerate(zip(Ws, bs)):
                torch.addmm(b, a, W.t(), out=hs[k])
                if k < len(Ws) - 1:
                    torch.relu_(hs[k])
                a = hs[k]
            logp = torch.log_softmax(hs[-1], 1)
            loss = -logp[rows, y].mean()
            g = gs[-1]
            torch.exp(logp, out=g)
            g[rows, y] -= 1
            g.mul_(1.0 / n)
            for k in range(len(Ws) - 1, -1, -1):
                inp = hs[k - 1] if k else x
                if k:
                    torch.mm(g, Ws[k], out=gs[k - 1])
                if fold:
                    Ws[k].addmm_(g.t(), inp, alpha=-lr)
                    bs[k].add_(g.sum(0), alpha=-lr)
                else:
                    torch.mm(g.t(), inp, out=gWs[k])
                    torch.sum(g, 0, out=gbs[k])
                if k:
                    torch.gt(hs[k - 1], 0, out=masks[k - 1])
                    gs[k - 1].mul_(masks[k - 1])
                    g = gs[k - 1]
            if not fold:
                torch._foreach_add_(Ws + bs, gWs + gbs, alpha=-lr)
            return loss.item()

    return step


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--fold", action="store_true", help="fold the SGD update into the weight-gradient GEMMs")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from mlp_step import LR, chainrule_nn_step, init_params, make_batch, torch_nn_step

    params = init_params()
    x0, y0 = make_batch()
    fns = {
        "torch eager nn": torch_nn_step(torch, params, x0, y0),
        "hand-written torch" + (" (SGD folded)" if args.fold else ""): hand_step(torch, params, x0, y0, LR, args.fold),
        "chainrule compiled on torch": chainrule_nn_step(params, x0, y0, compiled=True, torch=torch),
    }
    first = {k: f() for k, f in fns.items()}
    print("first losses:", {k: round(v, 6) for k, v in first.items()})
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(args.rounds):
        for k, f in fns.items():
            time.sleep(0.3)
            f()
            ts = []
            for _ in range(10):
                t = time.perf_counter()
                f()
                ts.append(time.perf_counter() - t)
            times[k].append(float(np.median(ts)))
    ref = times["torch eager nn"]
    for k, v in times.items():
        per = [a / b for a, b in zip(v, ref)]
        print(
            f"{k:34s} {1e3 * np.median(v):6.2f} ms   vs torch eager {np.median(v) / np.median(ref):.3f} "
            f"(per round {min(per):.2f}-{max(per):.2f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
