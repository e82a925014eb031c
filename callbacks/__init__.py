"""Lightning callbacks that read the latent space during training."""

from .latent_metrics import LatentMetrics

__all__ = ["LatentMetrics"]
