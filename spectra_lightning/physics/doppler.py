"""The one Doppler shift of the project, and the resampling it rests on, in torch: what the data modules'
velocity augmentation and the decoder's Doppler node and warp both use."""

from __future__ import annotations

from typing import cast

import numpy as np
import torch
from torch import nn

from spectra_lightning.physics.grid import C_KMS


def resample(
    flux: torch.Tensor, displacement: torch.Tensor, fill: float | None = None, variance: bool = False
) -> torch.Tensor:
    """``flux (B, L)`` moved by ``displacement (B, L)`` pixels: ``out[i] = flux(i − d[i])`` by linear
    interpolation; beyond the edges the edge pixel, or ``fill`` when given (NaN: masked, as the data modules mark
    it). ``variance``: ``flux`` holds per-pixel variances, moved as the variance of the interpolated value,
    (1−f)² σ₀² + f² σ₁². Whole and fractional pixels are split from ``d`` itself, not from ``i − d``, so the
    interpolation weights keep float32's precision on grids of any length (at 327,680 px, ``i − d`` in float32 is
    quantised to 1/32 px)."""
    n = flux.shape[1]
    back = -displacement
    whole = back.floor()
    pos = torch.arange(n, device=flux.device)[None, :] + whole.long()  # the pixel at or left of i - d
    frac = (back - whole).to(flux.dtype)
    below, above = pos < 0, pos >= n - 1
    f = torch.where(below, torch.zeros_like(frac), torch.where(above, torch.ones_like(frac), frac))
    i0 = pos.clamp(0, n - 2)
    a, b = (1 - f, f) if not variance else ((1 - f) ** 2, f**2)
    out = flux.gather(1, i0) * a + flux.gather(1, i0 + 1) * b
    if fill is None:
        return out
    outside = below | (pos > n - 1) | ((pos == n - 1) & (frac > 0))
    return torch.where(outside, torch.full_like(out, fill), out)


class DopplerShift(nn.Module):
    """Move rest-frame spectra ``(B, L)`` to velocities ``v (B,)`` km/s: ``out(λ) = in(λ / (1 + v/c))`` by linear
    interpolation, on a uniform grid, linear or logarithmic. The one Doppler shift of the project: the decoder's
    Doppler node (edges: the edge pixel) and the data modules' velocity augmentation (edges: NaN, masked).

    Args:
        wave: ``(L,)`` pixel wavelengths (Å), a constant step in λ or in log λ.
        fill: the value beyond the edges (None: the edge pixel).
    """

    def __init__(self, wave: np.ndarray, fill: float | None = None):
        super().__init__()
        self.fill = fill
        wave = np.asarray(wave, np.float64)
        ratio = wave[1:] / wave[:-1]
        # a log grid: the shift is ln(1+β)/ln(ratio) pixels everywhere; a linear one: (λ_i/step)·β/(1+β)
        self.log_step = float(np.log(ratio.mean())) if np.allclose(ratio, ratio.mean(), rtol=0, atol=1e-12) else 0.0
        # in pixel units: source position = i - (λ_i / step)·β/(1+β); only the small term is a product
        self.register_buffer("wave_px", torch.tensor(wave / (wave[1] - wave[0]), dtype=torch.float32), persistent=False)

    def forward(self, flux: torch.Tensor, v: torch.Tensor, variance: bool = False) -> torch.Tensor:
        """``flux (B, L)`` at velocities ``v (B,)``; ``variance``: ``flux`` holds variances (see :func:`resample`)."""
        beta = (v.float() / C_KMS)[:, None]
        if self.log_step:
            return resample(flux, (torch.log1p(beta) / self.log_step).expand_as(flux), self.fill, variance)
        wave_px = cast(torch.Tensor, self.wave_px)
        return resample(flux, wave_px * (beta / (1 + beta)), self.fill, variance)
