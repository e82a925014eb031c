"""The LightningModule: composes a network, a reconstruction loss, a KL schedule and an optimizer.

Each part is passed in (YAML ``model.net`` / ``model.loss`` / ``model.kl_schedule`` / ``model.optimizer``, each a
``class_path`` and ``init_args``) and saved in checkpoints as such (:mod:`spectra_lightning.model.parts`). Batches
follow :mod:`spectra_lightning.store.batch` (completed on the device by ``finish_batch``); labels never reach the
loss.
Evaluation logs ``val/loss`` (the schedule's loss at this step) and ``val/objective`` (reconstruction + the final
λ × KL: the same meaning in every epoch, what recipes' checkpoints monitor). Validation, test and predict steps
return ``{"mu", "logvar", "index", "labels"}`` so callbacks read the codes without a second pass over the data.
"""

from __future__ import annotations

import warnings
from typing import Any, cast

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics import MeanMetric

from spectra_lightning.common.errors import ConfigError, WeightlessSpectraWarning
from spectra_lightning.metrics.latent import kl_to_prior
from spectra_lightning.model.bases import PART_BASES
from spectra_lightning.model.checkpoint_file import CHECKPOINT_FORMAT, CheckpointError, check_format, read_checkpoint
from spectra_lightning.model.kl_schedules import KLSchedule, LinearWarmup
from spectra_lightning.model.losses import AbsoluteError, Reconstruction
from spectra_lightning.model.nets import ConvAutoencoder, SpectrumNet, reparameterise
from spectra_lightning.model.parts import build, spec_of
from spectra_lightning.physics.grid import HARPS_LENGTH, SpectralGrid
from spectra_lightning.store.batch import Batch, finish_batch


class NonFiniteLossError(RuntimeError):
    """Training produced a non-finite loss: stop rather than train (and report) on NaN weights."""


