"""examples/cnn.py runs, derives a conv layer's gradients and agrees with the engine and torch (issue 24, item 5)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_cnn_example_explains_the_conv_gradients(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "cnn.py"), "3"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    assert "dconv.weight = reshape(Σ_axis0 (reshape(dconv.output, 2×4×64) · im2col(x)ᵀ), 4×1×3×3)" in out
    assert "dx = col2im(reshape(conv.weight, 4×9)ᵀ · reshape(dconv.output, 2×4×64))" in out
    assert "dconv.weight = dconv.output ⋆ x" in out  # the cross-correlation, claimed only where it agrees
    assert "dx = dconv.output ∗ flip(conv.weight)" in out  # the full convolution with the flipped kernel
    assert "checked against central differences at the recorded values" in out
    assert "∂(im2col(x))/∂x" in out and "a selection" in out  # (the unfold primitive, by its name in the notes)
    assert "dconv.weight = Σ_n dconv.output_n · im2col(x)_nᵀ: the im2col view, as matrices" in out
    assert "dx = col2im(conv.weight_matᵀ · dconv.output_n): the im2col view, as matrices" in out
    assert "∂(conv2d(x, conv.weight))/∂(conv.weight)" in out and "the cross-correlation of the input x" in out
    assert "∂(conv2d(x, conv.weight))/∂x" in out and "the full convolution of dconv.output with the kernel" in out
    assert "exported backward() vs the engine: largest difference" in out
    assert "exported backward() vs torch: largest difference" in out
