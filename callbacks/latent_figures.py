"""The latent-space figures of a model at one moment: the report's figures, reconstructions, traversals."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from spectra_lightning.analysis import plots
from spectra_lightning.model.module import SpectrumAutoencoder
from spectra_lightning.physics.grid import SpectralGrid


def latent_figures(
    model: SpectrumAutoencoder,
    grid: SpectralGrid,
    report: dict,
    mu: np.ndarray,
    labels: dict[str, np.ndarray],
    examples: dict | None = None,
    traversal_steps: int = 7,
) -> dict[str, Figure]:
    """Figures by name: those of :func:`plots.report_figures`, the reconstructions of ``examples``
    (``{"flux": (B, L), "mask": (B, L)}``) and a traversal of each of the first six informative nodes of
    ``mu (N, D)`` (the others held at their median), decoded by ``model.decode``."""
    wave, valid = grid.wavelength, grid.valid
    windows = plots.windows_in(wave, valid)
    figs = plots.report_figures(report, mu, labels)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if examples is not None:
                flux = examples["flux"].to(model.device)
                recon, _, _ = model(flux)
                figs["reconstructions"] = plots.reconstructions(
                    wave,
                    flux.float().cpu().numpy(),
                    examples["mask"].cpu().numpy(),
                    recon.float().cpu().numpy(),
                    windows,
                )
            median = np.median(mu, axis=0)
            for node in report["mad"]["informative"][:6]:
                values = np.percentile(mu[:, node], np.linspace(1, 99, traversal_steps))
                z = np.repeat(median[None], len(values), axis=0)
                z[:, node] = values
                decoded = model.decode(torch.as_tensor(z, dtype=torch.float32, device=model.device))
                figs[f"traversal_node{node}"] = plots.traversal(
                    wave, decoded.float().cpu().numpy(), values, node, windows, valid
                )
    finally:
        model.train(was_training)
    return figs
