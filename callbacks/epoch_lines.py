"""A progress "bar" for logs: one line per epoch when stdout is not a terminal.

Under a scheduler, tqdm's bar lands in the log file as thousands of carriage-return updates
(a 40-epoch run: ~540 kB). The CLI uses this instead whenever stdout is not a TTY.
"""

from __future__ import annotations

import time

from lightning.pytorch.callbacks.progress import ProgressBar


class EpochLines(ProgressBar):
    """Print ``epoch 3/40  step 120  train/loss 0.0123  val/loss 0.0119  (12.3 s)`` once per epoch."""

    KEYS = ("train/loss", "val/loss", "val/mad/n_informative")

    def __init__(self):
        super().__init__()
        self._enabled = True
        self._start = time.perf_counter()

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_epoch_start(self, trainer, pl_module):
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        # after validation (Lightning runs it inside the epoch), so val/* of this epoch are known
        if not (self._enabled and trainer.is_global_zero):
            return
        metrics = trainer.callback_metrics
        epochs, steps = trainer.max_epochs, trainer.max_steps  # -1 or None: no such limit (not shown)
        parts = [
            f"epoch {trainer.current_epoch + 1}" + (f"/{epochs}" if epochs is not None and epochs > 0 else ""),
            f"step {trainer.global_step}" + (f"/{steps}" if steps is not None and steps > 0 else ""),
        ]
        for key in self.KEYS:
            for name in (key, f"{key}_epoch"):
                if name in metrics:
                    parts.append(f"{key} {float(metrics[name]):.5g}")
                    break
        parts.append(f"({time.perf_counter() - self._start:.1f} s)")
        print("  ".join(parts), flush=True)
