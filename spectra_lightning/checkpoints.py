"""Trained models from checkpoints: loading (safely), the device, grid checks and a weights fingerprint."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from .legacy import upgrade_hparams
from .module import SpectrumAutoencoder, check_format
from .store import SpectraStore, StoreError


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_model(ckpt: str | Path, device: torch.device) -> SpectrumAutoencoder:
    """The model in a checkpoint of any format this version reads (older hyper-parameters upgraded), in eval mode.
    Prefer it to ``SpectrumAutoencoder.load_from_checkpoint``, which reads today's format only."""
    if not Path(ckpt).is_file():
        raise FileNotFoundError(f"{ckpt}: no such checkpoint")
    try:
        # weights_only: a checkpoint is data; unpickling arbitrary objects would run a crafted file's code
        checkpoint = torch.load(str(ckpt), map_location=device, weights_only=True)
        check_format(checkpoint)
        hparams = upgrade_hparams(checkpoint.get("hyper_parameters") or {})
        model = SpectrumAutoencoder(**{k: v for k, v in hparams.items() if not k.startswith("_")})
        model.load_state_dict(checkpoint["state_dict"])
    except Exception as e:
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"{ckpt}: not a loadable spectra_lightning checkpoint (loaded with weights_only=True: "
            f"{type(e).__name__}: {reason})"
        ) from None
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
