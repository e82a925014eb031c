"""Compiled (numba, optional) placement of a 1-D spectrum on the grid, its normalisation and float16 cast.

Per spectrum, ingest's grid work in numpy cost 3-15 ms (an off-grid DRS s1d: 15 ms of interpolation;
every file: a median and a float64 -> float16 cast of 327,680 px, ~0.8 ms each without hardware
support). These kernels do it in one or two passes, without the GIL, in 1.5-3 ms. They compute the
same numbers as the numpy reference (``SpectralGrid.resample(method="linear")``, ``np.median``,
``astype(float16)``) with the same operations in the same order; tests compare both bit for bit.

``available`` is False when numba is not installed; ingest then runs the numpy reference.
"""

from __future__ import annotations

import math

import numpy as np

from spectra_lightning.physics.jit import available, njit

EDGE = 1e-6  # a neighbour whose interpolation weight is below this cannot mask the pixel (as resample)


@njit(nogil=True, cache=True)
def place_linear(wave, flux, valid, wave_min, step, pad_left, out):
    """``out (L,)`` float64 <- ``flux(wave)`` at the valid grid pixels, linearly; NaN elsewhere.

    ``wave`` ``(M,)`` float64 ascending, ``flux`` ``(M,)`` float32 or float64, ``valid`` ``(L,)``
    bool. An input on the grid (integer offset, grid step) is copied. Returns False, with ``out``
    undefined, when ``wave`` is not ascending and finite: the caller falls back to the numpy path.
    """
    n, length = wave.shape[0], out.shape[0]
    for i in range(n - 1):
        if not wave[i + 1] >= wave[i]:  # also catches NaN
            return False
    if not (math.isfinite(wave[0]) and math.isfinite(wave[n - 1])):
        return False
    out[:] = np.nan
    offset = (wave[0] - wave_min) / step
    if abs(offset - round(offset)) < 1e-4 and abs(wave[n - 1] - wave[0] - (n - 1) * step) < 1e-4 * step:
        start = int(round(offset)) + pad_left
        for i in range(max(start, 0), min(start + n, length)):
            if valid[i]:
                out[i] = flux[i - start]
        return True
    j = 0
    for i in range(length):
        if not valid[i]:
            continue
        t = wave_min + (i - pad_left) * step  # as SpectralGrid.wavelength
        if t < wave[0] or t > wave[n - 1]:
            continue
        while j < n - 2 and wave[j + 1] <= t:  # wave[j] <= t < wave[j + 1], the last interval closed
            j += 1
        span = wave[j + 1] - wave[j]
        frac = (t - wave[j]) / span if span > 0 else 0.0
        f0, f1 = np.float64(flux[j]), np.float64(flux[j + 1])
        if frac < EDGE or frac > 1 - EDGE:
            a = 0.0 if frac > 1 - EDGE else f0
            b = 0.0 if frac < EDGE else f1
            out[i] = a * (1 - frac) + b * frac
        else:
            out[i] = f0 * (1 - frac) + f1 * frac
    return True


@njit(nogil=True, cache=True)
def _half_bits(h):
    """IEEE-754 binary16 bits of the float64 with bits ``h`` (int64), rounded to nearest even (as numpy)."""
    sign = (h >> 48) & 0x8000
    e = (h >> 52) & 0x7FF
    m = h & 0xFFFFFFFFFFFFF
    if e == 0x7FF:  # inf, NaN (numpy keeps the top payload bits)
        r = 0x7C00 + (m >> 42)
        if m != 0 and r == 0x7C00:
            r += 1
        return sign | r
    if e >= 1023 + 16:
        return sign | 0x7C00
    if e >= 1023 - 14:  # a normal half; a carry out of the mantissa bumps the exponent (to inf at the top)
        keep, rest = m >> 42, m & 0x3FFFFFFFFFF
        if rest > 0x20000000000 or (rest == 0x20000000000 and keep & 1):
            keep += 1
        return sign | (((e - 1023 + 15) << 10) + keep)
    if e < 1023 - 25:
        return sign
    full = m | 0x10000000000000  # a subnormal half: count units of 2**-24
    s = 1051 - e
    keep, rest, half = full >> s, full & ((1 << s) - 1), 1 << (s - 1)
    if rest > half or (rest == half and keep & 1):
        keep += 1
    return sign | keep


@njit(nogil=True, cache=True)
def to_float16(values, out):
    """``out (L,)`` uint16 <- the float16 bits of ``values (L,)`` float64 (``values.astype(float16)``)."""
    bits = values.view(np.int64)
    for i in range(values.shape[0]):
        out[i] = _half_bits(bits[i])


