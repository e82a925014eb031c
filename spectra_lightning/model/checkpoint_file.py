"""A checkpoint file read as data: the one reader of the project's checkpoints.

:func:`read_checkpoint` refuses, in one line naming the file, one whose zip entries fail their CRC-32, that does
not unpickle as plain data (``weights_only``), whose tensors hold NaN or ±inf, or whose parts name a class that is
not an allowed subclass of the part's base (:mod:`spectra_lightning.model.parts`) — each checked before anything it
names is imported or called — and upgrades older formats' hyper-parameters (:mod:`.legacy`).
"""

from __future__ import annotations

import pickletools
import zipfile
from pathlib import Path
from typing import Any

import torch

from spectra_lightning.common.errors import ConfigError
from spectra_lightning.model.bases import PART_BASES
from spectra_lightning.model.legacy import upgrade_hparams
from spectra_lightning.model.parts import resolve

# Written into every checkpoint. 0: before the key existed (2026-11); 1: adds it; 2: the model's parts (net, loss,
# kl_schedule) replace its flat options (old ones are upgraded on load: spectra_lightning.model.legacy).
CHECKPOINT_FORMAT = 2


class CheckpointError(ConfigError):
    """A checkpoint that cannot be used: the message names the file and why."""


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
    today's format (:func:`spectra_lightning.model.legacy.upgrade_hparams`)."""
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


def check_format(checkpoint: dict) -> None:
    """Refuse, in one line, a checkpoint newer than this code; 0 -> 1 changed nothing stored, 1 -> 2 only the
    hyper-parameters (upgraded before the module is built: ``legacy.upgrade_hparams`` in
    ``checkpoints.load_model`` and ``fit --ckpt_path``)."""
    version = checkpoint.get("spectra_lightning_format", 0)
    if version > CHECKPOINT_FORMAT:
        raise ConfigError(
            f"checkpoint format {version} is newer than this spectra_lightning reads "
            f"({CHECKPOINT_FORMAT}): upgrade spectra_lightning"
        )
