"""Star-level train/val/test assignment: no object ever lands in two sets.

Each object name (or spectrum id when the object is unknown) is hashed with the seed
to a number in [0, 1); the fractions cut that interval. The assignment of a star
never depends on which other spectra are in the store, so it is stable when a store
grows and identical on every rank without communication.
"""

from __future__ import annotations

import hashlib

import numpy as np

from spectra_lightning.common.errors import ConfigError

SPLITS = ("train", "val", "test")


def unit_hash(keys: np.ndarray, seed: int) -> np.ndarray:
    """``(N,)`` float64 in [0, 1), a deterministic function of (seed, key)."""
    out = np.empty(len(keys))
    cache: dict[str, float] = {}
    for i, key in enumerate(keys):
        key = str(key)
        if key not in cache:
            digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
            cache[key] = int.from_bytes(digest, "little") / 2**64
        out[i] = cache[key]
    return out


def split_keys(meta: dict[str, np.ndarray]) -> np.ndarray:
    """The grouping key per spectrum: its object name, else its id, else its row."""
    n = len(next(iter(meta.values())))
    ids = meta.get("id", np.arange(n).astype(str))
    obj = meta.get("object")
    if obj is None:
        return np.asarray(ids, dtype=str)
    obj = np.asarray(obj, dtype=str)
    return np.where(np.char.strip(obj) == "", np.asarray(ids, dtype=str), obj)


def assign_splits(
    meta: dict[str, np.ndarray], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """``{"train"|"val"|"test": sorted row indices}`` with whole stars in one set each."""
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise ConfigError(f"bad split fractions val={val_fraction}, test={test_fraction}")
    u = unit_hash(split_keys(meta), seed)
    code = np.where(u < val_fraction, 1, np.where(u < val_fraction + test_fraction, 2, 0))
    return {name: np.flatnonzero(code == k) for k, name in enumerate(SPLITS)}
