"""A callback for tests: records which spectra each rank trained on, per epoch (JSON in the run dir)."""

import json
from pathlib import Path

import lightning as L


class IndexRecorder(L.Callback):
    def __init__(self):
        self.seen: dict[int, list[int]] = {}
        self.steps = 0
        self.val_split: list[int] = []

    def on_train_start(self, trainer, pl_module):
        self.val_split = [int(i) for i in trainer.datamodule.splits["val"]]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        real = batch["index"][batch["weight"] > 0] if "weight" in batch else batch["index"]
        self.seen.setdefault(trainer.current_epoch, []).extend(int(i) for i in real)
        self.steps += 1

    def on_fit_end(self, trainer, pl_module):
        out = Path(trainer.default_root_dir) / f"probe_rank{trainer.global_rank}.json"
        out.write_text(
            json.dumps(
                {"seen": self.seen, "steps": self.steps, "val_split": self.val_split, "world": trainer.world_size}
            )
        )


class SigtermAt(L.Callback):
    """Sends this process SIGTERM (as SLURM or Kubernetes would) after training step ``step``, once: not again
    when the run is resumed (``marker`` is written)."""

    def __init__(self, step: int, marker: str):
        self.step, self.marker = step, Path(marker)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        import os
        import signal

        if trainer.global_step == self.step and not self.marker.exists():
            self.marker.write_text(str(self.step))
            os.kill(os.getpid(), signal.SIGTERM)
