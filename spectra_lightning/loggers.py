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
