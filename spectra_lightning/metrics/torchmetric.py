"""Thin torchmetrics wrapper: accumulate codes across batches and ranks, then analyse them."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from spectra_lightning.metrics.report import latent_report


class LatentCodes(Metric):
    """Collects μ ``(B, D)``, log σ² ``(B, D)``, labels ``(B, K)``, spectrum indices ``(B,)`` and, when given,
    label-free baseline features ``(B, F)`` of the same spectra.

    States are concatenated across ranks; :meth:`codes` drops duplicate indices (a
    DistributedSampler pads uneven splits by repeating spectra) and sorts by index, so
    1 rank and N ranks see the same data. :meth:`compute` returns :func:`latent_report`.
    """

    full_state_update = False
    mu: list[torch.Tensor]
    logvar: list[torch.Tensor]
    labels: list[torch.Tensor]
    index: list[torch.Tensor]
    features: list[torch.Tensor]

    def __init__(self, label_names: list[str] | None = None, **report_kwargs: Any):
        super().__init__(compute_with_cache=False)
        self.label_names = list(label_names or [])
        self.report_kwargs = report_kwargs
        for name in ("mu", "logvar", "labels", "index", "features"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(
        self,
        mu: torch.Tensor,
        index: torch.Tensor,
        labels: torch.Tensor | None = None,
        logvar: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
    ) -> None:
        self.mu.append(mu.detach().float())
        self.features.append((features if features is not None else mu.new_zeros((mu.shape[0], 0))).detach().float())
        self.index.append(index.detach().long())
        self.logvar.append((logvar if logvar is not None else torch.full_like(mu, float("nan"))).detach().float())
        lab = labels if labels is not None else mu.new_zeros((mu.shape[0], 0))
        self.labels.append(lab.detach().float())

    def codes(self) -> dict[str, np.ndarray | None]:
        """``{"mu": (N, D), "logvar": (N, D) or None, "labels": (N, K), "index": (N,), "features": (N, F) or
        None}`` of all ranks, unique, sorted by index. Under DDP a collective: call it on every rank."""
        synced = self._is_synced  # inside compute() the states are gathered already
        with self.sync_context(should_sync=not synced, should_unsync=not synced):
            index = dim_zero_cat(self.index).cpu().numpy()
            _, first = np.unique(index, return_index=True)
            mu = dim_zero_cat(self.mu).cpu().numpy()[first]
            logvar = dim_zero_cat(self.logvar).cpu().numpy()[first]
            labels = dim_zero_cat(self.labels).cpu().numpy()[first]
            features = dim_zero_cat(self.features).cpu().numpy()[first]
        return {
            "mu": mu,
            "logvar": None if np.isnan(logvar).all() else logvar,
            "labels": labels,
            "index": index[first],
            "features": features if features.shape[1] else None,
        }

    def compute(self) -> dict[str, Any]:
        c = self.codes()
        assert c["mu"] is not None and c["labels"] is not None
        labels = {name: c["labels"][:, j] for j, name in enumerate(self.label_names)}
        return latent_report(c["mu"], labels, c["logvar"], **self.report_kwargs)
