"""LightningDataModules that read a spectra_lightning store."""

from spectra_lightning.data_modules.spectra import SpectraDataModule
from spectra_lightning.data_modules.streaming import StreamingSpectraDataModule

__all__ = ["SpectraDataModule", "StreamingSpectraDataModule"]
