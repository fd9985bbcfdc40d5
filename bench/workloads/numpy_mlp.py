"""A hand-written NumPy training step for the 784-512-512-10 MLP: the floor for any NumPy engine.

Forward and backward written out by hand in float32: every buffer is allocated once
and reused (``out=`` everywhere), ReLU and its backward mask work in place, the
softmax cross-entropy gradient is formed in the probability buffer, transposes are
views handed to BLAS (no copies), the input gradient is never computed, and SGD
updates the weights in place.  An autodiff engine on NumPy has to do at least this
much work, so its step time can approach this one but not beat it by much.
"""

from __future__ import annotations

import numpy as np


class NumpyMLP:
    """Layers (W[in, out], b[out]) with ReLU between them, softmax cross-entropy on top."""

    def __init__(self, params: list[tuple[np.ndarray, np.ndarray]], batch: int) -> None:
        self.params = [(W.astype(np.float32, copy=True), b.astype(np.float32, copy=True)) for W, b in params]
        f32 = np.float32
        self.acts = [np.empty((batch, W.shape[1]), f32) for W, _ in self.params]  # post-ReLU (logits last)
        self.masks = [np.empty((batch, W.shape[1]), bool) for W, _ in self.params[:-1]]
        self.deltas = [np.empty((batch, W.shape[1]), f32) for W, _ in self.params]  # dL/d(pre-activation)
        self.gW = [np.empty_like(W) for W, _ in self.params]
        self.gb = [np.empty_like(b) for _, b in self.params]
        self.rows = np.arange(batch)
        self.lse = np.empty((batch, 1), f32)

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> float:
        """One forward, backward and SGD update; returns the mean cross-entropy before the update."""
        last = len(self.params) - 1
        h = x
        for k, (W, b) in enumerate(self.params):
            a = self.acts[k]
            np.matmul(h, W, out=a)
            a += b
            if k < last:
                np.maximum(a, 0, out=a)
            h = a
        # log-softmax in place: logits -> shifted -> exp -> probabilities
        z = self.acts[last]
        z -= z.max(axis=1, keepdims=True)
        p = self.deltas[last]
        np.exp(z, out=p)
        np.sum(p, axis=1, keepdims=True, out=self.lse)
        p /= self.lse
        np.log(self.lse, out=self.lse)
        n = x.shape[0]
        loss = float(self.lse.sum() - z[self.rows, y].sum()) / n
        p[self.rows, y] -= 1.0
        p *= np.float32(1.0 / n)  # dL/dlogits
        for k in range(last, -1, -1):
            d = self.deltas[k]
            h_in = x if k == 0 else self.acts[k - 1]
            np.matmul(h_in.T, d, out=self.gW[k])
            np.sum(d, axis=0, out=self.gb[k])
            if k > 0:
                below = self.deltas[k - 1]
                np.matmul(d, self.params[k][0].T, out=below)
                np.greater(self.acts[k - 1], 0, out=self.masks[k - 1])
                below *= self.masks[k - 1]
        lr32 = np.float32(lr)
        for (W, b), gW, gb in zip(self.params, self.gW, self.gb):
            gW *= lr32
            W -= gW
            gb *= lr32
            b -= gb
        return loss
