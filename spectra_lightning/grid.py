"""The wavelength grid: the one home of the paper's preprocessing constants.

Sedaghat et al. (2021) put every HARPS 1-D spectrum on 3785–6910 Å (inclusive) at
0.01 Å = 312,501 px, zero-padded to 327,680 px (7,589 left, 7,590 right) so that 14
stride-2 layers divide it, and mask the padding and the CCD gap between the blue and
red chips. :class:`SpectralGrid` describes that grid and shorter ones (a window and/or
a coarser step) for CPU runs. Wavelengths are air, in Å.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

import numpy as np

C_KMS = 299_792.458  # speed of light, km/s (Doppler shifts: λ = λ0 (1 + v/c))
HARPS_WAVE_MIN = 3785.0  # Å, first on-grid pixel
HARPS_WAVE_MAX = 6910.0  # Å, last on-grid pixel (inclusive)
HARPS_STEP = 0.01  # Å per pixel
HARPS_LENGTH = 327_680  # padded length, 20 * 2**14
# The CCD gap as in the paper's mask: padded indices 159453–162893 inclusive on the
# HARPS grid, i.e. these wavelengths; shorter grids mask their pixels inside it.
CCD_GAP = (
    HARPS_WAVE_MIN + (159_453 - 7_589) * HARPS_STEP,
    HARPS_WAVE_MIN + (162_893 - 7_589) * HARPS_STEP,
)  # (5303.64, 5338.04) Å


@dataclass(frozen=True)
class SpectralGrid:
    """A uniform wavelength grid, centred in a zero-padded array of ``length`` pixels.

    Args:
        wave_min, wave_max: first on-grid wavelength and upper bound of the last (Å, inclusive).
        step: pixel size in Å.
        length: padded length (what the network sees); ``>= n_pixels``.
        mask_gap: mask the HARPS CCD gap where it falls inside the grid.
    """

    wave_min: float = HARPS_WAVE_MIN
    wave_max: float = HARPS_WAVE_MAX
    step: float = HARPS_STEP
    length: int = HARPS_LENGTH
    mask_gap: bool = True

    def __post_init__(self) -> None:
        if not (self.wave_max > self.wave_min and self.step > 0):
            raise ValueError(f"invalid grid: {self}")
        if self.length < self.n_pixels:
            raise ValueError(f"grid length {self.length} < {self.n_pixels} on-grid pixels")

    @cached_property
    def n_pixels(self) -> int:
        """On-grid (unpadded) pixels: those with wavelength <= wave_max."""
        return int(np.floor((self.wave_max - self.wave_min) / self.step + 1e-6)) + 1

    @property
    def pad_left(self) -> int:
        return (self.length - self.n_pixels) // 2

    @property
    def pad_right(self) -> int:
        return self.length - self.n_pixels - self.pad_left

    @cached_property
    def wavelength(self) -> np.ndarray:
        """``(L,)`` float64 pixel-centre wavelengths, extrapolated into the padding."""
        return self.wave_min + (np.arange(self.length) - self.pad_left) * self.step

    @cached_property
    def gap_mask(self) -> np.ndarray:
        """``(L,)`` bool, True inside the CCD gap."""
        if not self.mask_gap:
            return np.zeros(self.length, bool)
        tol = 1e-6 * self.step
        w = self.wavelength
        return (w >= CCD_GAP[0] - tol) & (w <= CCD_GAP[1] + tol)

    @cached_property
    def valid(self) -> np.ndarray:
        """``(L,)`` bool, True for pixels that can hold data (not padding, not gap)."""
        v = np.zeros(self.length, bool)
        v[self.pad_left : self.pad_left + self.n_pixels] = True
        return np.asarray(v & ~self.gap_mask)

    @cached_property
    def n_valid(self) -> int:
        """Pixels that can hold data."""
        return int(self.valid.sum())

    def index_of(self, wave: float | np.ndarray) -> np.ndarray:
        """Fractional padded pixel index of a wavelength."""
        return (np.asarray(wave) - self.wave_min) / self.step + self.pad_left

    def resample(self, wave: np.ndarray, flux: np.ndarray, method: str = "auto") -> np.ndarray:
        """``flux(wave)`` onto the grid -> ``(L,)`` float64; NaN where masked.

        ``linear``: linear interpolation; an output pixel is NaN when an input neighbour it
        draws on is non-finite (a neighbour with zero weight does not count), so an input
        already on the grid is copied exactly. ``mean``: flux-conserving box average of the
        input pixels whose centres fall in each output pixel, NaN if any of them is
        non-finite; right when the input is much finer than the grid (no aliasing of
        narrow lines). ``auto``: :meth:`auto_method`. Pixels outside the input's coverage and
        masked grid pixels are NaN. ``grid_kernel.place_linear`` is the compiled ``linear``.
        """
        wave = np.asarray(wave, float)
        flux = np.asarray(flux, float)
        if wave.ndim != 1 or wave.shape != flux.shape or wave.size < 2:
            raise ValueError(f"wave {wave.shape} and flux {flux.shape} must be equal 1-D arrays of >= 2 pixels")
        if np.any(np.diff(wave) < 0):
            order = np.argsort(wave, kind="stable")
            wave, flux = wave[order], flux[order]
        if method == "auto":
            method = self.auto_method(wave)
        out = np.full(self.length, np.nan)
        target = self.wavelength
        inside = self.valid & (target >= wave[0]) & (target <= wave[-1])
        if method == "mean":
            idx = np.rint((wave - self.wave_min) / self.step).astype(np.int64) + self.pad_left
            ok = (idx >= 0) & (idx < self.length)
            idx, f = idx[ok], flux[ok]
            bad = ~np.isfinite(f)
            total = np.bincount(idx, np.where(bad, 0.0, f), self.length)
            count = np.bincount(idx, minlength=self.length)
            nbad = np.bincount(idx, bad.astype(float), self.length)
            good = inside & (count > 0) & (nbad == 0)
            out[good] = total[good] / count[good]
            return out
        if method != "linear":
            raise ValueError(f"unknown resampling method {method!r}")
        offset = (wave[0] - self.wave_min) / self.step
        if (
            abs(offset - round(offset)) < 1e-4
            and abs(wave[-1] - wave[0] - (wave.size - 1) * self.step) < 1e-4 * self.step
        ):
            # already on the grid (e.g. ESO ADP, DRS s1d): copy, no interpolation
            start = int(round(offset)) + self.pad_left
            lo, hi = max(start, 0), min(start + wave.size, self.length)
            if hi > lo:
                out[lo:hi] = flux[lo - start : hi - start]
            out[~self.valid] = np.nan
            return out
        t = target[inside]
        if t.size == 0:  # no overlap (e.g. an echelle order outside the grid)
            return out
        j = self._bracket(wave, t)
        w0, w1 = wave[j], wave[j + 1]
        span = w1 - w0
        frac = (t - w0) / span if span.min() > 0 else np.where(span > 0, (t - w0) / np.where(span > 0, span, 1.0), 0.0)
        values = flux[j] * (1 - frac) + flux[j + 1] * frac
        # a neighbour with (almost) zero weight cannot poison the pixel: rare, so redo only those
        edge = np.flatnonzero((frac < 1e-6) | (frac > 1 - 1e-6))
        if edge.size:
            fe, je = frac[edge], j[edge]
            values[edge] = (
                np.where(fe > 1 - 1e-6, 0.0, flux[je]) * (1 - fe) + np.where(fe < 1e-6, 0.0, flux[je + 1]) * fe
            )
        out[inside] = values
        return out

    def auto_method(self, wave: np.ndarray) -> str:
        """``mean`` when the typical input step is below half the grid step, else ``linear``.

        The typical step is the median span of ``k`` input pixels over ``k`` (about 1,000 spans,
        so a gap between chips counts once and the cost is negligible); ``wave`` ascending.
        """
        k = max(1, (len(wave) - 1) // 1024)
        return "mean" if np.median(np.diff(wave[::k])) / k < 0.5 * self.step else "linear"

    @staticmethod
    def _bracket(wave: np.ndarray, t: np.ndarray) -> np.ndarray:
        """``j`` with ``wave[j] <= t < wave[j + 1]`` (the last interval closed) for sorted ``wave``.

        Evenly spaced inputs (a linear WCS) get ``j`` by arithmetic, checked; others by search.
        """
        n = len(wave)
        step = (wave[-1] - wave[0]) / (n - 1)
        if step > 0:
            j = np.clip(((t - wave[0]) / step).astype(np.int64), 0, n - 2)
            j -= (wave[j] > t) & (j > 0)  # rounding can put t one interval off
            j += (t >= wave[j + 1]) & (j < n - 2)
            if np.all((wave[j] <= t) & ((t < wave[j + 1]) | (j == n - 2))):
                return np.asarray(j)
        return np.clip(np.searchsorted(wave, t, side="right") - 1, 0, n - 2)

    def describe(self) -> dict[str, Any]:
        """JSON-able description, stored in store attributes and checkpoints."""
        return asdict(self)

    @classmethod
    def named(cls, name: str) -> SpectralGrid:
        try:
            return GRIDS[name]
        except KeyError:
            raise ValueError(f"unknown grid {name!r}; choose one of {sorted(GRIDS)}") from None

    @classmethod
    def parse(cls, spec: str | SpectralGrid) -> SpectralGrid:
        """A named grid (``harps``, ``miles`` ...) or an explicit one, ``START:STOP:STEP[:LENGTH]`` in Å
        (linear, STOP inclusive; LENGTH, the padded length, defaults to the on-grid pixels). Explicit
        grids mask no CCD gap: that mask belongs to HARPS."""
        if isinstance(spec, SpectralGrid):
            return spec
        text = str(spec).strip()
        if text in GRIDS:
            return GRIDS[text]
        parts = text.split(":")
        usage = (
            f"unknown grid {text!r}: expected a name ({', '.join(sorted(GRIDS))}) or START:STOP:STEP[:LENGTH] in Å, "
            "e.g. 3540.5:7409.6:0.9"
        )
        if len(parts) not in (3, 4):
            raise ValueError(usage)
        try:
            start, stop, step = (float(p) for p in parts[:3])
            length = int(parts[3]) if len(parts) == 4 else None
        except ValueError:
            raise ValueError(usage) from None
        if not (np.isfinite([start, stop, step]).all() and stop > start and step > 0):
            raise ValueError(f"grid {text!r}: need START < STOP and STEP > 0 (Å)")
        n = int(np.floor((stop - start) / step + 1e-6)) + 1
        if n > 10_000_000:
            raise ValueError(f"grid {text!r}: {n:,} pixels is more than any spectrograph needs; check STEP")
        if length is not None and length < n:
            raise ValueError(f"grid {text!r}: LENGTH {length} is shorter than its {n} on-grid pixels")
        return cls(start, stop, step, length if length is not None else n, mask_gap=False)


GRIDS = {
    # the paper's grid
    "harps": SpectralGrid(),
    # quickstart: 5000–5655 Å at 0.08 Å = 8,188 px padded to 8,192 (Mg b, the gap, Fe lines)
    "quickstart": SpectralGrid(5000.0, 5655.0, 0.08, 8192),
    # tests: 5150–5405 Å at 0.5 Å = 511 px padded to 512
    "tiny": SpectralGrid(5150.0, 5405.0, 0.5, 512),
    # the MILES library (R ≈ 2,000): 3540.5–7409.6 Å at 0.9 Å = 4,300 px padded to 4,352 = 17 x 2**8; no CCD gap
    "miles": SpectralGrid(3540.5, 7409.6, 0.9, 4352, mask_gap=False),
}