class SpectrumAutoencoder(L.LightningModule):
    """(Variational) autoencoder of spectra, after Sedaghat et al. (2021), composed of parts.

    Args:
        net: the network, a ``nets.SpectrumNet`` subclass: in YAML a ``class_path`` and ``init_args`` without
            ``n_pixels`` (the CLI links the grid's length into it), e.g.
            ``spectra_lightning.model.nets.ConvAutoencoder`` with ``latent_dim``, ``depth``, ``warp_knots``; in
            Python a module or such a spec (``n_pixels`` is passed as its first argument). Default: the paper's
            ``ConvAutoencoder`` (128 nodes, 15 layers).
        loss: the reconstruction loss (``spectra_lightning.model.losses``: ``AbsoluteError``, the paper's L1;
            ``SquaredError``); default ``AbsoluteError(normalisation="mean")``, the paper's.
        kl_schedule: λ and the KL term over training (``spectra_lightning.model.kl_schedules``: ``Constant``,
            ``LinearWarmup``, ``CapacityAnnealing``); default ``LinearWarmup(weight=0.3)``, the paper's λ.
        variational: a VAE (a sample is decoded in training, μ at evaluation; the KL term) or a plain
            autoencoder (μ decoded, no KL term).
        n_pixels: input length; linked from the DataModule's grid by the CLI.
        grid: the data's grid (``SpectralGrid.describe()``), linked from the DataModule by the CLI; a network
            with a Doppler node reads its wavelengths.
        optimizer: a ``torch.optim`` optimizer as ``class_path``/``init_args`` (default Adam, lr 1e-3).
        scheduler: optionally, an LR scheduler the same way, stepped once per epoch (``ReduceLROnPlateau``
            watches ``val/objective``).
    """

    net: SpectrumNet
    loss: Reconstruction
    kl_schedule: KLSchedule

    def __init__(
        self,
        net: SpectrumNet | None = None,
        loss: Reconstruction | None = None,
        kl_schedule: KLSchedule | None = None,
        variational: bool = True,
        n_pixels: int = HARPS_LENGTH,
        grid: dict | None = None,
        optimizer: OptimizerCallable | None = None,
        scheduler: LRSchedulerCallable | None = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.optimizer, self.scheduler = optimizer, scheduler
        # each part is kept in the hyper-parameters as {"class_path", "init_args"}: every checkpoint rebuilds it;
        # a spec (a checkpoint's, a Python caller's) builds only a subclass of the option's base (parts.resolve)
        if isinstance(net, dict):
            net = build(net, "--model.net", PART_BASES["net"], n_pixels)
        elif net is None:
            net = ConvAutoencoder(n_pixels)
        elif not isinstance(net, nn.Module):
            raise ConfigError(f"--model.net: expected a network (nn.Module) or its spec, got {type(net).__name__}")
        self.hparams["net"] = spec_of(net, "--model.net")
        if getattr(net, "n_pixels", None) != n_pixels:
            raise ConfigError(
                f"--model.net ({type(net).__name__}) takes {getattr(net, 'n_pixels', None)} px but the data has "
                f"{n_pixels}"
            )
        if grid is not None and hasattr(net, "set_wavelengths"):
            cast(ConvAutoencoder, net).set_wavelengths(SpectralGrid(**grid).wavelength)  # or any net that has it
        if getattr(net, "needs_wavelengths", False):
            raise ConfigError(f"--model.net ({type(net).__name__}) needs the data's grid (the CLI links it)")
        loss = build(loss, "--model.loss", Reconstruction) if isinstance(loss, dict) else loss or AbsoluteError("mean")
        if isinstance(kl_schedule, dict):
            schedule = build(kl_schedule, "--model.kl_schedule", KLSchedule)
        else:
            schedule = kl_schedule
        schedule = schedule or LinearWarmup(0.3)
        self.hparams["loss"] = spec_of(loss, "--model.loss")
        self.hparams["kl_schedule"] = spec_of(schedule, "--model.kl_schedule")
        self.net, self.loss, self.kl_schedule = cast(SpectrumNet, net), loss, schedule
        self.train_means = torch.nn.ModuleDict({k: MeanMetric() for k in ("loss", "recon", "kl")})
        # per stage ("val", "test"): Σ weight·KL per node and Σ weight, `(D + 1,)`, summed over an epoch's batches
        self._kl_node_sums: dict[str, torch.Tensor] = {}
        self._warned_weightless = False

    @property
    def latent_dim(self) -> int:
        return int(self.net.latent_dim)

    @property
    def n_pixels(self) -> int:
        """L, the grid's length the network takes."""
        return int(self.hparams["n_pixels"])

    @property
    def variational(self) -> bool:
        return bool(self.hparams.get("variational", True))

    # -- schedule -------------------------------------------------------------
    def _total_steps(self) -> int | None:
        total = self.trainer.estimated_stepping_batches if self._trainer is not None else None
        return int(total) if total and total != float("inf") else None

    @property
    def current_kl_weight(self) -> float:
        """λ at this step (0 for a plain autoencoder)."""
        if not self.variational:
            return 0.0
        return self.kl_schedule.kl_weight(self.global_step, self._total_steps())

    # -- steps -------------------------------------------------------------------
    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return finish_batch(cast(Batch, batch)) if isinstance(batch, dict) else batch

    def forward(self, flux: torch.Tensor):
        """``(B, L)`` -> reconstruction ``(B, L)``, μ ``(B, D)``, log σ² ``(B, D)``; a sample is decoded in
        training (VAE), μ otherwise."""
        mu, logvar = self.net.encode(flux)
        sample = self.variational and self.training
        return self.net.decode(reparameterise(mu, logvar) if sample else mu), mu, logvar

    def encode(self, flux: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Spectra ``(B, L)`` -> μ, log σ², each ``(B, D)``."""
        return self.net.encode(flux)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, D)`` -> spectra ``(B, L)``."""
        return self.net.decode(z)

    def terms(self, batch: Batch, stage: str) -> dict[str, torch.Tensor]:
        """The loss of a batch and its parts, without logging: ``loss`` (what training minimises, the schedule's
        term at this step), ``recon``, ``kl`` (summed over nodes), ``kl_nodes`` ``(D,)``, ``objective`` (recon +
        the final λ·KL: the same meaning in every epoch), ``weight`` (the batch's spectra, Σ w), ``mu`` and
        ``logvar`` ``(B, D)``."""
        flux = batch["flux"]
        recon, mu, logvar = self(flux)
        # weight 0 marks padding repeats that equalise DDP ranks: they add nothing
        w = batch.get("weight")
        w = torch.ones(flux.shape[0], device=flux.device) if w is None else w.to(flux.dtype)
        norm = w.sum().clamp_min(1.0)
        rec = (self.loss(recon, batch) * w).sum() / norm
        kl_nodes = (kl_to_prior(mu.float(), logvar.float()) * w[:, None].float()).sum(0) / norm
        variational = self.variational
        kl = kl_nodes.sum() if variational else torch.zeros((), device=flux.device)
        if stage == "train" and variational:
            loss = rec + self.kl_schedule.term(kl, self.global_step, self._total_steps())
        else:
            loss = rec + self.current_kl_weight * kl
        # `loss` follows the schedule, so a warm-up or capacity phase would make early epochs "best": checkpoints
        # and sweeps compare `objective`
        objective = rec + (self.kl_schedule.weight * kl if variational else 0.0)
        return {
            "loss": loss,
            "recon": rec,
            "kl": kl,
            "objective": objective,
            "kl_nodes": kl_nodes,
            "weight": w.sum(),  # the batch's spectra, padding repeats not counted
            "mu": mu,
            "logvar": logvar,
        }

    def _shared_step(self, batch: Batch, stage: str):
        t = self.terms(batch, stage)
        loss, mu, logvar, kl_nodes = t["loss"], t["mu"], t["logvar"], t["kl_nodes"]
        bs = batch["flux"].shape[0]
        values = {k: t[k] for k in ("loss", "recon", "kl")}
        if stage != "train":
            values["objective"] = t["objective"]
        if stage == "train":
            # step values are this rank's (no all-reduce per step); the epoch means are torchmetrics states,
            # reduced over ranks once per epoch when Lightning computes them
            self.log_dict(
                {f"train/{k}_step": v for k, v in values.items()},
                prog_bar=True,
                on_step=True,
                on_epoch=False,
                batch_size=bs,
            )
            for k, v in values.items():
                cast(MeanMetric, self.train_means[k]).update(v.detach(), bs)
            if getattr(self._trainer, "is_last_batch", True):
                # the Metric objects are logged once an epoch: Lightning moves a logged Metric's result state
                # on every `log` call, ~4 % of a quickstart step when done per step (docs/benchmarks.md)
                means = {f"train/{k}_epoch": cast(MeanMetric, self.train_means[k]) for k in values}
                self.log_dict(means, on_step=False, on_epoch=True)
            self.log("train/kl_weight", self.current_kl_weight, on_step=True, on_epoch=False, batch_size=bs)
        else:
            self.log_dict(
                {f"{stage}/{k}": v for k, v in values.items()},
                prog_bar=True,
                on_step=False,
                on_epoch=True,
                batch_size=bs,
                sync_dist=True,
            )
            if self.variational:  # logged once per epoch (_log_kl_nodes): D `log` calls per batch cost more than
                # the batch's forward pass
                weight = t["weight"].detach()  # kl_nodes is Σ w·KL / max(Σ w, 1)
                row = torch.cat([kl_nodes.detach() * weight.clamp_min(1.0), weight.reshape(1)])
                held = self._kl_node_sums.get(stage)
                self._kl_node_sums[stage] = row if held is None else held + row
        return loss, mu, logvar

    def _log_kl_nodes(self, stage: str) -> None:
        """``{stage}/kl_node/i``: node i's KL averaged over the epoch's spectra of every rank (padding excluded)."""
        sums = self._kl_node_sums.pop(stage, None)
        if sums is None:
            return
        sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        means = sums[:-1] / sums[-1].clamp_min(1.0)
        self.log_dict({f"{stage}/kl_node/{i}": v for i, v in enumerate(means)}, on_step=False, on_epoch=True)

    def on_validation_epoch_start(self) -> None:
        self._kl_node_sums.pop("val", None)  # an evaluation stopped mid-epoch leaves no partial sum for the next

    def on_test_epoch_start(self) -> None:
        self._kl_node_sums.pop("test", None)

    def on_validation_epoch_end(self) -> None:
        self._log_kl_nodes("val")

    def on_test_epoch_end(self) -> None:
        self._log_kl_nodes("test")

    def training_step(self, batch, batch_idx):
        if not self._warned_weightless:  # once a run: the spectra say what to look at
            idle = self.loss.weightless(batch)
            if bool(idle.any()):
                self._warned_weightless = True
                rows = batch["index"][idle].detach().cpu().numpy()
                warnings.warn(
                    f"{len(rows)} spectra of a training batch (step {self.global_step}) carry no weight in "
                    f"{type(self.loss).__name__}: {self._spectra_named(rows)}; they train the KL term alone. Check "
                    "their mask and inverse variance (`verify`, `ingest --min-usable`), or leave them out "
                    "(warned once a run)",
                    WeightlessSpectraWarning,
                    stacklevel=2,
                )
        loss = self._shared_step(batch, "train")[0]
        # any rank's non-finite loss stops every rank (no rank waits forever in the next all-reduce)
        if self.trainer.strategy.reduce_boolean_decision(bool(~torch.isfinite(loss.detach())), all=False):
            raise NonFiniteLossError(self._non_finite_message(loss, batch))
        return loss

    def _spectra_named(self, rows) -> str:
        """The store ids of a batch's rows (``row N`` where the data module has no store), at most 8 shown."""
        ids = None
        try:
            ids = getattr(self.trainer, "datamodule").store.meta.get("id")  # noqa: B009  (typed without it)
        except (AttributeError, RuntimeError):
            pass
        names = [str(ids[r]) for r in rows] if ids is not None else [f"row {r}" for r in rows]
        return ", ".join(names[:8]) + (f" ... ({len(names)} in all)" if len(names) > 8 else "")

    def _non_finite_message(self, loss: torch.Tensor, batch: dict) -> str:
        shown = self._spectra_named(batch["index"].detach().cpu().numpy())
        where = "this rank's loss" if torch.isfinite(loss) else f"the loss is {float(loss)}"
        return (
            f"non-finite loss at step {self.global_step} (epoch {self.current_epoch}; {where}); batch spectra: "
            f"{shown}. Lower the learning rate (--model.optimizer.init_args.lr), check those spectra (`verify`), "
            "or use precision 32"
        )

    def _eval_step(self, batch: Batch, stage: str) -> dict:
        _, mu, logvar = self._shared_step(batch, stage)
        return {"mu": mu.detach(), "logvar": logvar.detach(), "index": batch["index"], "labels": batch.get("labels")}

    def validation_step(self, batch, batch_idx):
        return self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx):
        return self._eval_step(batch, "test")

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        recon, mu, logvar = self(batch["flux"])
        return {"mu": mu, "logvar": logvar, "index": batch["index"]}

    def configure_optimizers(self):
        optimizer = self.optimizer(self.parameters()) if self.optimizer else torch.optim.Adam(self.parameters(), 1e-3)
        if self.scheduler is None:
            return optimizer
        scheduler = self.scheduler(optimizer)
        config = {"scheduler": scheduler, "interval": "epoch"}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = "val/objective"
        return {"optimizer": optimizer, "lr_scheduler": config}

    # -- checkpoints -------------------------------------------------------------
    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls, checkpoint_path: Any, map_location: Any = None, **kwargs: Any
    ) -> SpectrumAutoencoder:
        """The model in a checkpoint of any format this version reads, read as data
        (:func:`~spectra_lightning.model.checkpoint_file.read_checkpoint`: its parts only allowed classes, its
        weights intact and finite), in eval mode on ``map_location`` (default the CPU). Lightning's own reader would
        import and call whatever a checkpoint's ``_instantiator`` names."""
        if kwargs:
            raise TypeError(f"load_from_checkpoint takes a path and map_location only, not {sorted(kwargs)}")
        return cls.from_checkpoint(read_checkpoint(checkpoint_path), checkpoint_path, map_location)

    @classmethod
    def from_checkpoint(cls, checkpoint: dict, where: Any, map_location: Any = None) -> SpectrumAutoencoder:
        """The model of a checkpoint already read and checked by ``read_checkpoint`` (``where``: its name in
        messages), in eval mode on ``map_location`` (default the CPU)."""
        # the optimizer's and scheduler's specs are checked but never kept by the module, nor needed to encode
        hparams = {
            k: v
            for k, v in checkpoint["hyper_parameters"].items()
            if not k.startswith("_") and k not in ("optimizer", "scheduler")
        }
        try:
            model = cls(**hparams)
            model.load_state_dict(checkpoint["state_dict"])
        except (ConfigError, TypeError, RuntimeError, KeyError) as e:
            reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise CheckpointError(f"{where}: not a loadable spectra_lightning checkpoint ({reason})") from None
        device = torch.device(map_location) if isinstance(map_location, (str, torch.device)) else torch.device("cpu")
        return model.eval().to(device)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["spectra_lightning_format"] = CHECKPOINT_FORMAT

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        check_format(checkpoint)
