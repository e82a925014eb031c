"""Label-free baselines: what simple, generic reductions of the spectra carry, to stand beside each node.

A node's MI with a label means little alone: a principal component, a colour or a cross-correlation
velocity may carry as much. :class:`LabelFreeBaselines` is fit on training spectra (never on labels) and turns
any spectra ``flux (N, L)`` with their mask ``(N, L)`` (as the network sees them: masked pixels 0) into
features ``(N, F)``:

- ``pc1`` … ``pcK``: the projections on the first K principal components of the training spectra (spectra
  longer than :data:`PCA_PIXELS` are averaged in blocks of pixels first);
- ``colour``: −2.5 log10 of the mean flux of the bluest third of the spectrum's unmasked pixels over the
  reddest third (a continuum colour, in magnitudes);
- ``ccf_velocity``: the velocity (km/s) that maximises the cross-correlation of the spectrum's lines
  (flux over its running mean, minus 1) with those of the training set's mean spectrum, refined by a parabola
  through the peak; searched within ±:data:`CCF_MAX_KMS`. The template starts as the most typical training
  spectrum (largest dot product with their mean profile); the training spectra are then aligned on it and
  averaged (:data:`ALIGN_ITERATIONS` rounds). Its zero point is that first spectrum's velocity.
- ``ccf_z`` (logarithmic grids only, where a redshift is a translation): the same cross-correlation scanned over
  the grid's whole range of log-λ shifts, as ``(1 + z) / (1 + z_template) − 1``: a label-free redshift up to the
  template's own.

Nothing here is specific to a data set; pure numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

C_KMS = 299_792.458
PCA_PIXELS = 8192
CCF_MAX_KMS = 1000.0
CONTINUUM_PX = 101  # running-mean window that defines the continuum for the CCF (odd)
ALIGN_ITERATIONS = 2  # template sharpening rounds


def _block_means(x: np.ndarray, block: int) -> np.ndarray:
    """``(N, L)`` -> ``(N, ceil(L / block))`` means over blocks of ``block`` pixels (zero-padded at the end)."""
    if block == 1:
        return x
    n, length = x.shape
    pad = (-length) % block
    x = np.pad(x, ((0, 0), (0, pad)))
    return np.asarray(x.reshape(n, -1, block).mean(axis=2))


def _running_mean(x: np.ndarray, mask: np.ndarray, width: int) -> np.ndarray:
    """``(N, L)`` mean over ``width`` pixels of the unmasked values (NaN where none)."""
    half = width // 2
    w = mask.astype(np.float64)
    cs = np.cumsum(np.pad(x * w, ((0, 0), (half + 1, half))), axis=1)
    cw = np.cumsum(np.pad(w, ((0, 0), (half + 1, half))), axis=1)
    num = cs[:, width:] - cs[:, :-width]
    den = cw[:, width:] - cw[:, :-width]
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def line_profile(flux: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``(N, L)`` flux over its running continuum, minus 1; 0 where masked (what the CCF correlates)."""
    flux = np.asarray(flux, np.float64)
    cont = _running_mean(flux, mask, CONTINUUM_PX)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = flux / cont - 1.0
    ok = mask & np.isfinite(out) & (cont > 0)
    return np.where(ok, out, 0.0)


def ccf_lags(profile: np.ndarray, template: np.ndarray, max_shift: int) -> np.ndarray:
    """``(N,)`` pixel lag (positive: ``profile`` moved to larger indices) of each row of ``profile (N, L)`` where its
    cross-correlation with ``template (L,)`` peaks, within ``±max_shift`` px, refined by a parabola through the peak.
    Zero the pixels that should not count (a band mask) in ``profile`` or ``template``."""
    length = profile.shape[1]
    size = 1 << int(np.ceil(np.log2(2 * length)))
    spec = np.fft.rfft(profile, size, axis=1)
    tmpl = np.fft.rfft(template, size)
    cc = np.fft.irfft(spec * np.conj(tmpl), size, axis=1)  # cc[s] = Σ profile[i + s] · template[i]
    s = min(max_shift, length - 1)
    window = np.concatenate([cc[:, -s:], cc[:, : s + 1]], axis=1)  # lags -s .. s
    peak = np.argmax(window, axis=1)
    rows = np.arange(len(window))
    inner = (peak > 0) & (peak < 2 * s)
    left = window[rows, np.clip(peak - 1, 0, 2 * s)]
    mid = window[rows, peak]
    right = window[rows, np.clip(peak + 1, 0, 2 * s)]
    denom = left - 2 * mid + right
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(inner & (denom < 0), 0.5 * (left - right) / denom, 0.0)
    return np.asarray(peak - s + frac, dtype=np.float64)


