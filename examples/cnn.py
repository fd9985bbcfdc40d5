"""A conv layer's gradients, derived and explained: ``python examples/cnn.py``.

A small CNN (conv 3×3 → relu → 2×2 max pool → linear → cross-entropy) trains for a few steps on the UCI digits
that ship with chainrule.  Then ``cr.derive(loss)`` writes the backward pass of the recorded graph in matrix
form and checks it against central differences of the forward:

- the convolution is a matrix product with the image's patches, ``z = reshape(W) · im2col(x)``, so its weight
  gradient is ``dz · im2col(x)ᵀ``: as a convolution, the cross-correlation of the input with ``dz``;
- its input gradient is ``col2im(reshape(W)ᵀ · dz)``: the full convolution of ``dz`` with the kernel flipped;
- max pooling routes each gradient to the position that won, relu lets it through where the input was positive.

The printed gradients are then compared with the engine's own backward pass, and with torch's on the same
weights where torch is installed.
"""

from __future__ import annotations

import sys

import numpy as np

import chainrule as cr
from chainrule.explain.derive_run import load

nn = cr.nn
F = cr.nn.functional


def build(seed: int = 0) -> tuple[nn.Module, nn.Module]:
    rng = np.random.default_rng(seed)
    conv = nn.Conv2d(1, 4, 3, padding=1, dtype=np.float64, rng=rng)
    fc = nn.Linear(4 * 4 * 4, 10, dtype=np.float64, rng=rng)
    return conv, fc


def forward(conv: nn.Module, fc: nn.Module, x: cr.Tensor, y: np.ndarray) -> cr.Tensor:
    z = conv(x)  # (B, 4, 8, 8)
    h = F.relu(z)
    p = F.max_pool2d(h, 2)  # (B, 4, 4, 4)
    logits = fc(p.reshape(p.shape[0], -1))
    return F.cross_entropy(logits, y)


def main(steps: int = 30, batch: int = 8) -> int:
    images, labels = cr.data.load_digits(dtype=np.float64)
    images = images.reshape(-1, 1, 8, 8) / 16.0
    conv, fc = build()
    opt = cr.optim.SGD([*conv.parameters(), *fc.parameters()], lr=0.1)
    for step in range(steps):
        rows = slice(step * batch % 1024, step * batch % 1024 + batch)
        loss = forward(conv, fc, cr.tensor(images[rows]), labels[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"trained {steps} steps, batch {batch}: loss {loss.item():.4f}")

    # One more batch, recorded, derived.  x asks for a gradient so the im2col of the input is drawn too.
    x = cr.tensor(images[4:6], requires_grad=True)
    y = labels[4:6]
    loss = forward(conv, fc, x, y)
    d = cr.derive(loss, modules={"conv": conv, "fc": fc})
    print(d.text().split("local Jacobians")[0])
    print("why, for the conv layer (the closing steps of each gradient, each a claim the check evaluated):")
    for name in ("dconv.weight", "dx"):
        for st in d.steps[name]:
            if st.claim is not None and st.claim.kind == "closed form":  # im2col matrices, ⋆ and ∗ flip
                print(f"  {name} {st.text}   [checked: relative error {st.check['max_error']:.0e}]")
    print("local Jacobians of the conv layer (sizes and structure; never built):")
    for j in d.jacobians:
        if "im2col" in j.operation + j.input or j.operation.startswith("conv2d"):
            checked = getattr(j, "check", None)  # (the layer's notes: the VJP they state, checked)
            print(f"  {j.text()}" + (f"   [checked: relative error {checked['max_error']:.0e}]" if checked else ""))

    # The exported NumPy backward against the engine (and torch, where installed), at the recorded values.
    backward = load(d.numpy())  # the module `chainrule derive --numpy` prints, loaded
    mine = backward(**d.arrays())
    opt.zero_grad()  # (the training steps left their gradients in .grad)
    loss.backward()
    engine = {"conv.weight": conv.weight.grad, "conv.bias": conv.bias.grad, "x": x.grad}
    worst = max(float(np.max(np.abs(np.asarray(mine[k]) - np.asarray(g.data)))) for k, g in engine.items())
    print(f"exported backward() vs the engine: largest difference {worst:.1e}")
    try:
        import torch
    except ImportError:
        return 0 if worst < 1e-10 else 1
    tx = torch.tensor(images[4:6], requires_grad=True)
    tw = torch.tensor(np.asarray(conv.weight.data), requires_grad=True)
    tb = torch.tensor(np.asarray(conv.bias.data))
    tfw = torch.tensor(np.asarray(fc.weight.data))
    tfb = torch.tensor(np.asarray(fc.bias.data))
    tz = torch.nn.functional.max_pool2d(torch.relu(torch.nn.functional.conv2d(tx, tw, tb, padding=1)), 2)
    tloss = torch.nn.functional.cross_entropy(tz.reshape(2, -1) @ tfw.T + tfb, torch.tensor(y))
    tloss.backward()
    vs_torch = max(
        float(np.max(np.abs(np.asarray(mine["conv.weight"]) - tw.grad.numpy()))),
        float(np.max(np.abs(np.asarray(mine["x"]) - tx.grad.numpy()))),
    )
    print(f"exported backward() vs torch: largest difference {vs_torch:.1e}")
    return 0 if max(worst, vs_torch) < 1e-10 else 1


if __name__ == "__main__":
    sys.exit(main(steps=int(sys.argv[1]) if len(sys.argv) > 1 else 30))
