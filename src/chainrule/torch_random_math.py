"""The floating-point steps behind torch's CPU random transforms, rounded the way torch rounds them.

torch's vectorized ``randn`` (float32, 16 or more values, x86 CPUs with AVX2)
evaluates Cephes-style polynomials for log, sin and cos in float32 (the
``avx_mathfun`` routines); :func:`box_muller16` repeats those operations one by
one in NumPy float32, so every intermediate rounds as it does in torch. Where
torch calls the C library (``log``, ``sin``, ``cos``, ``log1p`` in double), this
module calls Python's ``math``, which is the same C library on the same machine.
Fused multiply-adds are emulated exactly (:func:`fma`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
import os
import platform
import warnings

import numpy as np

_F = np.float32

# -- which of torch's kernels this CPU runs ------------------------------------------------------

_INTEL_WARNED = False


@functools.cache
def _cpu_vendor() -> str:
    """'intel', 'amd' or 'other', read the way the OS reports it."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("vendor_id"):
                    return "intel" if "GenuineIntel" in line else "amd" if "AuthenticAMD" in line else "other"
    except OSError:
        pass
    text = platform.processor()
    if "Intel" in text or (platform.system() == "Darwin" and platform.machine() == "x86_64"):
        return "intel"
    return "amd" if "AMD" in text else "other"


def warn_intel(what: str) -> None:
    global _INTEL_WARNED
    if not _INTEL_WARNED and _cpu_vendor() == "intel":
        _INTEL_WARNED = True
        warnings.warn(
            f"{what}: on Intel CPUs torch draws this from MKL's own stream (VSL_BRNG_MCG31 seeded from one "
            "mt19937 draw), not from mt19937 directly; chainrule reproduces the mt19937 path torch takes on "
            "other CPUs, so these values differ from torch's on this machine",
            RuntimeWarning,
            stacklevel=4,
        )


_CAPABILITY: str | None = None


def cpu_capability(value: str | None = None) -> str:
    """Which of torch's CPU kernels to reproduce: 'avx2' (x86 with AVX2 and FMA) or 'default'.

    It decides float32 ``randn`` of 16+ values (vectorized polynomials or the C
    library's ``logf``/``sinf``/``cosf``) and whether ``x * (b - a) + a`` and
    ``z * std + mean`` are fused multiply-adds. torch picks its kernel from the
    CPU, or from the ATEN_CPU_CAPABILITY environment variable; with no argument
    the same rule is applied here. Pass 'avx2', 'avx512' (the same kernels) or
    'default' to choose.
    """
    global _CAPABILITY
    if value is not None:
        if value not in ("avx2", "avx512", "default"):
            raise ValueError(f"cpu_capability: expected 'default', 'avx2' or 'avx512', got {value!r}")
        _CAPABILITY = "default" if value == "default" else "avx2"
    if _CAPABILITY is None:
        env = os.environ.get("ATEN_CPU_CAPABILITY", "").lower()
        if env == "default":
            _CAPABILITY = "default"
        elif env in ("avx2", "avx512") or _has_avx2():
            _CAPABILITY = "avx2"
        else:
            _CAPABILITY = "default"
            if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
                warnings.warn(
                    f"torch_random: on {platform.machine()} CPUs torch's kernels were not checked against "
                    "these streams; integer draws, rand and the uniform-based draws follow mt19937 exactly, "
                    "but randn/normal_ and uniform_(a, b) may differ in the last bit",
                    RuntimeWarning,
                    stacklevel=2,
                )
    return _CAPABILITY


def _has_avx2() -> bool:
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as feats  # noqa: PLC0415
    except ImportError:  # pragma: no cover - older NumPy
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as feats  # noqa: PLC0415
        except ImportError:
            return False
    return bool(feats.get("AVX2")) and bool(feats.get("FMA3"))


# -- exact fused multiply-add ---------------------------------------------------------------------


