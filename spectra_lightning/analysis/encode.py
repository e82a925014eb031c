"""``encode``: a trained checkpoint + a store -> latent codes of every spectrum (Zarr).

Codes layout: ``mu (N, D)`` float32, ``logvar (N, D)`` (VAE only), ``id (N,)``; attributes
name the checkpoint, the store, its grid and the model (latent size and a fingerprint of its
weights, so that tools can refuse codes made by another model).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import zarr

from spectra_lightning.common.progress import progress as progress_of
from spectra_lightning.model.checkpoints import check_grid, fingerprint, load_model, pick_device
from spectra_lightning.model.parts import add_allow_option, allowing
from spectra_lightning.store import SpectraStore, fill_masked


def encode(ckpt, store_path, output, batch_size: int = 64, device: str = "auto", progress: bool = True) -> Path:
    """Encode every spectrum of ``store_path``; writes ``output`` atomically-enough (built aside, renamed)."""
    dev = pick_device(device)
    model = load_model(ckpt, dev)
    store = SpectraStore.open(store_path)
    check_grid(model.hparams, store.grid, str(store_path))
    n, d = store.n, model.latent_dim
    out = Path(output)
    if out.exists():
        raise FileExistsError(f"{output}: already exists")
    tmp = out.with_name(f".{out.name}.tmp")
    group = zarr.open_group(str(tmp), mode="w")
    mu = group.create_array("mu", shape=(n, d), dtype="float32", chunks=(min(n, 65536) or 1, d))
    logvar = (
        group.create_array("logvar", shape=(n, d), dtype="float32", chunks=(min(n, 65536) or 1, d))
        if model.variational
        else None
    )
    ids = store.meta.get("id", np.arange(n).astype(str))
    group.create_array("id", shape=(n,), dtype=str, chunks=(min(n, 65536) or 1,))[:] = np.asarray(ids, dtype=str)
    with torch.no_grad():
        for start in progress_of(range(0, n, batch_size), desc="encode", unit="batch", enabled=progress):
            rows = np.arange(start, min(start + batch_size, n))
            flux = fill_masked(store.read(rows))[0]
            m, lv = model.encode(torch.as_tensor(flux, device=dev))
            mu[start : start + len(rows)] = m.float().cpu().numpy()
            if logvar is not None:
                logvar[start : start + len(rows)] = lv.float().cpu().numpy()
    group.attrs.update(
        {
            "format": "spectra_lightning.codes",  # a data format name, not a module path
            "checkpoint": str(ckpt),
            "store": str(store_path),
            "latent_dim": d,
            "variational": model.variational,
            "grid": store.grid.describe(),
            "model_fingerprint": fingerprint(model),
        }
    )
    tmp.rename(out)
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m spectra_lightning encode",
        description="Write the latent codes (μ, log σ²) of every spectrum in a store.",
    )
    p.add_argument("--ckpt", required=True, help="checkpoint of a trained model")
    p.add_argument("--store", required=True, help="store path or URL")
    p.add_argument("--output", required=True, help="codes store to create (CODES.zarr)")
    p.add_argument("--batch-size", type=int, default=64, help="spectra per forward pass (default %(default)s)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_allow_option(p)
    a = p.parse_args(argv)
    try:
        with allowing(a.allow_module):
            out = encode(a.ckpt, a.store, a.output, a.batch_size, a.device, progress=not a.quiet)
    except (OSError, ValueError) as e:
        print(f"encode: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote codes to {out}")
    return 0
