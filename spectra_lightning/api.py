"""The Python front door (docs/api.md)::

    import spectra_lightning as sl

    model = sl.load("runs/quickstart/checkpoints/last.ckpt")  # a run's checkpoint, an exported file, or a URL
    codes = model.encode(wave, flux)                           # wave (M,) Å, flux (M,) or (N, M), any sampling
    codes.mu, codes.sigma, codes.informative                   # (N, D), (N, D), the nodes that carry something
    spectra = model.decode(codes.mu)                           # (N, L) on model.grid
    store = sl.SpectraStore.from_arrays(wave, flux, labels={"teff": teff})

Spectra go through exactly what ``ingest`` does to a file (``ingest.placement``: the same checks, resampling
onto the model's grid, median normalisation and the store's float16 rounding), so ``encode`` gives the codes
that ``ingest`` + the ``encode`` command give for the same spectrum. Loading follows the checkpoint rules: a
file is read as data, nothing it names is imported unless it is ours or allowed (``allow_modules``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spectra_lightning.analysis.export import CARD_KEY, sha256_of
from spectra_lightning.common.files import cache_dir, replacing
from spectra_lightning.common.run_layout import report_file, run_of
from spectra_lightning.ingest.arrays import grid_for, place_all, spectra_of, write_store
from spectra_lightning.ingest.placement import Placement
from spectra_lightning.model.checkpoint_file import CheckpointError, read_checkpoint
from spectra_lightning.model.checkpoints import pick_device
from spectra_lightning.model.module import SpectrumAutoencoder
from spectra_lightning.model.parts import allowing
from spectra_lightning.physics.grid import SpectralGrid
from spectra_lightning.store import SpectraStore as _Store
from spectra_lightning.store import fill_masked

__all__ = ["Codes", "Model", "SpectraStore", "load"]


@dataclass
class Codes:
    """What :meth:`Model.encode` returns, for N spectra and D latent nodes.

    Attributes:
        mu: ``(N, D)`` float32, the latent means (the code).
        sigma: ``(N, D)`` float32 posterior standard deviations (a VAE), or None (a deterministic autoencoder).
        informative: the nodes the model's run found informative (MAD and KL above their thresholds), or None
            when nothing says (a checkpoint outside its run, with no card).
        flux: ``(N, L)`` float32, the spectra as the network saw them: on the grid, normalised, masked pixels 0.
        mask: ``(N, L)`` bool, True where a pixel was measured.
    """

    mu: np.ndarray
    sigma: np.ndarray | None
    informative: list[int] | None
    flux: np.ndarray
    mask: np.ndarray


class Model:
    """A trained autoencoder ready to encode and decode spectra (build it with :func:`load`).

    Attributes:
        grid: the :class:`~spectra_lightning.physics.grid.SpectralGrid` it was trained on (``grid.wavelength``
            ``(L,)``: where decoded pixels lie).
        latent_dim: D, its number of latent nodes.
        informative: the nodes its run found informative, or None.
        card: the model card (an exported file's; None for a run's checkpoint).
        module: the underlying LightningModule (``torch.nn.Module``), on :attr:`device`.
    """

    dtype = "float16"  # the rounding a stored row gets (ingest's and synth's default): training saw these values

    def __init__(self, module: SpectrumAutoencoder, card: dict | None = None, informative: list[int] | None = None):
        self.module = module.eval()
        self.card = card
        self.informative = informative
        grid = module.hparams.get("grid")
        if grid is None:
            raise CheckpointError("the checkpoint names no grid (made before 0.2): encode it with the CLI instead")
        self.grid = SpectralGrid(**grid)
        self.latent_dim = int(module.latent_dim)

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def place(
        self, wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray | None = None, medium: str = "air"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Spectra on the model's grid as training saw them: ``flux (N, L)`` float32 (masked pixels 0) and
        ``mask (N, L)``; arguments as :meth:`encode`'s."""
        spectra = spectra_of(wave, flux, ivar, medium)
        rows, _ = place_all(spectra, Placement(self.grid, dtype=self.dtype))
        flux_on_grid, mask = fill_masked(rows)
        return flux_on_grid.astype(np.float32), mask

    def encode(
        self,
        wave: np.ndarray,
        flux: np.ndarray,
        ivar: np.ndarray | None = None,
        medium: str = "air",
        batch_size: int = 256,
    ) -> Codes:
        """The latent code of spectra given on any wavelength sampling.

        Args:
            wave: ``(M,)`` Å shared by every spectrum, or ``(N, M)`` one row each.
            flux: ``(M,)`` one spectrum or ``(N, M)``, any units (each is divided by its median on the grid).
            ivar: inverse variance like ``flux``, or None; pixels with ivar ≤ 0 are masked (as ``ingest`` does).
            medium: ``air`` or ``vacuum``: the wavelengths' (converted to the grid's).
            batch_size: spectra per forward pass.

        Returns:
            :class:`Codes`: ``mu (N, D)``, ``sigma (N, D)`` or None, the informative nodes, and the placed
            ``flux``/``mask (N, L)``. A spectrum that cannot be placed (outside the grid, too few usable pixels)
            is a one-line ``ValueError`` naming it.
        """
        placed, mask = self.place(wave, flux, ivar, medium)
        mus, sigmas = [], []
        with torch.no_grad():
            for start in range(0, len(placed), batch_size):
                mu, logvar = self.module.encode(torch.from_numpy(placed[start : start + batch_size]).to(self.device))
                mus.append(mu.float().cpu().numpy())
                sigmas.append(torch.exp(0.5 * logvar).float().cpu().numpy())
        sigma = np.concatenate(sigmas) if self.module.variational else None
        return Codes(np.concatenate(mus), sigma, self.informative, placed, mask)

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Spectra ``(N, L)`` float32 on :attr:`grid` from codes ``z (N, D)`` (or one code ``(D,)``: ``(L,)``)."""
        z = np.asarray(z, np.float32)
        one = z.ndim == 1
        with torch.no_grad():
            out = self.module.decode(torch.from_numpy(np.atleast_2d(z)).to(self.device)).float().cpu().numpy()
        return out[0] if one else out

    def __repr__(self) -> str:
        return (
            f"Model({self.latent_dim} nodes, informative {self.informative}, grid {self.grid.wave_min:g}–"
            f"{self.grid.wave_max:g} Å, {self.grid.length} px, on {self.device})"
        )


def _download(url: str, target: Path, storage_options: dict | None) -> None:
    """``url`` into ``target``, whole or not at all (http/https by the standard library, other schemes by fsspec)."""
    with replacing(target) as tmp:
        if url.startswith(("http://", "https://")):
            with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
        else:
            import fsspec

            with fsspec.open(url, "rb", **(storage_options or {})) as remote, open(tmp, "wb") as out:
                shutil.copyfileobj(remote, out, 1 << 20)


def fetch(source: str | os.PathLike, sha256: str | None = None, storage_options: dict | None = None) -> Path:
    """A local path for ``source``: itself when it is a path, else its download in the cache
    (``$SPECTRA_LIGHTNING_CACHE/models``, reused on the next call); with ``sha256``, checked (a mismatched download
    is deleted, a mismatched local file refused)."""
    text = str(source)
    if "://" not in text or text.startswith("file://"):
        path = Path(text.removeprefix("file://"))
        if sha256 and sha256_of(path) != sha256.lower():
            raise CheckpointError(f"{path}: its SHA-256 is {sha256_of(path)}, not the expected {sha256}")
        return path
    name = Path(text.split("?", 1)[0]).name or "model.ckpt"
    key = sha256.lower() if sha256 else hashlib.sha256(text.encode()).hexdigest()[:16]
    target = cache_dir() / "models" / f"{key}-{name}"
    if not target.exists():
        try:
            _download(text, target, storage_options)
        except Exception as e:  # the transport's own words, on one line, naming the URL
            raise CheckpointError(f"{text}: cannot download ({type(e).__name__}: {' '.join(str(e).split())})") from None
    if sha256 and (got := sha256_of(target)) != sha256.lower():
        target.unlink(missing_ok=True)
        raise CheckpointError(f"{text}: the download's SHA-256 is {got}, not the expected {sha256} (deleted)")
    return target


def _informative_of(path: Path, card: dict | None) -> list[int] | None:
    if card and card.get("informative") is not None:
        return [int(i) for i in card["informative"]]
    run = run_of(path)
    report = report_file(run) if run is not None else None
    if report is not None and report.exists():
        import json

        return [int(i) for i in json.loads(report.read_text())["mad"]["informative"]]
    return None


def load(
    source: str | os.PathLike,
    sha256: str | None = None,
    device: str = "cpu",
    allow_modules: tuple[str, ...] = (),
    storage_options: dict | None = None,
) -> Model:
    """A trained model from a run's checkpoint, an exported model file (``export``), or a URL of either
    (``s3://``, ``https://``, any fsspec scheme; downloaded once into the cache).

    Args:
        source: path or URL.
        sha256: the file's expected SHA-256 (a model card gives it): checked before anything is read.
        device: ``cpu``, ``cuda``, ``cuda:1`` or ``auto``.
        allow_modules: modules, besides ours, whose classes the checkpoint may name (a custom network).
        storage_options: for fsspec URLs (credentials, endpoint).
    """
    path = fetch(source, sha256, storage_options)
    with allowing(tuple(allow_modules)):
        checkpoint = read_checkpoint(path)
        module = SpectrumAutoencoder.from_checkpoint(checkpoint, path, pick_device(device))
    card = checkpoint.get(CARD_KEY)
    return Model(module, card, _informative_of(path, card))


class SpectraStore(_Store):
    """:class:`spectra_lightning.store.SpectraStore` with a constructor for spectra already in memory."""

    @classmethod
    def from_arrays(
        cls,
        wave: np.ndarray,
        flux: np.ndarray,
        ivar: np.ndarray | None = None,
        labels: dict[str, Any] | None = None,
        grid: SpectralGrid | str | None = None,
        path: str | os.PathLike | None = None,
        medium: str = "air",
        ids: list[str] | None = None,
    ) -> _Store:
        """A store of ``flux (N, M)`` (or one ``(M,)``) on ``wave (M,)`` or ``(N, M)`` Å, placed exactly as
        ``ingest`` places files, with ``ivar`` like ``flux`` and ``labels {name: (N,)}``.

        Args:
            grid: a name (``harps``, ``sdss`` …), an explicit grid, or None: the spectra's own range and median
                step (logarithmic when their log step is constant).
            path: where to write it (a folder, or an fsspec URL); None: in memory (``memory://``).
            medium: ``air`` or ``vacuum``, the wavelengths'.
            ids: one name per spectrum (default ``spectrum0`` …).
        """
        spectra = spectra_of(wave, flux, ivar, medium, ids, labels)
        first_wave = np.asarray(wave)[0] if np.ndim(wave) == 2 else np.asarray(wave)
        placed_on = SpectralGrid.parse(grid) if grid is not None else grid_for(first_wave)
        target = str(path) if path is not None else f"memory://spectra_lightning/{uuid.uuid4().hex}.zarr"
        return write_store(target, spectra, placed_on)