def _fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 fma: the product is exact in float64; only a float64 sum that lands exactly halfway
    between two float32 values can round differently from the exact sum, and those few are fixed by
    the sign of the part the float64 sum lost."""
    p = a.astype(np.float64) * b.astype(np.float64)
    cc = c.astype(np.float64)
    s = p + cc
    r = s.astype(np.float32)
    low = s.view(np.uint64) & np.uint64(0x1FFFFFFF)
    suspect = (low == np.uint64(0x10000000)) | (np.abs(s) < 2.0**-125)  # a tie, or float32's subnormal range
    if np.any(suspect):
        idx = np.flatnonzero(suspect)
        r = r.copy()
        r.ravel()[idx] = _fma32_careful(p.ravel()[idx], cc.ravel()[idx])
    return r


def _fma32_careful(p: np.ndarray, c: np.ndarray) -> np.ndarray:
    s = p + c
    bp = s - c
    t = (p - bp) + (c - (s - bp))  # TwoSum: p + c == s + t exactly
    r = s.astype(np.float32)
    lo = np.where(r.astype(np.float64) > s, np.nextafter(r, _F(-np.inf)), r)
    hi = np.nextafter(lo, _F(np.inf))
    tie = (lo.astype(np.float64) + hi.astype(np.float64)) * 0.5 == s
    return np.where(tie & (t > 0), hi, np.where(tie & (t < 0), lo, r))


def _two_prod(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    split = 134217729.0  # 2**27 + 1 (Veltkamp)
    p = a * b
    ca = split * a
    ah = ca - (ca - a)
    al = a - ah
    cb = split * b
    bh = cb - (cb - b)
    bl = b - bh
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


def _fma64(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float64 fma: the product split exactly (Dekker), the three-term sum correctly rounded (math.fsum)."""
    p, e = _two_prod(a, b)
    return np.fromiter(
        (
            math.fsum(t)
            for t in zip(p.ravel().tolist(), e.ravel().tolist(), np.broadcast_to(c, p.shape).ravel().tolist())
        ),
        dtype=np.float64,
        count=p.size,
    ).reshape(p.shape)


def fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``a * b + c`` rounded once, in ``a``'s dtype (float32 or float64)."""
    if a.dtype == np.float32:
        return _fma32(a, b, c)
    b64 = np.broadcast_to(np.asarray(b, np.float64), a.shape)
    c64 = np.broadcast_to(np.asarray(c, np.float64), a.shape)
    if np.all(c64 == 0) or np.all(b64 == 1):
        return a * b64 + c64  # one of the two steps is exact, so this rounds once
    return _fma64(a, b64, c64)


def fma_scalar(a: float, b: float, c: float) -> float:
    """``a * b + c`` rounded once, for Python floats."""
    if c == 0 or b == 1:
        return a * b + c  # one of the two steps is exact
    p, e = _two_prod(np.array([a]), np.array([b]))
    return math.fsum((float(p[0]), float(e[0]), c))


# -- torch's AVX2 log / sincos (avx_mathfun.h), operation by operation in float32 -----------------

_LOG_P = [
    7.0376836292e-2,
    -1.1514610310e-1,
    1.1676998740e-1,
    -1.2420140846e-1,
    +1.4249322787e-1,
    -1.6668057665e-1,
    +2.0000714765e-1,
    -2.4999993993e-1,
    +3.3333331174e-1,
]
_LOG_P32 = [_F(v) for v in _LOG_P]
_SQRTHF = _F(0.707106781186547524)
_LOG_Q1 = _F(-2.12194440e-4)
_LOG_Q2 = _F(0.693359375)
_DP1, _DP2, _DP3 = _F(-0.78515625), _F(-2.4187564849853515625e-4), _F(-3.77489497744594108e-8)
_SIN_P = [_F(-1.9515295891e-4), _F(8.3321608736e-3), _F(-1.6666654611e-1)]
_COS_P = [_F(2.443315711809948e-005), _F(-1.388731625493765e-003), _F(4.166664568298827e-002)]
_FOPI = _F(1.27323954473516)
_HALF = _F(0.5)
_ONE = _F(1.0)


