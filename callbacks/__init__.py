"""Lightning callbacks that read the latent space during training, and a log-friendly progress printer."""

from .epoch_lines import EpochLines
from .interrupted import SaveOnInterrupt
from .latent_metrics import LatentMetrics

__all__ = ["EpochLines", "LatentMetrics", "SaveOnInterrupt"]
