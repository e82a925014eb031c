"""Weights & Biases logging that never needs the network unless an account is set up."""

from __future__ import annotations

import netrc
import os
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger


def wandb_credentials() -> bool:
    """True when an API key is configured (``WANDB_API_KEY`` or a netrc entry for the host)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


class AutoWandbLogger(WandbLogger):
    """``WandbLogger`` that goes offline by itself when no API key is configured.

    Offline runs land in ``<save_dir>/wandb/`` and can be uploaded later with
    ``wandb sync``. ``save_dir`` defaults to the run directory chosen by the CLI.

    Args:
        offline: force offline (True) or online (False); None decides from the credentials.
        kwargs: anything ``lightning.pytorch.loggers.WandbLogger`` takes.
    """

    def __init__(self, project: str = "spectra-lightning", save_dir: str = ".", offline: bool | None = None, **kwargs):
        if offline is None:
            offline = os.environ.get("WANDB_MODE") in ("offline", "dryrun") or not wandb_credentials()
        os.makedirs(save_dir, exist_ok=True)
        super().__init__(project=project, save_dir=save_dir, offline=offline, **kwargs)
        self.full_config: dict | None = None

    def log_config(self, config: dict) -> None:
        """Send the whole nested run config once; later hyper-parameter logs add only new keys."""
        self.full_config = config
        self.experiment.config.update(config, allow_val_change=True)

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        if self.full_config is not None:
            # model/datamodule hparams are already in the nested config: no flattened duplicates
            params = {
                k: v
                for k, v in dict(params).items()
                if k not in self.full_config.get("model", {})
                and k not in self.full_config.get("data", {}).get("init_args", {})
            }
            if not params:
                return
        super().log_hyperparams(params, *args, **kwargs)