def _full(like: np.ndarray, value: np.float32) -> np.ndarray:
    return np.full_like(like, value)


def log256(x: np.ndarray) -> np.ndarray:
    """``log256_ps`` for positive float32 ``x``: exponent split, a degree-9 polynomial, float32 roundings."""
    x = np.maximum(x.astype(_F), _F(np.finfo(_F).tiny))
    bits = x.view(np.int32)
    imm0 = (bits >> 23) - 127
    x = ((bits & ~np.int32(0x7F800000)) | np.int32(0x3F000000)).view(_F)
    e = imm0.astype(_F) + _ONE
    mask = x < _SQRTHF
    tmp = np.where(mask, x, _F(0))
    x = x - _ONE
    e = e - np.where(mask, _ONE, _F(0))
    x = x + tmp
    z = x * x
    y = np.full_like(x, _LOG_P32[0])
    for coef in _LOG_P32[1:]:
        y = _fma32(y, x, _full(x, coef))  # y * x + p_k, contracted to one fma by the compiler
    y = y * x
    y = _fma32(y, z, e * _LOG_Q1)  # y * z + e * q1: the first product fused, the second rounded
    y = _fma32(-z, _full(z, _HALF), y)  # y - z * 0.5 (z * 0.5 is exact either way)
    x = x + y
    x = _fma32(e, _full(e, _LOG_Q2), x)
    return x


