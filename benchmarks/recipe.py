"""The model and optimizer of a recipe (``experiments/*.yaml``, overlays merged as ``--config A --config B``), for
benchmarks that time the real thing rather than a copy of its settings."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from spectra_lightning.model.module import SpectrumAutoencoder
from spectra_lightning.model.parts import build
from spectra_lightning.physics.grid import GRIDS

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def merged(*names: str) -> dict:
    """The recipes' YAML merged key by key, later files over earlier ones (a part's class_path and init_args
    replace the earlier part's when the class changes, as jsonargparse does)."""

    def merge(a: dict, b: dict) -> dict:
        out = dict(a)
        for k, v in b.items():
            same_class = not isinstance(v, dict) or v.get("class_path") in (None, (a.get(k) or {}).get("class_path"))
            out[k] = merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) and same_class else v
        return out

    cfg: dict = {}
    for name in names:
        cfg = merge(cfg, yaml.safe_load((EXPERIMENTS / name).read_text()))
    return cfg


def recipe_model(
    *names: str, seed: int = 0, cls: type[SpectrumAutoencoder] = SpectrumAutoencoder
) -> tuple[SpectrumAutoencoder, torch.optim.Optimizer, dict]:
    """The recipes' module (``cls``: a subclass to time, same parts; on their synthetic grid), its optimizer, and
    the merged config."""
    cfg = merged(*names)
    section = dict(cfg["model"])
    optimizer = section.pop("optimizer", None) or {"class_path": "torch.optim.Adam", "init_args": {"lr": 1e-3}}
    grid = GRIDS[cfg["data"]["init_args"]["synth"]["grid"]]
    torch.manual_seed(seed)
    model = cls(**section, n_pixels=grid.length, grid=grid.describe())
    return model, build(optimizer, "optimizer", model.parameters()), cfg
