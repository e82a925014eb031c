"""Read the latent space during training: MAD and MI scalars per epoch, figures, report.json at the end.

Uses the μ returned by ``validation_step`` (no second pass over the data). The final report is computed on the
test split when the data has one (the CLI runs the test loop after ``fit``; the callback collects its codes the
same way), else on the last validation epoch, and says which. Label-free baselines (``metrics.baselines``) are fit
on the first training batches (up to ``baseline_spectra`` spectra, as the network sees them) and computed for the
spectra of every evaluation after that; the final report sets each label's best node beside the best
baseline, with intervals. Scalars go
to every logger as ``val/mad/…`` (every node's MAD, the largest, the count over the threshold) and
``val/mi/<label>/…`` (best and runner-up node and MI, gap); figures are written to
``<run dir>/figures/`` and logged as images to W&B when it is the logger, with the final tables,
summary and artifacts (``loggers.log_final_report``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from spectra_lightning.analysis import plots
from spectra_lightning.analysis.loggers import log_final_report
from spectra_lightning.callbacks.latent_figures import latent_figures
from spectra_lightning.common.files import write_atomic
from spectra_lightning.common.run_layout import figures_dir, report_file
from spectra_lightning.metrics.baselines import LabelFreeBaselines
from spectra_lightning.metrics.latent import MAD_THRESHOLD
from spectra_lightning.metrics.report import format_summary, latent_report
from spectra_lightning.metrics.torchmetric import LatentCodes


class LatentMetrics(L.Callback):
    """Per-epoch latent-space metrics and figures; the full report when fitting ends.

    Args:
        every_n_epochs: compute scalars every n validation epochs (and always the last).
        figures_every_n_epochs: figures every n epochs (0: only at the end).
        threshold, criterion: informative-node rule (see ``metrics.latent.informative_nodes``).
        estimators: MI estimators per epoch (the final report uses both).
        n_reconstructions: validation spectra shown with their reconstructions.
        traversal_steps: decoded spectra per informative node in the traversal figure.
        final_report: write ``report.json`` and print a summary when fit ends (or its test loop).
        final_figures: draw the figures of that report too (the slowest part on small data sets).
        baseline_spectra: training spectra the label-free baselines are fit on (0: no baselines).
        intervals: half-samples and permutations for the final report's intervals and null (0: none).
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        figures_every_n_epochs: int = 5,
        threshold: float = MAD_THRESHOLD,
        criterion: str = "auto",
        estimators: tuple[str, ...] = ("ksg",),
        n_reconstructions: int = 3,
        traversal_steps: int = 7,
        final_report: bool = True,
        final_figures: bool = True,
        baseline_spectra: int = 1024,
        intervals: int = 30,
    ):
        super().__init__()
        self.every_n_epochs, self.figures_every_n_epochs = every_n_epochs, figures_every_n_epochs
        self.report_kwargs: dict[str, Any] = {"threshold": threshold, "criterion": criterion}
        self.estimators = tuple(estimators)
        self.n_reconstructions, self.traversal_steps = n_reconstructions, traversal_steps
        self.final_report, self.final_figures = final_report, final_figures
        self.baseline_spectra, self.intervals = baseline_spectra, intervals
        self.baselines: LabelFreeBaselines | None = None
        self._baseline_batches: list[tuple[np.ndarray, np.ndarray]] = []
        # baseline features of evaluated spectra by row, with the flux sum they were computed from: the validation
        # set is the same every epoch (its augmentation too), and its CCF is most of a validation batch's metrics
        self._features: dict[int, tuple[float, np.ndarray]] = {}
        self.last_validation: dict | None = None  # the last evaluated validation epoch, for sweeps
        self.fit_metrics: dict[str, float] = {}  # the last validation's val/loss and val/objective
        self.metric: LatentCodes | None = None
        self.examples: dict | None = None
        self.last_codes: dict | None = None
        self.seconds: list[float] = []  # per evaluation, figures included
        self.figure_seconds: list[float] = []
        self._epoch_start = self._fit_start = time.perf_counter()

    # -- collection ---------------------------------------------------------------
    def setup(self, trainer, pl_module, stage):
        names = list(getattr(trainer.datamodule, "label_names", []) or [])
        self.metric = LatentCodes(names, estimators=self.estimators, pair_labels=False, **self.report_kwargs)

    def on_train_start(self, trainer, pl_module):
        self._fit_start = time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module):
        self._epoch_start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.baselines is not None or not self.baseline_spectra:
            return
        flux, mask = batch["flux"], batch["mask"]
        if "weight" in batch:  # a streamed epoch's padding repeats spectra
            keep = batch["weight"] > 0
            flux, mask = flux[keep], mask[keep]
        self._baseline_batches.append((flux.detach().float().cpu().numpy(), mask.detach().cpu().numpy()))
        held = sum(len(f) for f, _ in self._baseline_batches)
        # every rank decides at the same batch (equal batches per rank), and takes rank 0's fit
        if held >= self.baseline_spectra or batch_idx + 1 >= trainer.num_training_batches:
            fitted = None
            if trainer.is_global_zero:
                flux_all = np.concatenate([f for f, _ in self._baseline_batches])[: self.baseline_spectra]
                mask_all = np.concatenate([m for _, m in self._baseline_batches])[: self.baseline_spectra]
                fitted = LabelFreeBaselines(trainer.datamodule.grid.wavelength).fit(flux_all, mask_all)
            self.baselines = trainer.strategy.broadcast(fitted, src=0)
            self._features = {}
            self._baseline_batches = []

    def on_validation_epoch_start(self, trainer, pl_module):
        self.metric.reset()
        self.metric.to(pl_module.device)

    on_test_epoch_start = on_validation_epoch_start

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if not isinstance(outputs, dict) or "mu" not in outputs:
            return
        logvar = outputs["logvar"] if pl_module.variational else None
        features = None
        if self.baselines is not None:
            features = torch.as_tensor(self._baseline_features(batch), device=outputs["mu"].device)
        self.metric.update(outputs["mu"], outputs["index"], outputs.get("labels"), logvar, features)
        if batch_idx == 0 and trainer.is_global_zero:
            n = self.n_reconstructions
            self.examples = {"flux": batch["flux"][:n].detach(), "mask": batch["mask"][:n].detach()}

    def _baseline_features(self, batch: dict) -> np.ndarray:
        """``(B, F)`` float32 label-free baseline features of a batch, from the cache where the same row came with
        the same flux before."""
        assert self.baselines is not None
        flux = batch["flux"].detach().float().cpu().numpy()
        rows = batch["index"].detach().cpu().numpy().tolist()
        sums = flux.sum(axis=1, dtype=np.float64).tolist()
        held = [self._features.get(r) for r in rows]
        if all(h is not None and h[0] == s for h, s in zip(held, sums)):
            return np.stack([h[1] for h in held if h is not None])
        values = self.baselines.features(flux, batch["mask"].cpu().numpy()).astype(np.float32)
        self._features.update({r: (s, v) for r, s, v in zip(rows, sums, values)})
        return values

    @staticmethod
    def _last_epoch(trainer) -> bool:
        """Is this epoch the fit's last: its max_epochs, or its max_steps reached (-1 or None: no such limit), or
        a stop asked for?"""
        epochs, steps = trainer.max_epochs, trainer.max_steps
        return (
            bool(trainer.should_stop)
            or (epochs is not None and epochs >= 0 and trainer.current_epoch + 1 >= epochs)
            or (steps is not None and steps >= 0 and trainer.global_step >= steps)
        )

    def _runs_this_epoch(self, trainer, every: int) -> bool:
        return self._last_epoch(trainer) or (every > 0 and (trainer.current_epoch + 1) % every == 0)

    # -- per epoch ------------------------------------------------------------------
    def on_validation_epoch_end(self, trainer, pl_module):
        if (
            trainer.sanity_checking
            or not self._runs_this_epoch(trainer, self.every_n_epochs)
            or self.metric.update_count == 0
        ):
            return
        t0 = time.perf_counter()
        codes = self.metric.codes()  # a collective: every rank gets all ranks' codes, deduplicated
        self.last_codes = codes
        scalars: dict[str, float] = {}
        if trainer.is_global_zero:  # analysed once; the scalars are then shared with the other ranks
            labels = self._labels(codes)
            report = latent_report(
                codes["mu"],
                labels,
                codes["logvar"],
                pair_labels=False,
                estimators=self.estimators,
                intervals=0,  # per epoch only the scalars; intervals and baselines are the final report's
                **self.report_kwargs,
            )
            scalars = self._scalars(report)
            self.last_validation = validation_summary(report)
            # every n epochs; never twice at the end (the final report draws the last epoch's figures)
            last = self._last_epoch(trainer)
            every = self.figures_every_n_epochs
            if (
                every > 0
                and (trainer.current_epoch + 1) % every == 0
                and not (last and self.final_report and self.final_figures)
            ):
                t_fig = time.perf_counter()
                self._figures(trainer, pl_module, report, codes, f"epoch_{trainer.current_epoch:03d}")
                self.figure_seconds.append(time.perf_counter() - t_fig)
            elapsed = time.perf_counter() - t0
            self.seconds.append(elapsed)
            scalars["val/metrics_seconds"] = elapsed
            scalars["val/metrics_fraction"] = elapsed / max(time.perf_counter() - self._epoch_start, 1e-9)
        scalars = trainer.strategy.broadcast(scalars, src=0)
        # every rank logs the same values: their mean over ranks (sync_dist) is that value
        pl_module.log_dict(scalars, sync_dist=True)

    def cost_line(self, fit_seconds: float) -> str:
        """What the per-epoch metrics cost: their share of the training time (``fit_seconds`` from the first
        epoch to the end, the final report excluded)."""
        total, figures = sum(self.seconds), sum(self.figure_seconds)
        scalars = (total - figures) / len(self.seconds)
        line = f"latent metrics: {scalars:.2f} s per evaluation ({len(self.seconds)})"
        if self.figure_seconds:
            line += f" + {figures / len(self.figure_seconds):.1f} s per figure set ({len(self.figure_seconds)})"
        return line + f" = {100 * total / max(fit_seconds - total, 1e-9):.1f} % on top of training"

    @staticmethod
    def _scalars(report: dict) -> dict[str, float]:
        mad = np.asarray(report["mad"]["values"], dtype=float)
        scalars = {"val/mad/n_informative": float(len(report["mad"]["informative"]))}
        scalars.update({f"val/mad/node_{i:03d}": float(v) for i, v in enumerate(mad)})
        if np.isfinite(mad).any():
            scalars["val/mad/best_node"] = float(np.nanargmax(mad))
            scalars["val/mad/best"] = float(np.nanmax(mad))
        if report["mad"]["kl"] is not None:
            scalars["val/kl_total"] = float(np.nansum(report["mad"]["kl"]))
        for name, entry in report["mi"].get("ksg", {}).items():
            if entry.get("best_node") is not None:
                scalars[f"val/mi/{name}/best_node"] = float(entry["best_node"])
                scalars[f"val/mi/{name}/best"] = entry["best"]
                if entry.get("runner_up") is not None:
                    scalars[f"val/mi/{name}/runner_up_node"] = float(entry["runner_up"])
                scalars[f"val/mi/{name}/runner_up"] = entry["runner_up_value"]
                scalars[f"val/mi/{name}/gap"] = entry["gap"]
        return {k: v for k, v in scalars.items() if v is not None}

    def _labels(self, codes: dict) -> dict[str, np.ndarray]:
        names = self.metric.label_names if self.metric is not None else []
        return {name: codes["labels"][:, j] for j, name in enumerate(names)}

    # -- figures ----------------------------------------------------------------------
    def _figures(self, trainer, pl_module, report: dict, codes: dict, tag: str) -> dict[str, Path]:
        figs = latent_figures(
            pl_module,
            trainer.datamodule.grid,
            report,
            codes["mu"],
            self._labels(codes),
            self.examples,
            self.traversal_steps,
        )
        paths = plots.save_figures(figs, figures_dir(trainer.default_root_dir, tag))
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):
                for name, path in paths.items():
                    logger.log_image(key=f"val/fig/{name}", images=[str(path)], step=trainer.global_step)
        return paths

    # -- the final report ---------------------------------------------------------------
    def on_fit_end(self, trainer, pl_module):
        # the last validation's losses, kept for the report: the test loop that follows replaces callback_metrics
        self.fit_metrics = {
            key: float(trainer.callback_metrics[f"val/{key}"])
            for key in ("loss", "objective")
            if f"val/{key}" in trainer.callback_metrics
        }
        # with a test split, `fit` runs the test loop next and the final report is the test split's
        # (on_test_epoch_end); without one it is the last validation's
        if getattr(trainer.datamodule, "has_test_split", False):
            return
        if self.final_report and trainer.is_global_zero and self.last_codes is not None:
            self._final_report(trainer, pl_module, self.last_codes, "val")

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.on_validation_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    def on_test_epoch_end(self, trainer, pl_module):
        if not (self.final_report and self.metric.update_count):
            return
        codes = self.metric.codes()  # a collective
        if trainer.is_global_zero:
            self._final_report(trainer, pl_module, codes, "test")

    def _final_report(self, trainer, pl_module, codes: dict, split: str) -> None:
        fit_seconds = time.perf_counter() - self._fit_start
        labels = self._labels(codes)
        baselines = None
        if codes.get("features") is not None and self.baselines is not None:
            baselines = {name: codes["features"][:, j] for j, name in enumerate(self.baselines.names)}
        report = latent_report(
            codes["mu"],
            labels,
            codes["logvar"],
            intervals=self.intervals,
            baselines=baselines,
            baseline_info=self.baselines.describe() if baselines is not None and self.baselines is not None else None,
            split=split,
            **self.report_kwargs,
        )
        if split != "val" and self.last_validation is not None:
            report["validation"] = self.last_validation  # what sweeps compare: never the test split
        report["fit"] = {
            "epoch": trainer.current_epoch,
            "global_step": trainer.global_step,
            "val_loss": self.fit_metrics.get("loss"),  # the last validation's, not the test split's
            "val_objective": self.fit_metrics.get("objective"),
            "latent_dim": int(pl_module.net.latent_dim),
            "kl_weight": float(pl_module.kl_schedule.weight),
            "variational": pl_module.variational,
            **{part: pl_module.hparams.get(part) for part in ("net", "loss", "kl_schedule")},
        }
        run_dir = Path(trainer.default_root_dir)
        write_atomic(report_file(run_dir), json.dumps(report, indent=1))
        if self.final_figures:
            self._figures(trainer, pl_module, report, codes, "final")
        log_final_report(trainer, report, run_dir)
        print(format_summary(report), flush=True)
        if self.seconds:
            print(self.cost_line(fit_seconds), flush=True)
        print(f"report:  {run_dir / 'report.json'}", flush=True)
        if self.final_figures:
            print(f"figures: {run_dir / 'figures' / 'final'}", flush=True)


def validation_summary(report: dict) -> dict:
    """The part of a validation report that sweeps and model choice compare (``report.json``'s ``validation``)."""
    return {
        "split": "val",
        "n_spectra": report["n_spectra"],
        "mad": {"values": report["mad"]["values"], "informative": report["mad"]["informative"]},
        "mi": {
            "ksg": {
                name: {"best": e.get("best"), "best_node": e.get("best_node")}
                for name, e in report["mi"].get("ksg", {}).items()
            }
        },
    }