def sincos256(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``sincos256_ps`` for float32 ``x``: Cephes range reduction by pi/4 and two polynomials."""
    x = x.astype(_F)
    sign_sin = np.signbit(x)
    x = np.abs(x)
    y = x * _FOPI
    j = y.astype(np.int32)  # truncation, as cvttps
    j = (j + 1) & ~np.int32(1)
    y = j.astype(_F)
    swap_sin = (j & 4) != 0
    poly_mask = (j & 2) == 0
    for dp in (_DP1, _DP2, _DP3):
        x = _fma32(y, _full(y, dp), x)  # ((x - y*DP1) - y*DP2) - y*DP3, each step one fma
    sign_cos = ((~(j - 2)) & 4) != 0
    sign_sin = sign_sin ^ swap_sin
    z = x * x
    yc = np.full_like(x, _COS_P[0])
    yc = _fma32(yc, z, _full(z, _COS_P[1]))
    yc = _fma32(yc, z, _full(z, _COS_P[2]))
    yc = yc * z
    yc = _fma32(yc, z, -(z * _HALF))  # yc * z - z * 0.5: the first product fused, z * 0.5 rounded
    yc = yc + _ONE
    ys = np.full_like(x, _SIN_P[0])
    ys = _fma32(ys, z, _full(z, _SIN_P[1]))
    ys = _fma32(ys, z, _full(z, _SIN_P[2]))
    ys = ys * z
    ys = _fma32(ys, x, x)
    zero = _F(0)
    ysin2 = np.where(poly_mask, ys, zero)
    ysin1 = np.where(poly_mask, zero, yc)
    ys = ys - ysin2
    yc = yc - ysin1
    s = ysin1 + ysin2
    c = yc + ys
    s = np.where(sign_sin, -s, s)
    c = np.where(sign_cos, -c, c)
    return s, c


# -- Box–Muller over blocks of 16 (torch's normal_fill) ------------------------------------------


def box_muller16(data: np.ndarray, dtype: type, mean: float, std: float, capability: str) -> np.ndarray:
    """torch's ``NormalFill16`` on consecutive blocks of 16 uniforms: the first 8 give cosines, the last 8 sines."""
    blocks = data.reshape(-1, 16)
    u1 = dtype(1) - blocks[:, :8]
    u2 = blocks[:, 8:]
    if dtype is np.float32 and capability == "avx2":
        radius = np.sqrt(_F(-2.0) * log256(u1))
        theta = _F(2.0 * math.pi) * u2
        s, c = sincos256(theta)
        n1, n2 = radius * c, radius * s
        m, sd = _F(mean), _F(std)
    elif dtype is np.float32:
        # torch's scalar kernel calls the C library's float logf, cosf and sinf, which are not
        # correctly rounded; the same functions are called here
        radius = np.sqrt(_F(-2.0) * _map(_libm_f32("logf"), u1, _F))
        theta = (2.0 * math.pi * u2.astype(np.float64)).astype(_F)
        c = _map(_libm_f32("cosf"), theta, _F)
        s = _map(_libm_f32("sinf"), theta, _F)
        n1, n2 = radius * c, radius * s
        m, sd = _F(mean), _F(std)
    else:
        radius = np.sqrt(-2.0 * _map(math.log, u1, np.float64))
        theta = 2.0 * math.pi * u2
        n1 = radius * _map(math.cos, theta, np.float64)
        n2 = radius * _map(math.sin, theta, np.float64)
        m, sd = np.float64(mean), np.float64(std)
    out = np.empty_like(blocks)
    out[:, :8] = fma(n1, np.full_like(n1, sd), np.full_like(n1, m))
    out[:, 8:] = fma(n2, np.full_like(n2, sd), np.full_like(n2, m))
    return out.reshape(-1)


_LIBM: dict[str, object] = {}


def _libm_f32(name: str) -> object:
    """The C library's float function ``name`` (``logf``, ``sinf``, ``cosf``), the one torch's scalar kernel calls."""
    if name not in _LIBM:
        path = ctypes.util.find_library("m") or ctypes.util.find_library("c")
        if path is None:
            raise NotImplementedError(
                f"torch's scalar randn kernel calls the C library's {name}, which could not be loaded here; "
                "its values cannot be reproduced (use cpu_capability('avx2') where torch uses the vectorized kernel)"
            )
        fn = getattr(ctypes.CDLL(path), name)
        fn.restype = ctypes.c_float
        fn.argtypes = [ctypes.c_float]
        _LIBM[name] = fn
    return _LIBM[name]


def _map(fn: object, x: np.ndarray, dtype: type) -> np.ndarray:
    flat = x.astype(np.float64).ravel().tolist()
    return np.fromiter(map(fn, flat), dtype=dtype, count=len(flat)).reshape(x.shape)  # type: ignore[arg-type]


# -- the rest ------------------------------------------------------------------------------------


def exponential(u: np.ndarray, lambd: float) -> np.ndarray:
    """torch's CPU ``exponential_``: ``(-1 / lambd) * log1p(-u)`` in double."""
    logs = _map(math.log1p, -u, np.float64)
    return (-1.0 / lambd) * logs


def fisher_yates(perm: np.ndarray, z: np.ndarray) -> None:
    """torch's ``randperm`` walk: for i, swap ``perm[i]`` with ``perm[i + z[i]]``."""
    p = perm.tolist()
    for i, zi in enumerate(z.tolist()):
        j = i + zi
        p[i], p[j] = p[j], p[i]
    perm[:] = p


def topk_indices(values: np.ndarray, k: int) -> np.ndarray:
    """The indices of each row's ``k`` largest values, largest first (ties: lower index first)."""
    order = np.argsort(-values, axis=1, kind="stable")
    return order[:, :k]


def topk_has_ties(values: np.ndarray, chosen: np.ndarray) -> bool:
    """Whether equal values make the top-k's order or membership depend on the sorting algorithm."""
    k = chosen.shape[1]
    ranked = -np.sort(-values, axis=1)[:, : k + 1]
    return bool(np.any(ranked[:, 1:] == ranked[:, :-1]))
