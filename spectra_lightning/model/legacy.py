"""Checkpoints of earlier formats, read as today's: hyper-parameters of format 0 and 1 (the module's flat options,
before 0.3) become the parts they describe (``net``, ``loss``, ``kl_schedule``). The weights are unchanged.

How an old config maps is in CHANGELOG.md (0.3.0); :func:`upgrade_hparams` is that table as code.
"""

from __future__ import annotations

from typing import Any

from spectra_lightning.common.errors import ConfigError
from spectra_lightning.common.moved import current

NETS = "spectra_lightning.model.nets.ConvAutoencoder"
LOSSES = {
    "l1": "spectra_lightning.model.losses.AbsoluteError",
    "gaussian": "spectra_lightning.model.losses.SquaredError",
}
SCHEDULES = "spectra_lightning.model.kl_schedules"
# what format 0/1 defaulted to when a key is absent
OLD_DEFAULTS: dict[str, Any] = {
    "latent_dim": 32,
    "depth": 15,
    "kl_weight": 3.0,
    "kl_warmup_start": 0,
    "kl_warmup_steps": 0.3,
    "normalisation": "sum",
    "reconstruction": "l1",
    "noise_scale": 0.02,
    "kl_capacity": 0.0,
    "kl_capacity_steps": 0.8,
    "kl_capacity_weight": 0.0,
    "kl_capacity_until": 0.0,
    "doppler_node": None,
    "doppler_scale": 30.0,
    "warp_knots": 0,
    "warp_init": 0.05,
}
FLAT_KEYS = set(OLD_DEFAULTS) | {"lr", "loss_blur_px", "loss_blur_steps", "coord_channels", "output_level"}


def _unit(times: dict[str, float]) -> tuple[str, dict[str, float]]:
    """Format 0/1 read a time below 1 as a fraction of the run and one of 1 or more as steps, each on its own;
    a schedule now has one unit. 0 reads the same in both."""
    kinds = {"fraction" if 0 < t < 1 else "steps" for t in times.values() if t != 0}
    if len(kinds) > 1:
        raise ConfigError(
            "this checkpoint's KL schedule mixes fractions and steps ("
            + ", ".join(f"{k}={v}" for k, v in times.items())
            + "): give --model.kl_schedule explicitly"
        )
    return (kinds.pop() if kinds else "fraction"), times


def model_settings(model: dict[str, Any]) -> dict[str, Any]:
    """The settings result tables record, from a run's ``config.yaml`` ``model`` section of any version:
    ``latent_dim``, ``depth``, ``kl_weight`` (the objective's λ), ``reconstruction`` (``l1`` / ``gaussian`` /
    the loss class's name), ``doppler_node``, ``variational``."""
    parts = upgrade_hparams(model)
    net = (parts.get("net") or {}).get("init_args") or {}
    loss = str((parts.get("loss") or {}).get("class_path", "AbsoluteError")).rsplit(".", 1)[-1]
    return {
        "latent_dim": net.get("latent_dim"),
        "depth": net.get("depth"),
        "kl_weight": ((parts.get("kl_schedule") or {}).get("init_args") or {}).get("weight"),
        "reconstruction": {"AbsoluteError": "l1", "SquaredError": "gaussian"}.get(loss, loss),
        "doppler_node": net.get("doppler_node"),
        "variational": parts.get("variational", True),
    }


def upgrade_hparams(hparams: dict[str, Any]) -> dict[str, Any]:
    """Today's hyper-parameters from a checkpoint's of any format: format 0/1's flat options become parts, and a
    part's class path from before the package was in wings (0.2: ``spectra_lightning.nets.…``) its current one."""
    return _current_paths(_parts_of_flat_options(hparams))


def _current_paths(hparams: dict[str, Any]) -> dict[str, Any]:
    out = dict(hparams)
    for key, spec in hparams.items():
        if isinstance(spec, dict) and isinstance(spec.get("class_path"), str):
            out[key] = {**spec, "class_path": current(spec["class_path"])}
    return out


def _parts_of_flat_options(hparams: dict[str, Any]) -> dict[str, Any]:
    if not FLAT_KEYS & set(hparams):
        return dict(hparams)
    h = {**OLD_DEFAULTS, **hparams}
    if h.get("coord_channels"):
        raise ConfigError(
            "this checkpoint's decoder has CoordConv channels (coord_channels, removed in 0.3: "
            "docs/results/history.md); read it with spectra_lightning 0.2"
        )
    out = {k: v for k, v in hparams.items() if k not in FLAT_KEYS}
    net = h.get("net")
    if not isinstance(net, dict):
        net = {
            "class_path": NETS,
            "init_args": {
                k: h[k] for k in ("latent_dim", "depth", "doppler_node", "doppler_scale", "warp_knots", "warp_init")
            },
        }
    else:  # an injected net (format 1): its init args may still name the removed decoder options
        args = dict(net.get("init_args") or {})
        if args.pop("coord_channels", False):
            raise ConfigError("this checkpoint's decoder has CoordConv channels (removed in 0.3)")
        args.pop("output_level", None)  # an initialisation only: the weights say the rest
        net = {**net, "init_args": args}
    out["net"] = net
    normalisation = {"paper": "mean"}.get(h["normalisation"], h["normalisation"])
    loss_args: dict[str, Any] = {"normalisation": normalisation}
    if h["reconstruction"] == "gaussian":
        loss_args = {"noise_scale": h["noise_scale"], **loss_args}
    out["loss"] = {"class_path": LOSSES[h["reconstruction"]], "init_args": loss_args}
    if h["kl_capacity"]:
        unit, t = _unit({"grow": h["kl_capacity_steps"], "until": h["kl_capacity_until"]})
        if h["kl_warmup_steps"] or h["kl_warmup_start"]:
            raise ConfigError("this checkpoint combines a KL warm-up with capacity annealing: give --model.kl_schedule")
        out["kl_schedule"] = {
            "class_path": f"{SCHEDULES}.CapacityAnnealing",
            "init_args": {
                "weight": h["kl_weight"],
                "capacity": h["kl_capacity"],
                "grow": t["grow"],
                "capacity_weight": h["kl_capacity_weight"] or h["kl_weight"],
                "until": t["until"] or None,
                "unit": unit,
            },
        }
    else:
        unit, t = _unit({"start": h["kl_warmup_start"], "length": h["kl_warmup_steps"]})
        out["kl_schedule"] = {
            "class_path": f"{SCHEDULES}.LinearWarmup",
            "init_args": {"weight": h["kl_weight"], "start": t["start"], "length": t["length"], "unit": unit},
        }
    return out
