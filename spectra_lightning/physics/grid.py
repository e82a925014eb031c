"""The wavelength grid: the one home of the paper's preprocessing constants.

Sedaghat et al. (2021) put every HARPS 1-D spectrum on 3785–6910 Å (inclusive) at
0.01 Å = 312,501 px, zero-padded to 327,680 px (7,589 left, 7,590 right) so that 14
stride-2 layers divide it, and mask the padding and the CCD gap between the blue and
red chips. :class:`SpectralGrid` describes that grid and shorter ones (a window and/or
a coarser step) for CPU runs, and logarithmic grids (a constant step in log10 λ, as SDSS, LAMOST,
MaNGA and APOGEE use; on them a Doppler shift or a redshift is a translation). Wavelengths are in Å,
in air (the HARPS-like grids) or vacuum (the survey grids): the grid says which.
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


def vacuum_to_air(wave: np.ndarray) -> np.ndarray:
    """Vacuum wavelengths (Å) -> air (the IAU standard, Morton 2000 after Ciddor 1996): λ_air = λ_vac / n with
    n = 1 + 8.34254e-5 + 2.406147e-2 / (130 − s²) + 1.5998e-4 / (38.9 − s²), s = 10⁴ / λ_vac (µm⁻¹)."""
    wave = np.asarray(wave, np.float64)
    s2 = (1e4 / wave) ** 2
    return np.asarray(wave / (1 + 8.34254e-5 + 2.406147e-2 / (130 - s2) + 1.5998e-4 / (38.9 - s2)))


def air_to_vacuum(wave: np.ndarray) -> np.ndarray:
    """Air wavelengths (Å) -> vacuum: :func:`vacuum_to_air` inverted (three fixed-point steps, < 1e-8 Å)."""
    air = np.asarray(wave, np.float64)
    vac = air.copy()
    for _ in range(3):
        vac = vac * air / vacuum_to_air(vac)
    return np.asarray(vac)


@dataclass(frozen=True)
class SpectralGrid:
    """A uniform wavelength grid, linear (a constant step in Å) or logarithmic (a constant step in log10 λ),
    centred in a zero-padded array of ``length`` pixels.

    Pixel i (padded index, 0 … length−1) has wavelength ``wave_min + (i − pad_left)·step`` on a linear grid and
    ``10**(log10(wave_min) + (i − pad_left)·step)`` on a logarithmic one.

    Args:
        wave_min, wave_max: first on-grid wavelength and upper bound of the last (Å, inclusive).
        step: pixel size: Å (linear) or dex, the step of log10 λ (``log``).
        length: padded length (what the network sees); ``>= n_pixels``.
        mask_gap: mask the HARPS CCD gap where it falls inside the grid.
        log: a logarithmic grid.
        medium: ``air`` or ``vacuum``: the wavelengths' medium (readers convert to it).
    """

    wave_min: float = HARPS_WAVE_MIN
    wave_max: float = HARPS_WAVE_MAX
    step: float = HARPS_STEP
    length: int = HARPS_LENGTH
    mask_gap: bool = True
    log: bool = False
    medium: str = "air"

    def __post_init__(self) -> None:
        if not (self.wave_max > self.wave_min > 0 and self.step > 0):
            raise ValueError(f"invalid grid: {self}")
        if self.medium not in ("air", "vacuum"):
            raise ValueError(f"grid medium must be air or vacuum, got {self.medium!r}")
        if self.length < self.n_pixels:
            raise ValueError(f"grid length {self.length} < {self.n_pixels} on-grid pixels")

    def _coord(self, wave: float | np.ndarray) -> np.ndarray:
        """The coordinate the grid is uniform in: λ (linear) or log10 λ (log)."""
        return np.log10(wave) if self.log else np.asarray(wave, np.float64)

    @cached_property
    def n_pixels(self) -> int:
        """On-grid (unpadded) pixels: those with wavelength <= wave_max."""
        span = self._coord(self.wave_max) - self._coord(self.wave_min)
        return int(np.floor(span / self.step + 1e-6)) + 1

    def pixel_width(self, wave: float | np.ndarray) -> np.ndarray:
        """The width of a pixel at ``wave`` (Å): ``step`` on a linear grid, λ·ln10·step on a log one."""
        return (
            np.asarray(wave, np.float64) * np.log(10) * self.step
            if self.log
            else np.full_like(np.asarray(wave, np.float64), self.step)
        )

    @property
    def pad_left(self) -> int:
        return (self.length - self.n_pixels) // 2

    @property
    def pad_right(self) -> int:
        return self.length - self.n_pixels - self.pad_left

    @cached_property
    def wavelength(self) -> np.ndarray:
        """``(L,)`` float64 pixel-centre wavelengths (Å, in ``medium``), extrapolated into the padding."""
        coord = self._coord(self.wave_min) + (np.arange(self.length) - self.pad_left) * self.step
        return np.asarray(10**coord if self.log else coord)

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
        index = np.asarray((self._coord(wave) - self._coord(self.wave_min)) / self.step + self.pad_left)
        return index[()]  # a scalar for a scalar wavelength (round() works on it), an array for an array

    def resample(self, wave: np.ndarray, flux: np.ndarray, method: str = "auto", variance: bool = False) -> np.ndarray:
        """``flux(wave)`` onto the grid -> ``(L,)`` float64; NaN where masked.

        ``linear``: linear interpolation; an output pixel is NaN when an input neighbour it
        draws on is non-finite (a neighbour with zero weight does not count), so an input
        already on the grid is copied exactly. ``mean``: exact flux-conserving rebinning (:func:`rebin`): each
        output pixel is the mean flux density over its extent, each input pixel weighted by the length it
        overlaps (input pixels span halfway to their neighbours; a step more than twice both neighbouring steps
        is a gap, not a pixel), NaN if any overlapping input is non-finite or the extent is not covered; right
        when the input is finer than the grid (no aliasing of narrow lines, equivalent widths kept).
        ``auto``: :meth:`auto_method`. Pixels outside the input's coverage and masked grid pixels are NaN.
        ``grid_kernel.place_linear`` is the compiled ``linear``.

        ``variance``: ``flux`` holds the input pixels' variances (independent noise) and the result is the
        output pixels' variances: each output is a weighted sum Σ wᵢ xᵢ of inputs, so its variance is Σ wᵢ² σᵢ²
        (``linear``: (1−f)² σⱼ² + f² σⱼ₊₁²; ``mean``: Σ oᵢ² σᵢ² / (Σ oᵢ)² with oᵢ the overlaps; a copy on the
        lattice: σ² itself).
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
            lower, upper = self.pixel_edges()
            out[self.valid] = rebin(wave, flux, lower[self.valid], upper[self.valid], variance)
            return out
        if method != "linear":
            raise ValueError(f"unknown resampling method {method!r}")
        if self._on_lattice(wave):
            # already on the grid's lattice (ESO ADP, DRS s1d; SDSS, LAMOST, MaNGA on a log grid): copy, no
            # interpolation
            offset = float(self.index_of(wave[0])) - self.pad_left
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
        a, b = (1 - frac, frac) if not variance else ((1 - frac) ** 2, frac**2)
        values = flux[j] * a + flux[j + 1] * b
        # a neighbour with (almost) zero weight cannot poison the pixel: rare, so redo only those
        edge = np.flatnonzero((frac < 1e-6) | (frac > 1 - 1e-6))
        if edge.size:
            fe, je = frac[edge], j[edge]
            values[edge] = (
                np.where(fe > 1 - 1e-6, 0.0, flux[je]) * a[edge] + np.where(fe < 1e-6, 0.0, flux[je + 1]) * b[edge]
            )
        out[inside] = values
        return out

    def pixel_edges(self) -> tuple[np.ndarray, np.ndarray]:
        """``(L,)`` lower and upper wavelength edges (Å) of every pixel: ± half a step in λ, or in log10 λ."""
        if not self.log:
            return self.wavelength - self.step / 2, self.wavelength + self.step / 2
        coord = np.log10(self.wavelength)
        return 10 ** (coord - self.step / 2), 10 ** (coord + self.step / 2)

    def _on_lattice(self, wave: np.ndarray) -> bool:
        """Is every input pixel one of the grid's, consecutively? Linear: to 1e-4 of a pixel (the archives write
        exact grids); log: to 1e-2 of a pixel (surveys store log10 λ in float32, good to ~2e-3 px at 1e-4 dex)."""
        offset = float(self.index_of(wave[0])) - self.pad_left
        if not self.log:
            span = float(wave[-1] - wave[0])
            return abs(offset - round(offset)) < 1e-4 and abs(span - (wave.size - 1) * self.step) < 1e-4 * self.step
        idx = self.index_of(wave) - self.pad_left
        return bool(np.all(np.abs(idx - np.rint(idx)) < 1e-2) and np.all(np.diff(np.rint(idx)) == 1))

    def auto_method(self, wave: np.ndarray) -> str:
        """``mean`` when the typical input step is below half the grid step, else ``linear``.

        The typical step is the median span of ``k`` input pixels over ``k`` (about 1,000 spans,
        so a gap between chips counts once and the cost is negligible); ``wave`` ascending.
        """
        k = max(1, (len(wave) - 1) // 1024)
        return "mean" if np.median(np.diff(self._coord(wave[::k]))) / k < 0.5 * self.step else "linear"

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
        """JSON-able description, stored in store attributes and checkpoints (``log`` and ``medium`` only when
        not the defaults: a linear air grid is described as it was before they existed)."""
        d = asdict(self)
        if not self.log:
            d.pop("log")
        if self.medium == "air":
            d.pop("medium")
        return d

    @classmethod
    def named(cls, name: str) -> SpectralGrid:
        try:
            return GRIDS[name]
        except KeyError:
            raise ValueError(f"unknown grid {name!r}; choose one of {sorted(GRIDS)}") from None

    @classmethod
    def parse(cls, spec: str | SpectralGrid) -> SpectralGrid:
        """A named grid (``harps``, ``miles``, ``sdss`` ...) or an explicit one:
        ``START:STOP:STEP[:LENGTH][:air|:vacuum]`` in Å (linear, STOP inclusive; air unless said), or
        ``log:START:STOP:STEP[:LENGTH][:air|:vacuum]`` with START and STOP in Å and STEP in dex (log10 λ;
        vacuum unless said). LENGTH, the padded length, defaults to the on-grid pixels. Explicit grids mask no
        CCD gap: that mask belongs to HARPS."""
        if isinstance(spec, SpectralGrid):
            return spec
        text = str(spec).strip()
        if text in GRIDS:
            return GRIDS[text]
        parts = text.split(":")
        log = parts[0].lower() == "log"
        parts = parts[1:] if log else parts
        medium = "vacuum" if log else "air"
        if parts and parts[-1].lower() in ("air", "vacuum"):
            medium = parts.pop().lower()
        usage = (
            f"unknown grid {text!r}: expected a name ({', '.join(sorted(GRIDS))}), START:STOP:STEP[:LENGTH] in Å, "
            "e.g. 3540.5:7409.6:0.9, or log:START:STOP:STEP[:LENGTH] with STEP in dex, e.g. log:3548.1:10471.3:1e-4"
        )
        if len(parts) not in (3, 4):
            raise ValueError(usage)
        try:
            start, stop, step = (float(p) for p in parts[:3])
            length = int(parts[3]) if len(parts) == 4 else None
        except ValueError:
            raise ValueError(usage) from None
        if not (np.isfinite([start, stop, step]).all() and stop > start > 0 and step > 0):
            raise ValueError(f"grid {text!r}: need 0 < START < STOP and STEP > 0")
        span = np.log10(stop / start) if log else stop - start
        n = int(np.floor(span / step + 1e-6)) + 1
        if n > 10_000_000:
            raise ValueError(f"grid {text!r}: {n:,} pixels is more than any spectrograph needs; check STEP")
        if length is not None and length < n:
            raise ValueError(f"grid {text!r}: LENGTH {length} is shorter than its {n} on-grid pixels")
        return cls(start, stop, step, length if length is not None else n, False, log, medium)


def input_edges(wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The extents ``[a, b]`` of input pixels at ascending centres ``wave (M,)``: halfway to each neighbour (the
    first and last as wide as their inner half); across a gap — a step more than twice both neighbouring steps —
    each side keeps its own half-width, and what lies between is covered by no pixel."""
    d = np.diff(wave)
    left = np.concatenate([d[:1], d]) / 2  # half the step to the left neighbour
    right = np.concatenate([d, d[-1:]]) / 2
    if d.size >= 3:
        wider = np.maximum(np.concatenate([d[:1], d[:-1]]), np.concatenate([d[1:], d[-1:]]))
        gap = np.flatnonzero(d > 2 * wider)  # the step from pixel g to pixel g + 1
        right[gap], left[gap + 1] = left[gap], right[gap + 1]
    return wave - left, wave + right


def rebin(wave: np.ndarray, values: np.ndarray, lo: np.ndarray, hi: np.ndarray, variance: bool = False) -> np.ndarray:
    """Exact flux-conserving rebinning: input pixels at ascending centres ``wave (M,)`` holding flux densities
    ``values (M,)`` onto output pixels ``[lo, hi]`` (each ``(N,)``, ascending, not overlapping) -> ``(N,)``, each the
    overlap-weighted mean Σ oᵢ fᵢ / Σ oᵢ (as SpectRes and specutils' FluxConservingResampler define it), so the
    integral of the flux over every output pixel is the input's. ``variance``: ``values`` are variances and the
    result is Σ oᵢ² σᵢ² / (Σ oᵢ)². NaN where an overlapping input is non-finite or part of the pixel is covered by
    no input pixel (beyond the input, or in a gap)."""
    a, b = input_edges(wave)
    cuts = np.unique(np.concatenate([a, b, lo, hi]))
    mid, length = (cuts[:-1] + cuts[1:]) / 2, np.diff(cuts)
    j = np.searchsorted(lo, mid, side="right") - 1  # the output pixel each piece lies in, if any
    i = np.searchsorted(a, mid, side="right") - 1  # the input pixel, if any
    in_out = (j >= 0) & (mid < hi[np.clip(j, 0, None)])
    covered = (i >= 0) & (mid < b[np.clip(i, 0, None)])
    j, i, length, covered = j[in_out], np.clip(i[in_out], 0, None), length[in_out], covered[in_out]
    f = values[i]
    bad = ~covered | ~np.isfinite(f)
    n = lo.size
    weight = np.bincount(j, length, n)
    flawed = np.bincount(j, bad.astype(float), n) > 0
    wsum = np.bincount(j, np.where(bad, 0.0, (length**2 if variance else length) * f), n)
    out = np.full(n, np.nan)
    good = (weight > 0) & ~flawed
    out[good] = wsum[good] / (weight[good] ** 2 if variance else weight[good])
    return out


def log_grid(log_start: float, step: float, n: int, length: int) -> SpectralGrid:
    """A vacuum log grid ``log10 λ = log_start + step·i``, i = 0 … n−1, padded to ``length``."""
    return SpectralGrid(10**log_start, 10 ** (log_start + step * (n - 1)), step, length, False, True, "vacuum")


GRIDS = {
    # the paper's grid
    "harps": SpectralGrid(),
    # quickstart: 5000–5655 Å at 0.08 Å = 8,188 px padded to 8,192 (Mg b, the gap, Fe lines)
    "quickstart": SpectralGrid(5000.0, 5655.0, 0.08, 8192),
    # tests: 5150–5405 Å at 0.5 Å = 511 px padded to 512
    "tiny": SpectralGrid(5150.0, 5405.0, 0.5, 512),
    # the competing-shifts study (synth wave_offset/wave_stretch/tellurics): 4000–6800 Å at 0.7 Å = 4,001 px padded
    # to 4,096, where a Doppler shift (∝ λ) and a uniform one differ by > 1 px across the band at |v| ≥ 75 km/s
    "wide": SpectralGrid(4000.0, 6800.0, 0.7, 4096, mask_gap=False),
    # the MILES library (R ≈ 2,000): 3540.5–7409.6 Å at 0.9 Å = 4,300 px padded to 4,352 = 17 x 2**8; no CCD gap
    "miles": SpectralGrid(3540.5, 7409.6, 0.9, 4352, mask_gap=False),
    # SDSS/BOSS/eBOSS (and MaNGA, on the same lattice): log10 λ = 3.5500 + 1e-4·i, i = 0 … 4699 (3548–10468 Å,
    # vacuum), padded to 4,736 = 37 x 2**7
    "sdss": log_grid(3.55, 1e-4, 4700, 4736),
    # LAMOST low resolution: log10 λ = 3.5682 + 1e-4·i, i = 0 … 3908 (3700–9099 Å, vacuum), padded to 3,968
    "lamost": log_grid(3.5682, 1e-4, 3909, 3968),
    # APOGEE apStar: log10 λ = 4.179 + 6e-6·i, i = 0 … 8574 (15,101–17,000 Å, vacuum), padded to 8,576
    "apogee": log_grid(4.179, 6e-6, 8575, 8576),
}
