"""The base class each model part option must name a subclass of (``parts.resolve``), in one place."""

from __future__ import annotations

import torch

from spectra_lightning.model import observed  # noqa: F401  (its network is a part option: listed in fit --help)
from spectra_lightning.model.kl_schedules import KLSchedule
from spectra_lightning.model.losses import Reconstruction
from spectra_lightning.model.nets import SpectrumNet

# the base class each part option must name a subclass of (parts.resolve), checked before anything is built
PART_BASES: dict[str, type] = {
    "net": SpectrumNet,
    "loss": Reconstruction,
    "kl_schedule": KLSchedule,
    "optimizer": torch.optim.Optimizer,
    "scheduler": torch.optim.lr_scheduler.LRScheduler,
}
