"""Shared fixtures: no network, W&B offline into tmp, tiny synthetic stores."""

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _offline(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("env")
    saved = dict(os.environ)
    os.environ.update(
        {
            "WANDB_MODE": "offline",
            "WANDB_SILENT": "true",
            "WANDB_DIR": str(tmp),
            "WANDB_CACHE_DIR": str(tmp / "cache"),
            "WANDB_DATA_DIR": str(tmp / "data"),  # artifact staging
            "WANDB_CONFIG_DIR": str(tmp / "config"),
            "SPECTRA_LIGHTNING_CACHE": str(tmp / "synth-cache"),
        }
    )
    os.environ.pop("WANDB_API_KEY", None)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory):
    """160 noisy spectra on the 512-px test grid, 2 epochs per star."""
    from spectra_lightning.ingest.synth import SynthSpec, synthesize

    path = tmp_path_factory.mktemp("stores") / "tiny.zarr"
    synthesize(str(path), SynthSpec(n=160, seed=3, grid="tiny", spectra_per_star=2), progress=False)
    return path
