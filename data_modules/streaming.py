"""Archive-scale streaming: whole chunks read in order, shuffled within a bounded buffer.

Each epoch the split's rows are grouped into *blocks* (the rows stored together: one chunk, or
one shard in a sharded store; ``SpectraStore.block_rows``), the blocks
are permuted with ``(seed, epoch)``, and the resulting row sequence is cut into
``world_size × num_workers`` equal pieces, one per (rank, worker). Each piece is read
block by block — contiguous slices, so every chunk is fetched and decoded once — through
a shuffle buffer of ``shuffle_buffer`` spectra, and batched inside the worker. Pieces are
padded to equal length with repeats flagged ``weight = 0`` (excluded from the loss and
the metrics), so every rank runs the same number of steps and every spectrum is seen
exactly once per epoch. Deterministic given (seed, epoch, world size, workers).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from spectra_lightning.common.errors import ConfigError
from spectra_lightning.data_modules.spectra import SpectraDataModule
from spectra_lightning.physics.doppler import DopplerShift
from spectra_lightning.store import SpectraStore, StoreSource
from spectra_lightning.store.batch import Batch

_OPS = {"==": operator.eq, "!=": operator.ne, ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_FILTER = re.compile(r"^\s*(\w+)\s*(==|!=|>=|<=|>|<)\s*(.+?)\s*$")


def apply_filters(meta: dict, rows: np.ndarray, filters: list[str]) -> np.ndarray:
    """Keep rows whose metadata satisfy every ``"<column> <op> <value>"`` (e.g. ``low_flux == 0``)."""
    keep = np.ones(len(rows), bool)
    for f in filters:
        m = _FILTER.match(f)
        if not m:
            raise ConfigError(f"filter {f!r}: expected '<column> <op> <value>' with op in {', '.join(_OPS)}")
        col, op, value = m.groups()
        if col not in meta:
            raise ConfigError(f"filter {f!r}: no metadata column {col!r} (have {', '.join(sorted(meta))})")
        data = meta[col][rows]
        if data.dtype.kind in "fiu":
            target: float | str
            try:
                target = float(value)
            except ValueError:
                raise ConfigError(f"filter {f!r}: {value!r} is not a number (column {col!r} is numeric)") from None
        else:
            target = value.strip("'\"")
        keep &= _OPS[op](data, target)
    return rows[keep]


def one_per_object(meta: dict, rows: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """The highest-SNR spectrum of each object (first one when SNR is unknown)."""
    snr = np.nan_to_num(meta["snr"][rows].astype(float), nan=-np.inf) if "snr" in meta else np.zeros(len(rows))
    order = np.lexsort((-snr, keys[rows]))
    _, first = np.unique(keys[rows][order], return_index=True)
    return np.sort(rows[order][first])


def balance_weights(values: np.ndarray, bins: int) -> np.ndarray:
    """Sampling probabilities ∝ 1 / (count in the value's bin): flat in the label; NaN gets the mean."""
    finite = np.isfinite(values)
    p = np.ones(len(values))
    if finite.sum() > 1:
        edges = np.linspace(values[finite].min(), values[finite].max(), bins + 1)
        idx = np.clip(np.digitize(values[finite], edges[1:-1]), 0, bins - 1)
        counts = np.bincount(idx, minlength=bins)
        p[finite] = 1.0 / counts[idx]
        p[~finite] = p[finite].mean()
    return p / p.sum()


class Augment:
    """Physics-consistent training augmentations applied to a batch in the worker.

    Args:
        doppler_kms: shift each spectrum by v ~ U(-a, a) km/s (λ -> λ(1+v/c), linear
            resampling; the ``rv`` label moves by v).
        rest_frame: the stored spectra are in their rest frame (e.g. MILES): the ``rv`` label is then
            the injected v itself, whether or not the store has an ``rv`` column.
        noise: add Gaussian noise of σ ~ U(0, noise) (relative to the unit median); the
            ``snr`` label becomes 1/√(1/snr² + σ²).
        mask_segments, mask_length: hide that many random segments of that many pixels
            (mask False: excluded from the loss).
    """

    def __init__(
        self,
        doppler_kms: float = 0.0,
        noise: float = 0.0,
        mask_segments: int = 0,
        mask_length: int = 256,
        rest_frame: bool = False,
    ):
        self.doppler_kms, self.noise, self.rest_frame = doppler_kms, noise, rest_frame
        self.mask_segments, self.mask_length = mask_segments, mask_length

    @property
    def active(self) -> bool:
        return bool(self.doppler_kms or self.noise or self.mask_segments)

    def __call__(
        self,
        flux: np.ndarray,
        labels: np.ndarray,
        label_names: list[str],
        wave: np.ndarray,
        rng: np.random.Generator,
        ivar: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``flux (B, L)`` float32 with NaN = masked, ``labels (B, K)`` and, when the store keeps them, the inverse
        variances ``ivar (B, L)`` -> augmented copies: a shift moves the variances with the flux, added noise
        adds its own."""
        flux, labels = flux.copy(), labels.copy()
        b = len(flux)
        var = None
        if ivar is not None:
            with np.errstate(divide="ignore"):
                var = np.where(ivar > 0, 1.0 / np.where(ivar > 0, ivar, 1), np.inf).astype(np.float32)
        if self.doppler_kms:
            v = rng.uniform(-self.doppler_kms, self.doppler_kms, b)
            with torch.no_grad():  # the decoder's Doppler shift, NaN (masked) beyond the edges
                shift = DopplerShift(wave, fill=float("nan"))
                flux = shift(torch.from_numpy(flux), torch.from_numpy(v)).numpy()
                if var is not None:
                    var = shift(torch.from_numpy(var), torch.from_numpy(v), variance=True).numpy()
            if "rv" in label_names:
                j = label_names.index("rv")
                labels[:, j] = v if self.rest_frame else labels[:, j] + v
        if self.noise:
            sigma = rng.uniform(0, self.noise, b).astype(np.float32)
            flux += rng.standard_normal(flux.shape).astype(np.float32) * sigma[:, None]
            if var is not None:
                var = var + (sigma**2)[:, None]
            if "snr" in label_names:
                j = label_names.index("snr")
                labels[:, j] = 1.0 / np.sqrt(1.0 / labels[:, j] ** 2 + sigma**2)
        for _ in range(self.mask_segments):
            start = rng.integers(0, flux.shape[1] - self.mask_length, b)
            for i in range(b):
                flux[i, start[i] : start[i] + self.mask_length] = np.nan
        if var is None:
            return flux, labels, None
        with np.errstate(divide="ignore", invalid="ignore"):  # inf variance -> 0; NaN (beyond the edges) stays
            return flux, labels, (1.0 / var).astype(np.float32)


def epoch_rows(
    rows: np.ndarray, block_rows: int, seed: int, epoch: int, shuffle: bool, probabilities: np.ndarray | None = None
) -> np.ndarray:
    """This epoch's row order: blocks of ``block_rows`` stored rows permuted (or resampled by ``probabilities``)."""
    rng = np.random.default_rng([seed, epoch])
    if probabilities is not None:
        rows = np.sort(rng.choice(rows, size=len(rows), replace=True, p=probabilities))
    if not shuffle:
        return rows
    block = rows // block_rows
    starts = np.flatnonzero(np.r_[True, block[1:] != block[:-1]])
    blocks = np.split(rows, starts[1:])
    return np.concatenate([blocks[i] for i in rng.permutation(len(blocks))]) if blocks else rows


def worker_share(order: np.ndarray, part: int, parts: int) -> tuple[np.ndarray, np.ndarray]:
    """Part ``part`` of ``parts`` equal pieces of ``order``, padded by wrapping; ``(rows, weight)``."""
    size = math.ceil(len(order) / parts) if len(order) else 0
    idx = np.arange(part * size, (part + 1) * size)
    weight = (idx < len(order)).astype(np.float32)
    return order[idx % max(len(order), 1)], weight


class BlockStream(IterableDataset):
    """Streaming-wire :class:`~spectra_lightning.store.batch.Batch` es from a store split, read block by block
    (a block: rows stored together, see the module docstring); ``flux (B, L)`` in the stored dtype with
    NaN = masked.

    ``epoch`` must be set before each epoch (:class:`StreamLoader` does it); rank and world size
    come from ``torch.distributed`` when initialised.
    """

    def __init__(
        self,
        source: StoreSource | str,
        rows: np.ndarray,
        labels: np.ndarray,
        label_names: list[str],
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        shuffle_buffer: int = 1024,
        augment: Augment | None = None,
        probabilities: np.ndarray | None = None,
    ):
        self.source = source if isinstance(source, StoreSource) else StoreSource(source)
        self.rows, self.labels, self.label_names = rows, labels, label_names
        self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
        self.shuffle_buffer = shuffle_buffer if shuffle else 0
        self.augment, self.probabilities = augment, probabilities
        self.epoch = 0
        self.num_workers = 1

    @staticmethod
    def world() -> tuple[int, int]:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def __len__(self) -> int:
        """Batches this rank yields per epoch (all its workers together)."""
        _, world = self.world()
        parts = world * self.num_workers
        per_piece = math.ceil(len(self.rows) / parts) if len(self.rows) else 0
        return self.num_workers * math.ceil(per_piece / self.batch_size)

    def store(self) -> SpectraStore:
        return self.source.open()

    def __iter__(self) -> Iterator[Batch]:
        rank, world = self.world()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        store = self.store()
        order = epoch_rows(self.rows, store.block_rows, self.seed, self.epoch, self.shuffle, self.probabilities)
        rows, weight = worker_share(order, rank * workers + worker, world * workers)
        # validation (no shuffle) draws the same augmentation every epoch: a fixed set to read the latent space on
        rng = np.random.default_rng([self.seed, self.epoch if self.shuffle else 0, rank, worker, 1])
        wave = store.grid.wavelength
        batch: list[tuple] = []
        for item in self._shuffled(self._items(store, rows, weight), rng):
            batch.append(item)
            if len(batch) == self.batch_size:
                yield self._collate(batch, wave, rng)
                batch = []
        if batch:
            yield self._collate(batch, wave, rng)

    def _shuffled(self, items: Iterator[tuple], rng: np.random.Generator) -> Iterator[tuple]:
        """``items`` through a buffer of ``shuffle_buffer``: each new one swaps with a random one held."""
        if not self.shuffle_buffer:
            yield from items
            return
        buffer: list[tuple] = []
        for item in items:
            buffer.append(item)
            if len(buffer) < self.shuffle_buffer:
                continue
            j = int(rng.integers(len(buffer)))
            buffer[j], buffer[-1] = buffer[-1], buffer[j]
            yield buffer.pop()
        for j in rng.permutation(len(buffer)) if buffer else []:
            yield buffer[j]

    def _collate(self, items: list[tuple], wave: np.ndarray, rng: np.random.Generator) -> Batch:
        """``(row, weight, flux (L,))`` items -> a streaming-wire :class:`Batch` (augmented in training)."""
        rows, weights, fluxes, ivars = zip(*items)
        r, w = np.asarray(rows), np.asarray(weights, np.float32)
        labels = self.labels[r]
        ivar = np.stack(ivars) if ivars[0] is not None else None
        if self.augment is not None and self.augment.active:
            flux, labels, ivar = self.augment(
                np.stack(fluxes).astype(np.float32), labels, self.label_names, wave, rng, ivar
            )
        else:
            flux = np.stack(fluxes)  # the stored dtype (float16): batch.finish_batch widens it on the device
        batch: Batch = {
            "flux": torch.from_numpy(flux),
            "index": torch.from_numpy(r.astype(np.int64)),
            "labels": torch.from_numpy(np.ascontiguousarray(labels, np.float32)),
            "weight": torch.from_numpy(w),
        }
        if ivar is not None:  # finish_batch zeroes it where the flux is masked (or it is NaN beyond an edge)
            batch["ivar"] = torch.from_numpy(np.ascontiguousarray(ivar, np.float32))
        return batch

    @staticmethod
    def _items(store: SpectraStore, rows: np.ndarray, weight: np.ndarray) -> Iterator[tuple]:
        """``(row, weight, flux (L,), ivar (L,) or None)`` in order, each run of consecutive rows within one block
        read as one contiguous slice (never more than a block in memory), checked (``SpectraStore.check_rows``)."""
        if not len(rows):
            return
        block = rows // store.block_rows
        breaks = np.flatnonzero((np.diff(rows) != 1) | (np.diff(block) != 0)) + 1
        for r, w in zip(np.split(rows, breaks), np.split(weight, breaks)):
            start, stop = int(r[0]), int(r[-1]) + 1
            ivar = store.read_ivar_block(start, stop) if store.ivar is not None else [None] * len(r)
            yield from zip(r, w, store.read_block(start, stop), ivar)


class StreamLoader(DataLoader):
    """A DataLoader over a :class:`BlockStream` that tells it the epoch before each pass."""

    def __init__(self, dataset: BlockStream, epoch_fn, **kwargs):
        dataset.num_workers = max(1, kwargs.get("num_workers", 0))
        super().__init__(dataset, batch_size=None, **kwargs)
        self.epoch_fn = epoch_fn

    def __iter__(self):
        self.dataset.epoch = self.epoch_fn()
        return super().__iter__()


class StreamingSpectraDataModule(SpectraDataModule):
    """Stream a store of any size to single- or multi-node DDP training.

    Args (besides :class:`SpectraDataModule`'s):
        shuffle_buffer: spectra held per worker for shuffling across blocks.
        prefetch_factor: batches prefetched per worker.
        filters: metadata selections, e.g. ``["low_flux == 0", "snr > 20"]``.
        one_per_object: keep the highest-SNR spectrum of each star.
        balance_by, balance_bins: sample training spectra flat in a label's bins
            (with replacement; then "exactly once per epoch" gives way to the weights).
        doppler_kms, noise, mask_segments, mask_length, rest_frame: training augmentations (:class:`Augment`).
        val_doppler_kms: shift the validation spectra too, by a velocity drawn once (the same every epoch),
            so that the latent space can be read against a known ``rv`` on a rest-frame library.

    It has no ``in_memory``: a stream reads its blocks as it goes (SpectraDataModule holds a split in memory).
    """

    def __init__(
        self,
        *args,
        shuffle_buffer: int = 1024,
        prefetch_factor: int = 2,
        filters: list[str] | None = None,
        one_per_object: bool = False,
        balance_by: str | None = None,
        balance_bins: int = 10,
        doppler_kms: float = 0.0,
        noise: float = 0.0,
        mask_segments: int = 0,
        mask_length: int = 256,
        rest_frame: bool = False,
        val_doppler_kms: float = 0.0,
        **kwargs,
    ):
        super().__init__(*args, in_memory=False, **kwargs)
        self.shuffle_buffer, self.prefetch_factor = shuffle_buffer, prefetch_factor
        self.filters, self.one_per_object = list(filters or []), one_per_object
        self.balance_by, self.balance_bins = balance_by, balance_bins
        self.augment = Augment(doppler_kms, noise, mask_segments, mask_length, rest_frame)
        self.val_augment = Augment(val_doppler_kms, rest_frame=rest_frame) if val_doppler_kms else None
        self.selection: dict = {}

    def select(self, splits: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from spectra_lightning.data_modules.split import split_keys

        meta = self.store.meta
        out = {}
        for name, rows in splits.items():
            before = len(rows)
            rows = apply_filters(meta, rows, self.filters)
            if self.one_per_object:
                rows = one_per_object(meta, rows, split_keys(meta))
            out[name] = rows
            self.selection[name] = {"before": int(before), "after": int(len(rows))}
        self.selection.update(
            filters=self.filters,
            one_per_object=self.one_per_object,
            balance_by=self.balance_by,
            balance_bins=self.balance_bins,
            augment=vars(self.augment),
        )
        return out

    def _build(self):
        pass  # streams are made per loader

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        rows = self.splits.get(name, np.array([], int))
        if not len(rows):
            raise ConfigError(f"{self.store_path}: the {name} split is empty (check the split fractions and filters)")
        probabilities = None
        if shuffle and self.balance_by:
            values = self.store.meta.get(self.balance_by)
            if values is None:
                raise ConfigError(f"balance_by: no metadata column {self.balance_by!r}")
            probabilities = balance_weights(values[rows].astype(float), self.balance_bins)
        dataset = BlockStream(
            self.source.fresh(),  # opened anew in this loader's workers
            rows,
            self.store.labels(self.labels),
            self.labels,
            self.batch_size,
            seed=self.split_seed,
            shuffle=shuffle,
            shuffle_buffer=self.shuffle_buffer,
            augment=self.augment if shuffle else self.val_augment,
            probabilities=probabilities,
        )
        kwargs = {"num_workers": self.num_workers, "pin_memory": self.pin_memory}
        if self.num_workers:
            kwargs["prefetch_factor"] = self.prefetch_factor
        return StreamLoader(dataset, lambda: self.trainer.current_epoch if self.trainer is not None else 0, **kwargs)
