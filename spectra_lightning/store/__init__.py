"""The Zarr store of spectra on a grid: create, append whole spectra, open, metadata, checksums and verify, the
writer lock, and the batch a store's rows become (``store.batch``, the contract between data and model)."""

from spectra_lightning.store.spectra_store import DamagedStoreError, SpectraStore, StoreError, StoreSource, fill_masked

__all__ = ["DamagedStoreError", "SpectraStore", "StoreError", "StoreSource", "fill_masked"]
