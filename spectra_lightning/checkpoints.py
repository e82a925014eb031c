"""Trained models from checkpoints: the one checkpoint reader, loading, the device, grid checks and a weights
fingerprint.

A checkpoint is data. :func:`read_checkpoint` refuses, in one line naming the file, one whose zip entries fail
their CRC-32, that does not unpickle as plain data (``weights_only``), whose tensors hold NaN or ±inf, or whose
parts name a class that is not an allowed subclass of the part's base (:mod:`spectra_lightning.parts`) — each
checked before anything it names is imported or called.
"""

from __future__ import annotations

import hashlib
import importlib
import pickletools
import zipfile
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError
from .legacy import upgrade_hparams
from .module import PART_BASES, SpectrumAutoencoder, check_format
from .parts import resolve
from .store import SpectraStore, StoreError


class CheckpointError(ConfigError):
    """A checkpoint that cannot be used: the message names the file and why."""


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _storage_names(archive: zipfile.ZipFile) -> dict[str, str]:
    """``{zip entry: tensor name}`` from the checkpoint's pickle, read as opcodes (nothing is unpickled): in
    torch's format a tensor's name (its state-dict key) is the string just before its ``"storage"`` record,
    whose key names the entry ``<archive>/data/<key>``."""
    pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
    if not pickles:
        return {}
    root = pickles[0].rsplit("/", 1)[0]
    strings: list[str] = []
    memo: dict[Any, Any] = {}
    last: Any = None
    try:
        for op, arg, _ in pickletools.genops(archive.read(pickles[0])):
            if op.name in ("BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE"):
                last = str(arg)
                strings.append(last)
            elif op.name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[arg] = last
            elif op.name == "MEMOIZE":
                memo[len(memo)] = last
            elif op.name in ("BINGET", "LONG_BINGET", "GET"):
                last = memo.get(arg)
                if isinstance(last, str):
                    strings.append(last)
            else:
                last = None
    except Exception:  # a damaged pickle: the entries go unnamed
        return {}
    names: dict[str, str] = {}
    for i, s in enumerate(strings[1:-1], start=1):
        if s == "storage" and strings[i - 1] != "storage":
            names.setdefault(f"{root}/data/{strings[i + 1]}", strings[i - 1])
    return names


def check_archive(path: Path) -> None:
    """Every zip entry of a checkpoint against its CRC-32 (torch reads entries without checking them); a file
    that is no zip archive is left to ``torch.load`` (torch's legacy format, or not a checkpoint at all)."""
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            if bad is not None:
                tensor = _storage_names(archive).get(bad)
                what = f"tensor {tensor!r} (entry {bad})" if tensor else f"entry {bad}"
                raise CheckpointError(f"{path}: damaged checkpoint: {what} fails its CRC-32 check")
    except zipfile.BadZipFile as e:
        raise CheckpointError(f"{path}: not a checkpoint archive ({e})") from None
    except (OSError, EOFError, zipfile.LargeZipFile) as e:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({type(e).__name__}: {e})") from None


def _tensors(value: Any, name: str):
    """``(name, tensor)`` for every tensor nested in dicts, lists and tuples."""
    if isinstance(value, torch.Tensor):
        yield name, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _tensors(v, f"{name}.{k}" if name else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _tensors(v, f"{name}[{i}]")


def check_finite(checkpoint: dict, path: Path) -> None:
    """Refuse a checkpoint whose weights or optimizer state hold NaN or ±inf (a model trained into NaN would encode
    every spectrum as NaN)."""
    for name, tensor in _tensors({k: checkpoint.get(k) for k in ("state_dict", "optimizer_states")}, ""):
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(f"{path}: tensor {name!r} holds {bad} non-finite value(s) (NaN or inf)")


def check_parts(hparams: dict, path: Path | str) -> None:
    """Each part spec of a checkpoint's hyper-parameters names an allowed subclass of its option's base (nothing
    is called)."""
    for key, base in PART_BASES.items():
        spec = hparams.get(key)
        if spec is not None:
            try:
                resolve(spec, f"--model.{key}", base)
            except ConfigError as e:
                raise CheckpointError(f"{path}: {e}") from None


def read_checkpoint(path: str | Path) -> dict:
    """A checkpoint's contents, checked (see the module's docstring), with its hyper-parameters upgraded to
    today's format (:func:`spectra_lightning.legacy.upgrade_hparams`)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    check_archive(path)
    try:
        # weights_only: a checkpoint is data; unpickling arbitrary objects would run a crafted file's code
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path}: not a loadable spectra_lightning checkpoint (loaded with weights_only=True: "
            f"{type(e).__name__}: {reason})"
        ) from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict)")
    try:
        check_format(checkpoint)
        hparams = upgrade_hparams(dict(checkpoint.get("hyper_parameters") or {}))
    except ConfigError as e:
        raise CheckpointError(f"{path}: {e}") from None
    check_parts(hparams, path)
    check_finite(checkpoint, path)
    checkpoint["hyper_parameters"] = hparams
    return checkpoint


def load_model(ckpt: str | Path, device: torch.device) -> SpectrumAutoencoder:
    """The model in a checkpoint of any format this version reads (:func:`read_checkpoint`), in eval mode."""
    checkpoint = read_checkpoint(ckpt)
    # the optimizer's and scheduler's specs are checked but never kept by the module, nor needed to encode
    hparams = {
        k: v
        for k, v in checkpoint["hyper_parameters"].items()
        if not k.startswith("_") and k not in ("optimizer", "scheduler")
    }
    try:
        model = SpectrumAutoencoder(**hparams)
        model.load_state_dict(checkpoint["state_dict"])
    except (ConfigError, TypeError, RuntimeError, KeyError) as e:
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{ckpt}: not a loadable spectra_lightning checkpoint ({reason})") from None
    return model.eval().to(device)


def check_grid(model: SpectrumAutoencoder, store: SpectraStore, store_path) -> None:
    """A store on another grid than the model was trained on is refused (one line)."""
    trained = model.hparams.get("grid")
    if store.grid.length != model.n_pixels or (trained is not None and trained != store.grid.describe()):
        raise StoreError(
            f"{store_path}: the store's grid {store.grid.describe()} is not the one the model was "
            f"trained on ({trained or f'{model.n_pixels} px'})"
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
