"""LightningDataModules that read a spectra_lightning store."""

from .spectra import SpectraDataModule
from .streaming import StreamingSpectraDataModule

__all__ = ["SpectraDataModule", "StreamingSpectraDataModule"]
