"""Shared fixtures: no network, W&B offline into tmp, tiny synthetic stores."""

import os

import pytest

SLOW_TIMEOUT_S = 1800  # a claims test fits a recipe for ~8 minutes on 2 cores; the default (pyproject) is 300 s


def pytest_collection_modifyitems(config, items):
    """Tests marked slow get a longer timeout than the default suite's, unless they name their own."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))


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
