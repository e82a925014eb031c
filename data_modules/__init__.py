"""LightningDataModules that read a spectra_lightning store."""

from .spectra import SpectraDataModule

__all__ = ["SpectraDataModule"]
