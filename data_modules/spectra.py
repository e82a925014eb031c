"""A simple DataModule: a store, split by star, served by a map-style dataset.

Good for stores that fit in memory (the synthetic default) or on local disk; the
streaming module for archive-scale stores is ``spectra_lightning.data_modules.streaming``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from spectra_lightning.common.errors import ConfigError
from spectra_lightning.common.files import cache_dir, write_atomic
from spectra_lightning.common.run_layout import split_file
from spectra_lightning.data_modules.split import assign_splits
from spectra_lightning.ingest.synth import SynthSpec, synthesize
from spectra_lightning.physics.grid import SpectralGrid
from spectra_lightning.physics.labels import LABELS
from spectra_lightning.store import SpectraStore, StoreError, StoreSource, fill_masked
from spectra_lightning.store.batch import Item
from spectra_lightning.store.lock import StoreLockedError


class StoreDataset(Dataset):
    """Rows of a store as map-style :class:`~spectra_lightning.store.batch.Item` s (collated into a ``Batch``), with
    their inverse variances (``ivar``) when the store keeps them."""

    def __init__(self, store: SpectraStore, rows: np.ndarray, labels: np.ndarray, in_memory: bool):
        self.store, self.rows, self.labels = store, rows, labels
        self.has_ivar = store.ivar is not None
        self.cache = store.read(rows) if in_memory else None
        self.ivar_cache = store.read_ivar(rows) if in_memory and self.has_ivar else None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Item:
        row = self.rows[i]
        flux = self.cache[i] if self.cache is not None else self.store.read([row])[0]
        flux, mask = fill_masked(flux)
        item: Item = {
            "flux": torch.from_numpy(flux),
            "mask": torch.from_numpy(mask),
            "index": torch.tensor(row, dtype=torch.long),
            "labels": torch.from_numpy(self.labels[row]),
        }
        if self.has_ivar:
            ivar = self.ivar_cache[i] if self.ivar_cache is not None else self.store.read_ivar([row])[0]
            item["ivar"] = torch.from_numpy(np.where(mask, ivar, np.float32(0)))
        return item


class EpochShuffle(RandomSampler):
    """A permutation of the dataset drawn from ``(seed, epoch)``: Lightning sets the epoch before each
    pass (``set_epoch``), so epoch k has the same order whether or not the run was resumed. Under DDP
    Lightning replaces it (a ``RandomSampler``) by a ``DistributedSampler``, which is seeded the same way."""

    def __init__(self, data_source, seed: int = 0):
        super().__init__(data_source)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(np.random.default_rng([self.seed, self.epoch, 7]).permutation(len(self.data_source)).tolist())


class SpectraDataModule(L.LightningDataModule):
    """Serve a store (or a synthetic one it creates and caches) split by star.

    Args:
        store: path or fsspec URL of a store (default: ``$SPECTRA_LIGHTNING_STORE``). With
            ``synth`` and no ``store``, a cached synthetic store named by the spec's hash is
            used (created on first use).
        synth: the synthetic data set to use when no ``store`` is given (a store path that is given is
            never filled with synthetic data: a mistyped path is an error, not a new data set).
        batch_size: spectra per batch (per device under DDP).
        val_fraction, test_fraction: share of stars in each split. Checkpoints, early stopping and sweeps see
            validation only; the final report is computed on the test split (0: on validation, and it says so).
        split_seed: seed of the star-level split.
        labels: metadata columns carried in batches for the metric callbacks.
        in_memory: load the split's rows into memory once (fast for small stores).
        num_workers, pin_memory: DataLoader settings.
        storage_options: fsspec options for remote stores.
        check_checksums: check every spectrum read against its CRC-32 (a damaged chunk stops the run naming
            the rows; a row that holds no data always does). ~0.3 % of a quickstart step; on the full HARPS grid
            ~1.2x the read (docs/benchmarks.md).
    """

    def __init__(
        self,
        store: str | None = None,
        synth: SynthSpec | None = None,
        batch_size: int = 32,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        labels: list[str] = list(LABELS),  # noqa: B006 - a list default shows in --help; never mutated
        in_memory: bool = True,
        num_workers: int = 0,
        pin_memory: bool = False,
        storage_options: dict | None = None,
        check_checksums: bool = True,
    ):
        super().__init__()
        store = store if store is not None else (os.environ.get("SPECTRA_LIGHTNING_STORE") if synth is None else None)
        if store is None and synth is None:
            raise ConfigError(
                "no data: give a store (--data.init_args.store=PATH_OR_URL or $SPECTRA_LIGHTNING_STORE) or a synth spec"
            )
        if batch_size < 1:
            raise ConfigError(f"--data.init_args.batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise ConfigError(f"--data.init_args.num_workers must be >= 0, got {num_workers}")
        if store is not None:
            self.store_path = str(store)
        else:
            assert synth is not None  # checked above
            self.store_path = str(cache_dir() / f"synth-{synth.digest()}.zarr")
        self.synth = synth if store is None else None  # the store given wins; it is never synthesised
        self.batch_size, self.labels = batch_size, list(labels)
        self.fractions = (val_fraction, test_fraction)
        self.split_seed, self.in_memory = split_seed, in_memory
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.storage_options, self.check_checksums = storage_options, check_checksums
        self.source = StoreSource(self.store_path, storage_options, check_checksums)
        self.splits: dict[str, np.ndarray] = {}
        self.datasets: dict[str, StoreDataset] = {}
        self._split_path: Path | None = None

    @property
    def label_names(self) -> list[str]:
        return self.labels

    @property
    def grid(self) -> SpectralGrid:
        """The store's grid (known before the store exists when it will be synthesised)."""
        try:
            return self.store.grid
        except StoreError:
            if self.synth is None:
                raise
            return SpectralGrid.parse(self.synth.grid)

    @property
    def n_pixels(self) -> int:
        return self.grid.length

    @property
    def grid_spec(self) -> dict:
        """The grid as a dict, linked into the model (it needs the wavelengths for Doppler shifts)."""
        return self.grid.describe()

    @property
    def store(self) -> SpectraStore:
        return self.source.open()

    def prepare_data(self):
        try:
            _ = self.store  # opening checks it
        except StoreError:
            if self.synth is None:
                raise
            self._generate()

    def _generate(self, wait_s: float = 3600.0, poll_s: float = 1.0) -> None:
        """Make the cached synthetic store; if another process is making it (parallel sweep runs of one
        spec), wait for that one, or take over if it ends without finishing."""
        announced = False
        deadline = time.monotonic() + wait_s
        while True:
            try:
                _ = SpectraStore.open(self.store_path, storage_options=self.storage_options)
                return  # made by the other process
            except StoreError:
                pass
            try:
                assert self.synth is not None  # prepare_data synthesises only a store that was not given
                print(f"generating synthetic store {self.store_path} ({self.synth.n} spectra)", flush=True)
                synthesize(self.store_path, self.synth)
                return
            except StoreLockedError as e:
                if time.monotonic() > deadline:
                    raise
                if not announced:
                    print(f"waiting: {e}", flush=True)
                    announced = True
                time.sleep(poll_s)

    def setup(self, stage: str | None = None):
        if self.splits:
            return
        store = self.store
        if store.n == 0:
            raise StoreError(f"{self.store_path}: the store holds no spectrum: nothing to split or train on")
        self.splits = self.select(assign_splits(store.meta, *self.fractions, seed=self.split_seed))
        self._build()
        trainer = self.trainer
        log_dir = trainer.log_dir if trainer is not None else None  # a collective under DDP: every rank
        if trainer is not None and log_dir and trainer.is_global_zero:
            self._split_path = split_file(log_dir)
            self.save_split(self._split_path)
            selection = getattr(self, "selection", None)
            if selection and trainer.logger is not None:
                trainer.logger.log_hyperparams({"data_selection": selection})

    @property
    def has_test_split(self) -> bool:
        """Does the data hold test spectra (after ``setup``)? ``fit`` runs the test loop on them once trained."""
        return len(self.splits.get("test", [])) > 0

    def select(self, splits: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Hook for subclasses that filter the split rows (the default keeps them all)."""
        return splits

    def _build(self):
        labels = self.store.labels(self.labels)
        self.datasets = {
            name: StoreDataset(self.store, rows, labels, self.in_memory)
            for name, rows in self.splits.items()
            if len(rows)
        }

    # The split travels in checkpoints: a resumed run trains on exactly the same stars.
    def state_dict(self) -> dict:
        ids = self.store.meta.get("id", np.arange(self.store.n).astype(str))
        return {
            "split_ids": {k: [str(ids[i]) for i in v] for k, v in self.splits.items()},
            "split_seed": self.split_seed,
            "fractions": list(self.fractions),
        }

    def load_state_dict(self, state: dict) -> None:
        saved = state.get("split_ids")
        if not saved:
            return
        # a resumed run trains on the checkpoint's split: record that one, not the one setup() drew
        self.split_seed = state.get("split_seed", self.split_seed)
        self.fractions = tuple(state.get("fractions", self.fractions))
        ids = self.store.meta.get("id", np.arange(self.store.n).astype(str))
        pos = {str(v): i for i, v in enumerate(ids)}
        missing = [i for v in saved.values() for i in v if i not in pos]
        if missing:
            raise ConfigError(
                f"{self.store_path}: {len(missing)} spectra of the checkpoint's split are not in the "
                f"store (e.g. {missing[0]!r})"
            )
        self.splits = {k: np.array(sorted(pos[i] for i in v), dtype=np.int64) for k, v in saved.items()}
        self._build()
        if self._split_path is not None:
            self.save_split(self._split_path, restored=True)

    def save_split(self, path: Path, restored: bool = False):
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "store": self.store_path,
            "seed": self.split_seed,
            "fractions": self.fractions,
            "selection": getattr(self, "selection", {}),
            "restored_from_checkpoint": restored,
            **self.state_dict(),
        }
        write_atomic(path, json.dumps(payload))

    def world_size(self) -> int:
        return self.trainer.world_size if self.trainer is not None else 1

    def check_batches(self, n: int, drop_last: bool) -> None:
        """Fail with one line when the training split gives a rank no batch at all."""
        world = self.world_size()
        per_rank = -(-n // world)
        batches = per_rank // self.batch_size if drop_last else -(-per_rank // self.batch_size)
        if batches == 0:
            raise ConfigError(
                f"{self.store_path}: no training batch: the train split has {n} spectra ({per_rank} per rank over "
                f"{world} rank{'s' * (world > 1)}), fewer than --data.init_args.batch_size={self.batch_size}; lower "
                "the batch size, use fewer devices or a smaller val_fraction"
            )

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        if name not in self.datasets:
            raise StoreError(f"{self.store_path}: the {name} split is empty (check the split fractions)")
        dataset = self.datasets[name]
        drop_last = shuffle and len(dataset) > self.batch_size
        if shuffle:
            self.check_batches(len(dataset), drop_last)
        # the order is a function of (seed, epoch) alone, so a resumed run continues the same sequence
        sampler = EpochShuffle(dataset, self.split_seed) if shuffle else None
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self):
        return self._loader("train", shuffle=True)

    def val_dataloader(self):
        return self._loader("val", shuffle=False)

    def test_dataloader(self):
        return self._loader("test", shuffle=False)

    def predict_dataloader(self):
        return self._loader("val", shuffle=False)
