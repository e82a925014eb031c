"""Compiled KSG-1 for one pair of 1-D variables given as normal scores (numba, optional).

Both variables of a pair are permutations of the same normal-score grid ``g (N,)`` (see
``mi.normal_ranks`` and ``mi.score_grid``), so a pair is fully described by ``ry (N,)``: the rank
of ``y`` for each point taken in ``x`` order. Then ``x_i = g[i]``, ``y_i = g[ry[i]]``, and both
sorted marginals are ``g`` itself. The joint k-NN (max-norm) searches square cells of the rank plane
ring by ring — cells of equal rank width hold ``CELL_POINTS`` points on average whatever the
marginals were — and stops once the k-th distance is no more than the distance to the unsearched
region. Marginal counts invert ``g`` analytically (``erfc``) and then check against ``g`` with the
same comparisons as ``numpy.searchsorted`` in the scipy path, so both paths give the same counts.

``available`` is False when numba is not installed; ``mi`` then falls back to scipy's cKDTree.
"""

from __future__ import annotations

import math

import numpy as np

from spectra_lightning.physics.jit import available, njit

__all__ = ["CELL_POINTS", "available", "ksg_pair"]  # available: tests switch paths per module

CELL_POINTS = 2  # mean points per cell (measured: 1-3 equally fast, 8 is 1.5x slower on dependent pairs)


@njit(nogil=True, cache=True)
def _below(g: np.ndarray, v: float, strict: bool) -> int:
    """Number of grid values ``< v`` (strict) or ``<= v``, as ``searchsorted(g, v, 'left'/'right')``.

    ``g[m] = ndtri((m + 0.5) / n)`` gives the answer up to rounding; a short walk makes it exact.
    """
    n = g.shape[0]
    m = min(max(int(math.ceil(n * 0.5 * math.erfc(-v / math.sqrt(2.0)) - 0.5)), 0), n)
    if strict:
        while m > 0 and g[m - 1] >= v:
            m -= 1
        while m < n and g[m] < v:
            m += 1
    else:
        while m > 0 and g[m - 1] > v:
            m -= 1
        while m < n and g[m] <= v:
            m += 1
    return int(m)


@njit(nogil=True, cache=True)
def ksg_pair(ry: np.ndarray, g: np.ndarray, k: int, psi: np.ndarray) -> float:
    """KSG-1 MI (nats, not clipped) of the pair ``(g[i], g[ry[i]])``; ``psi[m] = digamma(m)``."""
    n = ry.shape[0]
    nc = max(1, int(math.sqrt(n / CELL_POINTS)))
    s = (n + nc - 1) // nc  # cell side in ranks
    nc = (n + s - 1) // s
    # points bucketed by cell (CSR): cell id = cx * nc + cy
    start = np.zeros(nc * nc + 1, np.int64)
    for i in range(n):
        start[(i // s) * nc + ry[i] // s + 1] += 1
    for c in range(nc * nc):
        start[c + 1] += start[c]
    fill = start[:-1].copy()
    px = np.empty(n, np.float64)  # coordinates in cell order: the search reads them contiguously
    py = np.empty(n, np.float64)
    slot = np.empty(n, np.int64)
    for i in range(n):
        c = (i // s) * nc + ry[i] // s
        px[fill[c]], py[fill[c]], slot[i] = g[i], g[ry[i]], fill[c]
        fill[c] += 1

    best = np.empty(k, np.float64)
    total = 0.0
    for i in range(n):
        xi, yi = g[i], g[ry[i]]
        cx, cy, own = i // s, ry[i] // s, slot[i]
        for t in range(k):
            best[t] = np.inf
        r = 0
        while True:
            for ax in range(max(cx - r, 0), min(cx + r, nc - 1) + 1):
                edge_x = ax == cx - r or ax == cx + r
                ay = max(cy - r, 0)
                while ay <= min(cy + r, nc - 1):
                    if edge_x or ay == cy - r or ay == cy + r:
                        c = ax * nc + ay
                        for m in range(start[c], start[c + 1]):
                            if m == own:
                                continue
                            d = max(abs(px[m] - xi), abs(py[m] - yi))
                            if d < best[k - 1]:
                                t = k - 1
                                while t > 0 and best[t - 1] > d:
                                    best[t] = best[t - 1]
                                    t -= 1
                                best[t] = d
                        ay += 1
                    else:  # interior cells were searched in earlier rings
                        ay = cy + r
            # distance from the point to the nearest rank outside the searched block of cells
            bound = np.inf
            lo, hi = (cx - r) * s, (cx + r + 1) * s
            if lo > 0:
                bound = min(bound, xi - g[lo - 1])
            if hi < n:
                bound = min(bound, g[hi] - xi)
            lo, hi = (cy - r) * s, (cy + r + 1) * s
            if lo > 0:
                bound = min(bound, yi - g[lo - 1])
            if hi < n:
                bound = min(bound, g[hi] - yi)
            if best[k - 1] <= bound or bound == np.inf:
                break
            r += 1
        eps = best[k - 1]
        nx = _below(g, xi + eps, True) - _below(g, xi - eps, False) - 1
        ny = _below(g, yi + eps, True) - _below(g, yi - eps, False) - 1
        total += psi[nx + 1] + psi[ny + 1]
    return float(psi[k] + psi[n] - total / n)