@njit(nogil=True, cache=True)
def _select(a, k):
    """Rearrange ``a`` in place so that ``a[k]`` is its k-th smallest, nothing larger before it and
    nothing smaller after it (quickselect, median-of-three pivots, sorting once it stalls)."""
    lo, hi, rounds = 0, a.shape[0] - 1, 0
    while hi > lo:
        rounds += 1
        if rounds > 64:  # adversarial order: finish by sorting what is left
            a[lo : hi + 1] = np.sort(a[lo : hi + 1])
            return
        mid = (lo + hi) // 2
        if a[mid] < a[lo]:
            a[mid], a[lo] = a[lo], a[mid]
        if a[hi] < a[lo]:
            a[hi], a[lo] = a[lo], a[hi]
        if a[hi] < a[mid]:
            a[hi], a[mid] = a[mid], a[hi]
        pivot, i, j = a[mid], lo, hi
        while i <= j:  # Hoare: equal values split between both sides, so runs of ties stay fast
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return


SAMPLE = 8192  # pixels in the strided sample that brackets the median


@njit(nogil=True, cache=True)
def finite_median(values, scratch):
    """``(n, np.median(values[finite]))`` of ``values (L,)`` float64 (NaN, inf = masked); ``scratch``
    ``(>= L,)`` float64 is overwritten; the median is NaN when n is 0.

    A quickselect over every pixel costs several passes; here a strided sample brackets the median,
    one pass counts the pixels below the bracket and keeps those inside it (a few %), and the median
    is selected among those. Should the bracket miss (an order of values the sample misjudges), the
    median is selected from all finite pixels. Exact either way."""
    length = values.shape[0]
    stride = max(1, length // SAMPLE)
    sample = np.empty((length + stride - 1) // stride)
    m = 0
    for i in range(0, length, stride):
        if math.isfinite(values[i]):
            sample[m] = values[i]
            m += 1
    if m >= 64:
        margin = int(2.5 * math.sqrt(m)) + 8  # ranks; random sampling would miss by 5 sigma
        first, last = max(m // 2 - margin, 0), min(m // 2 + margin, m - 1)
        _select(sample[:m], first)
        _select(sample[first:m], last - first)  # what follows sample[first] is not smaller
        lo, hi = sample[first], sample[last]
        n = below = inside = 0
        for v in values:  # without branches: masked pixels and values either side of the bracket interleave
            finite = math.isfinite(v)
            n += finite
            below += finite & (v < lo)
            scratch[inside] = v
            inside += (v >= lo) & (v <= hi)  # false for NaN; lo, hi are finite
        k = n // 2
        if below <= k - 1 + n % 2 and k < below + inside:  # both middle values (one if n is odd) inside
            return n, _middle(scratch[:inside], k - below, n % 2 == 1)
    n = 0
    for v in values:
        if math.isfinite(v):
            scratch[n] = v
            n += 1
    if n == 0:
        return 0, np.nan
    return n, _middle(scratch[:n], n // 2, n % 2 == 1)


@njit(nogil=True, cache=True)
def _middle(a, k, odd):
    """``a``'s k-th smallest (``odd``) or the mean of its (k-1)-th and k-th, as ``np.median`` takes
    them; reorders ``a``."""
    _select(a, k)
    if odd:
        return a[k]
    below = a[0]
    for i in range(1, k):
        if a[i] > below:
            below = a[i]
    return (below + a[k]) / 2


@njit(nogil=True, cache=True)
def normalise_float16(values, out, scratch):
    """``values (L,)`` float64 (NaN = masked) divided by the median of its finite pixels, as float16
    bits into ``out (L,)`` uint16; ``scratch (>= L,)`` float64 is overwritten. Returns
    ``(n_finite, median)``; ``out`` is undefined when n is 0."""
    n, median = finite_median(values, scratch)
    if n == 0:
        return 0, median
    q = np.empty(1)
    bits = q.view(np.int64)
    for i in range(values.shape[0]):
        q[0] = values[i] / median
        out[i] = _half_bits(bits[0])
    return n, median


def warm() -> None:
    """Compile or load the kernels now (tiny inputs), so that forked workers inherit them ready."""
    if not available:
        return
    wave, flux, valid = np.arange(4.0), np.ones(4), np.ones(8, np.bool_)
    out, row = np.empty(8), np.empty(8, np.uint16)
    place_linear(wave, flux, valid, 0.0, 1.0, 2, out)
    place_linear(wave, flux.astype(np.float32), valid, 0.0, 0.5, 2, out)
    normalise_float16(out, row, np.empty(8))
