"""``torch.linspace``'s exact values on the CPU: the first half ``start + step·i`` and the second half
``end - step·(steps-1-i)``, each a fused multiply-add (one rounding), with ``step`` computed in the output
dtype.  NumPy's linspace differs in the last bit at about a third of the points; these agree with torch 2.13
bit for bit (tests/test_torch_facade.py compares many ranges)."""

from __future__ import annotations

import numpy as np

_SPLIT = 134217729.0  # 2**27 + 1: Veltkamp's splitter for float64


def _split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = _SPLIT * x
    hi = c - (c - x)
    return hi, x - hi


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _fma64(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``a·b + c`` rounded once (error-free product and sum, then one final addition)."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    pe = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    s, se = _two_sum(p, c)
    return s + (se + pe)


def _fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``a·b + c`` for float32 values, rounded once to float32: the product is exact in float64, the sum is
    ``hi + lo`` exactly, and ``hi``'s rounding is corrected where it sits exactly on a float32 midpoint."""
    hi, lo = _two_sum(a * b, c)
    r = hi.astype(np.float32)
    up = np.nextafter(r, np.float32(np.inf))
    down = np.nextafter(r, np.float32(-np.inf))
    r64 = r.astype(np.float64)
    out = np.where((hi == (r64 + up.astype(np.float64)) / 2) & (lo > 0), up, r)
    return np.where((hi == (r64 + down.astype(np.float64)) / 2) & (lo < 0), down, out).astype(np.float32)


def torch_linspace(start: float, end: float, steps: int, dtype: np.dtype) -> np.ndarray:
    """torch's CPU linspace values for float32 and float64 (``steps >= 0``)."""
    dt = np.dtype(dtype)
    if steps == 0:
        return np.zeros(0, dt)
    if steps == 1:
        return np.array([start], dt)
    i = np.arange(steps, dtype=np.float64)
    half = steps // 2
    if dt == np.float64:
        s, e = np.float64(start), np.float64(end)
        step = (e - s) / (steps - 1)
        fma = _fma64
    else:
        s, e = np.float32(start), np.float32(end)
        step = (e - s) / np.float32(steps - 1)
        fma = _fma32
    first = fma(np.full(half, np.float64(step)), i[:half], np.full(half, np.float64(s)))
    second = fma(np.full(steps - half, -np.float64(step)), steps - 1 - i[half:], np.full(steps - half, np.float64(e)))
    return np.concatenate([first, second]).astype(dt)


def torch_arange(start: float, end: float, step: float, dtype: np.dtype) -> np.ndarray:
    """torch's CPU arange values for float32 and float64: blocks of 8 (float32) or 4 (float64) values, two
    blocks at a time, each block's first value ``start + step·i`` and the rest ``first + step·j`` (fused
    multiply-adds in float64, as torch's vectorised kernel), the tail one value at a time."""
    dt = np.dtype(dtype)
    if step == 0:
        raise RuntimeError("arange: step must be nonzero")
    n = int(np.ceil((end - start) / step))
    if n < 0 or (step > 0 and start > end) or (step < 0 and start < end):
        raise RuntimeError(
            f"arange: upper bound and larger bound inconsistent with step sign (start={start}, end={end}, step={step})"
        )
    n = max(n, 0)
    width = 8 if dt == np.float32 else 4
    blocked = (n // (2 * width)) * 2 * width
    idx = np.arange(n, dtype=np.float64)
    out = np.empty(n, np.float64)
    st, sp = np.float64(start), np.float64(step)
    if blocked:
        first = idx[:blocked:width]
        bases = _fma64(np.full(first.shape, sp), first, np.full(first.shape, st))
        if dt == np.float32:
            bases = bases.astype(np.float32).astype(np.float64)
        lanes = np.arange(width, dtype=np.float64)
        vals = _fma64(np.broadcast_to(lanes, (len(first), width)), np.full((len(first), width), sp), bases[:, None])
        out[:blocked] = vals.reshape(-1)
    tail = idx[blocked:]
    out[blocked:] = _fma64(np.full(tail.shape, sp), tail, np.full(tail.shape, st))
    return out.astype(dt)
