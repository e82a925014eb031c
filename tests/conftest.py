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
    from spectra_lightning.synth import SynthSpec, synthesize

    path = tmp_path_factory.mktemp("stores") / "tiny.zarr"
    synthesize(str(path), SynthSpec(n=160, seed=3, grid="tiny", spectra_per_star=2), progress=False)
    return path


@pytest.hookimpl(trylast=True)  # after -m/-k have deselected
def pytest_collection_modifyitems(session, config, items):
    """Start the mypy gate now when its test will run (test_gates.py waits for it): it overlaps the suite."""
    from test_gates import EARLY, EARLY_GATE, start_gate

    if any(item.nodeid.endswith(f"test_gate_is_clean[{EARLY}]") for item in items):
        config.stash[EARLY_GATE] = start_gate(EARLY)


def pytest_unconfigure(config):
    from test_gates import EARLY_GATE

    proc = config.stash.get(EARLY_GATE, None)
    if proc is not None and proc.poll() is None:  # the run stopped before the gate's test
        proc.kill()
        proc.wait()
