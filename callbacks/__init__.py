"""Lightning callbacks that read the latent space during training, and a log-friendly progress printer."""

from spectra_lightning.callbacks.epoch_lines import EpochLines
from spectra_lightning.callbacks.interrupted import SaveOnInterrupt
from spectra_lightning.callbacks.latent_metrics import LatentMetrics

__all__ = ["EpochLines", "LatentMetrics", "SaveOnInterrupt"]