class LabelFreeBaselines:
    """Fit on training spectra, then ``features(flux, mask) -> (N, F)`` named by :attr:`names`.

    Args:
        wave: ``(L,)`` the grid's wavelengths (Å), for the CCF's velocity scale.
        n_components: principal components kept.
    """

    def __init__(self, wave: np.ndarray, n_components: int = 3):
        self.wave = np.asarray(wave, np.float64)
        self.n_components = n_components
        self.block = max(1, -(-len(self.wave) // PCA_PIXELS))
        self.mean: np.ndarray | None = None
        self.components: np.ndarray | None = None
        self.template: np.ndarray | None = None
        # velocity of one pixel: c·Δλ/λ, its median over the grid (exact on a log grid, ±half the span on a linear one)
        finite = np.isfinite(self.wave)
        ratio = np.diff(self.wave[finite]) / self.wave[finite][:-1]
        self.kms_per_px = float(C_KMS * np.median(ratio)) if ratio.size else 1.0
        self.max_shift = int(min(len(self.wave) // 4, max(2, np.ceil(CCF_MAX_KMS / max(self.kms_per_px, 1e-9)))))
        # a constant step of log10 λ: a redshift moves every line by the same number of pixels
        log_steps = np.diff(np.log10(self.wave[finite])) if finite.sum() > 2 else np.zeros(1)
        self.log_step = float(np.median(log_steps)) if np.allclose(log_steps, np.median(log_steps), rtol=1e-3) else 0.0

    @property
    def names(self) -> list[str]:
        """The features' names; fewer components than asked when fit on fewer spectra."""
        n = len(self.components) if self.components is not None else self.n_components
        return [f"pc{i + 1}" for i in range(n)] + ["colour", "ccf_velocity"] + (["ccf_z"] if self.log_step else [])

    def fit(self, flux: np.ndarray, mask: np.ndarray) -> LabelFreeBaselines:
        """Principal components and the CCF template from training spectra ``(M, L)`` (masked pixels 0)."""
        x = _block_means(np.where(mask, flux, 0.0).astype(np.float64), self.block)
        self.mean = x.mean(axis=0)
        _, _, vt = np.linalg.svd(x - self.mean, full_matrices=False)
        self.components = vt[: self.n_components]
        # the template: start from the most typical training spectrum (the plain mean of spectra at many
        # velocities has lines as wide as their spread, and a flat-topped correlation), then align the training
        # spectra on it and average, twice
        profile = line_profile(flux, mask)
        self.template = profile[np.argmax(profile @ profile.mean(axis=0))]
        pixels = np.arange(profile.shape[1], dtype=np.float64)
        for _ in range(ALIGN_ITERATIONS):
            lags = self._lags(profile)
            aligned = np.array(
                [np.interp(pixels + lag, pixels, p, left=0.0, right=0.0) for p, lag in zip(profile, lags)]
            )
            self.template = aligned.mean(axis=0)
        return self

    def features(self, flux: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``(N, F)`` features of spectra ``flux (N, L)`` with ``mask (N, L)`` (True = data)."""
        if self.components is None or self.mean is None:
            raise RuntimeError("fit the baselines on training spectra first")
        flux = np.asarray(flux, np.float64)
        mask = np.asarray(mask, bool)
        x = _block_means(np.where(mask, flux, 0.0), self.block)
        pcs = (x - self.mean) @ self.components.T
        profile = line_profile(flux, mask)
        columns = [pcs, self.colour(flux, mask), self._lags(profile) * self.kms_per_px]
        if self.log_step:  # the same correlation over every shift the grid allows
            columns.append(10 ** (self._lags(profile, len(self.wave) - 1) * self.log_step) - 1)
        return np.column_stack(columns)

    @staticmethod
    def colour(flux: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``(N,)`` −2.5 log10(mean of the bluest third of unmasked pixels / mean of the reddest third)."""
        out = np.full(len(flux), np.nan)
        for i, (f, m) in enumerate(zip(flux, mask)):
            idx = np.flatnonzero(m)
            if len(idx) < 3:
                continue
            third = len(idx) // 3
            blue, red = f[idx[:third]].mean(), f[idx[-third:]].mean()
            if blue > 0 and red > 0:
                out[i] = -2.5 * np.log10(blue / red)
        return out

    def ccf_velocity(self, flux: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``(N,)`` km/s of the cross-correlation peak against the template (positive: lines moved redward)."""
        return self._lags(line_profile(flux, mask)) * self.kms_per_px

    def _lags(self, profile: np.ndarray, max_shift: int | None = None) -> np.ndarray:
        """``(N,)`` pixel lag of each line profile's cross-correlation peak against the template, within
        ``max_shift`` pixels (default: :data:`CCF_MAX_KMS`'s)."""
        assert self.template is not None
        return ccf_lags(profile, self.template, max_shift or self.max_shift)

    def describe(self) -> dict[str, Any]:
        """What each feature is (for ``report.json``)."""
        return {
            "pc": f"projections on the first {self.n_components} principal components of the training spectra"
            + (f" (averaged in blocks of {self.block} px)" if self.block > 1 else ""),
            "colour": "-2.5 log10(mean flux of the bluest third of unmasked pixels / the reddest third)",
            "ccf_velocity": f"km/s of the cross-correlation peak against the training mean spectrum's lines "
            f"(within ±{CCF_MAX_KMS:g} km/s, {self.kms_per_px:.3g} km/s per px)",
            **(
                {
                    "ccf_z": "(1 + z) / (1 + z_template) − 1 of the same cross-correlation's peak over every "
                    "log-λ shift the grid allows"
                }
                if self.log_step
                else {}
            ),
        }
