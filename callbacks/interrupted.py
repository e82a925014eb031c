"""A run stopped from outside (SIGTERM from SLURM or Kubernetes, Ctrl-C) leaves a current ``last.ckpt``.

Lightning stops the loop on SIGTERM but saves nothing; the CLI then exits non-zero (143 for SIGTERM) so that a
workflow does not take the run as finished, and ``fit --ckpt_path RUN/checkpoints/last.ckpt`` continues it.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

from spectra_lightning.common.files import replacing
from spectra_lightning.common.run_layout import last_checkpoint


class SaveOnInterrupt(L.Callback):
    """On SIGTERM or Ctrl-C during ``fit``, write ``<run dir>/checkpoints/last.ckpt`` (whole or not at all)."""

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, (SIGTERMException, KeyboardInterrupt)) or trainer.global_step == 0:
            return
        path = last_checkpoint(trainer.default_root_dir)
        with replacing(path) as tmp:
            trainer.save_checkpoint(tmp)
