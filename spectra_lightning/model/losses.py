"""Reconstruction losses: per-spectrum errors ``(B,)`` over the unmasked pixels of ``(B, L)`` spectra.

A loss is a small :class:`Reconstruction` subclass named in YAML (``model.loss: {class_path, init_args}``); the
module adds the KL term (:mod:`spectra_lightning.model.kl_schedules`). Write a new one by overriding
:meth:`Reconstruction.pixel_error`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch

from spectra_lightning.common.errors import ConfigError
from spectra_lightning.model.parts import Part

Normalisation = Literal["sum", "mean"]


class Reconstruction(Part):
    """How far a reconstruction is from its spectrum, per spectrum.

    Args:
        normalisation: ``sum``: the error summed over each spectrum's unmasked pixels (λ in the KL schedule is
            then per spectrum; λ ≈ 3–1000 at quickstart and MILES sizes); ``mean``: averaged over them (the
            authors' successor code; λ ≈ 0.3 at full size).
    """

    def __init__(self, normalisation: Normalisation = "sum"):
        if normalisation not in ("sum", "mean"):
            raise ConfigError(f"--model.loss normalisation must be 'sum' or 'mean', got {normalisation!r}")
        self.normalisation = normalisation

    def pixel_error(self, residual: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
        """``(B, L)`` error of each pixel from the residual reconstruction − flux ``(B, L)`` (0 where masked)."""
        raise NotImplementedError

    def weightless(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """``(B,)`` bool: spectra this loss gives no weight at all (every pixel masked); they train the KL term
        alone."""
        return ~batch["mask"].any(1)

    def __call__(self, recon: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
        """``(B,)`` error of reconstructions ``(B, L)`` against ``batch["flux"]`` where ``batch["mask"]``."""
        mask = batch["mask"].to(recon.dtype)
        total = (self.pixel_error((recon - batch["flux"]) * mask, batch) * mask).sum(1)
        return total / mask.sum(1).clamp_min(1) if self.normalisation == "mean" else total


class AbsoluteError(Reconstruction):
    """|x̂ − x| per pixel: the paper's L1. Its optimum is the per-pixel median, which drops a line whose
    position varies by more than its width.

    Args:
        normalisation: ``sum`` over each spectrum's unmasked pixels, or their ``mean`` (the paper's).
    """

    def pixel_error(self, residual: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
        return residual.abs()


class SquaredError(Reconstruction):
    """(x̂ − x)² / (2σ) per pixel: a Gaussian negative log-likelihood with noise σ, rescaled by σ so that it matches
    |x̂ − x| in size for residuals of ~2σ. Its optimum is the mean: a line moving with RV stays as a shallow
    trough the decoder can sharpen.

    Args:
        noise_scale: σ, in normalised flux.
        normalisation: ``sum`` over each spectrum's unmasked pixels, or their ``mean``.
    """

    def __init__(self, noise_scale: float = 0.02, normalisation: Normalisation = "sum"):
        super().__init__(normalisation)
        if not noise_scale > 0:
            raise ConfigError(f"--model.loss noise_scale must be > 0, got {noise_scale}")
        self.noise_scale = noise_scale

    def pixel_error(self, residual: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
        return residual.pow(2) / (2 * self.noise_scale)


class ChiSquared(Reconstruction):
    """χ² = Σ ivar·(x̂ − x)² per spectrum, ``ivar`` the batch's inverse variance ``(B, L)`` in the units of the
    stored (normalised) flux: half of it is the Gaussian negative log-likelihood with known per-pixel noise (up
    to a constant), so noisy pixels weigh less and pixels of zero ivar nothing. Needs a store with an ``ivar``
    array; with ``mean`` the sum is divided by the unmasked pixels (a reduced χ² without the fitted parameters).

    Args:
        normalisation: ``sum`` over each spectrum's unmasked pixels, or their ``mean``.
    """

    def pixel_error(self, residual: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
        return residual.pow(2) * self._ivar(batch)

    def weightless(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Spectra whose every unmasked pixel has zero inverse variance weigh nothing in χ² either."""
        return ~((self._ivar(batch) > 0) & batch["mask"]).any(1)

    @staticmethod
    def _ivar(batch: Mapping[str, Any]) -> torch.Tensor:
        ivar = batch.get("ivar")
        if ivar is None:
            raise ConfigError(
                "--model.loss ChiSquared needs inverse variances: a store with an ivar array (see docs/store-format.md)"
            )
        return ivar
