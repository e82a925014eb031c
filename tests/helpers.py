"""Helpers shared by test modules (fixtures stay in conftest.py): paths, the real-file skip, one tiny fit config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real"
TESTS = Path(__file__).resolve().parent


def run_cli(args: list[str], cwd, ok: bool = True) -> subprocess.CompletedProcess:
    """``python -m spectra_lightning ARGS`` in a fresh process, as from a shell (DDP runs need one); the tests
    folder is importable there (``stream_probe``)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    env.pop("SPECTRA_LIGHTNING_RUN_DIR", None)
    env.pop("WANDB_SERVICE", None)  # each command its own W&B service, as from a shell
    r = subprocess.run(
        [sys.executable, "-m", "spectra_lightning", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if ok:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


def real_file(rel: str) -> Path:
    path = REAL / rel
    if not path.exists():
        pytest.skip(f"real spectra not available: {path} (needs ../shared beside the repo)")
    return path


def tiny_config(tmp_path, store, data: dict | None = None, **trainer) -> Path:
    """A YAML config for a seconds-long CPU fit of a 4-node VAE on ``store``; ``data`` (init args) and
    ``trainer`` keys override."""
    cfg = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "default_root_dir": str(tmp_path / "run"),
            **trainer,
        },
        "model": {"latent_dim": 4, "depth": 5, "kl_weight": 0.1, "kl_warmup_steps": 0},
        "data": {
            "class_path": "spectra_lightning.data_modules.SpectraDataModule",
            "init_args": {"store": str(store), "batch_size": 16, "val_fraction": 0.25, **(data or {})},
        },
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
