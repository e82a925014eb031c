"""Trained models from checkpoints (read by :mod:`.checkpoint_file`): loading onto a device, the grid check,
a weights fingerprint, and what a resume may change."""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from spectra_lightning.model.module import SpectrumAutoencoder
from spectra_lightning.physics.grid import SpectralGrid
from spectra_lightning.store import StoreError


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_model(ckpt: str | Path, device: torch.device) -> SpectrumAutoencoder:
    """The model in a checkpoint of any format this version reads (read as data), in eval mode, on ``device``."""
    return SpectrumAutoencoder.load_from_checkpoint(ckpt).to(device)


def check_grid(trained: Mapping[str, Any], grid: SpectralGrid, where: str) -> None:
    """A model trained (``trained``: its hyper-parameters, ``n_pixels`` and ``grid``) on another grid than ``grid``
    (a store's, the data's) cannot read it: one line naming ``where`` and both grids, not a size mismatch."""
    length, described = trained.get("n_pixels"), trained.get("grid")
    if (length is not None and length != grid.length) or (described is not None and described != grid.describe()):
        raise StoreError(
            f"{where}: the data's grid {grid.describe()} ({grid.length} px) is not the one the model was trained on "
            f"({described or f'{length} px'})"
        )


def fingerprint(model: torch.nn.Module) -> str:
    """A short hash of the weights: equal for the same trained model, different otherwise."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _canonical(spec: Any) -> Any:
    """A part spec with its class path as the class's own (an old path that still imports compares equal)."""
    if isinstance(spec, dict) and isinstance(spec.get("class_path"), str):
        module, _, name = spec["class_path"].rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
            return {**spec, "class_path": f"{cls.__module__}.{cls.__qualname__}"}
        except (ImportError, AttributeError, ValueError):
            return spec
    return spec


def _leaves(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def model_differences(given: dict, saved: dict, skip: tuple[str, ...] = ("n_pixels", "grid")) -> list[str]:
    """The model settings in which ``given`` (a config's ``model`` section) and ``saved`` (a checkpoint's
    hyper-parameters, already checked) differ, as ``"KEY: VALUE (checkpoint) vs VALUE (given)"``; a part or
    setting left unset (None) in ``given`` differs from nothing. Only parts the checkpoint holds are compared
    (the optimizer may change on a resume)."""
    out = []
    for key, value in saved.items():
        if key.startswith("_") or key in skip or given.get(key) is None:
            continue
        mine, theirs = _leaves(_canonical(given[key]), key), _leaves(_canonical(value), key)
        for leaf in sorted(set(mine) | set(theirs)):
            if leaf.rsplit(".", 1)[-1] in skip:
                continue
            a, b = theirs.get(leaf, "unset"), mine.get(leaf, "unset")
            if a != b:
                out.append(f"{leaf}: {a!r} (checkpoint) vs {b!r} (given)")
    return out


def completed(checkpoint: dict) -> tuple[int, int]:
    """``(epochs, steps)`` a Lightning checkpoint has completed (an epoch whose training was processed counts:
    a checkpoint saved at an epoch's end is written before Lightning marks it completed)."""
    try:
        progress = checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]
        epochs = max(int(progress["processed"]), int(progress["completed"]))
    except (KeyError, TypeError, ValueError):
        epochs = int(checkpoint.get("epoch", 0) or 0)
    return epochs, int(checkpoint.get("global_step", 0) or 0)
