"""The LightningModule: masked reconstruction error + λ·KL, with a linear KL warm-up.

Batches follow :mod:`spectra_lightning.batch` (completed on the device by ``finish_batch``); labels
never reach the loss. Evaluation logs ``val/loss`` (the schedule's loss at this step) and ``val/objective``
(reconstruction + the final λ × KL: the same meaning in every epoch, what recipes' checkpoints monitor).
Validation, test and predict steps return ``{"mu", "logvar", "index", "labels"}`` so callbacks read the codes
without a second pass over the data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics import MeanMetric

from .batch import Batch, finish_batch
from .errors import ConfigError
from .grid import HARPS_LENGTH, SpectralGrid
from .nets import ConvAutoencoder, reparameterise

# Written into every checkpoint. 0: before the key existed (2026-11); 1: adds it. Bump it when a change
# needs old checkpoints converted, and convert them in `on_load_checkpoint`.
CHECKPOINT_FORMAT = 1
NORMALISATIONS = {"sum": "sum", "mean": "mean", "paper": "mean"}  # "paper": the old name of "mean"


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, 1)) of each spectrum's each node, ``(B, D)`` in nats, from μ, log σ² ``(B, D)``."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def masked_error(
    recon: torch.Tensor,
    flux: torch.Tensor,
    mask: torch.Tensor,
    normalisation: str,
    reconstruction: str = "l1",
    noise_scale: float = 0.02,
    blur_px: float = 0.0,
    blur_weight: float = 0.0,
) -> torch.Tensor:
    """Per-spectrum reconstruction error ``(B,)`` over unmasked pixels of ``(B, L)`` inputs, summed (``sum``)
    or averaged over pixels (``mean``): ``l1`` = |r| (the paper's), ``gaussian`` = r²/(2σ²)·σ, i.e. a
    Gaussian negative log-likelihood rescaled by σ so that it matches |r| in size for residuals of ~σ.
    ``blur_weight`` > 0 adds that weight times the same error of the residual smoothed by a Gaussian of σ =
    ``blur_px`` pixels (see ``loss_blur_px``)."""
    r = (recon - flux) * mask

    def error(res: torch.Tensor) -> torch.Tensor:
        return ((res.abs() if reconstruction == "l1" else res.pow(2) / (2 * noise_scale)) * mask).sum(1)

    total = error(r)
    if blur_weight > 0:
        # squared error of a smoothed one-pixel residual is 1/(2σ√π) of its own: rescaled, a lone pixel costs the
        # same at both scales, and a line that is off by less than the smoothing costs less than one far away
        scale = 2 * math.sqrt(math.pi) * blur_px if reconstruction != "l1" else 1.0
        total = total + blur_weight * scale * error(gaussian_smooth(r, blur_px))
    if NORMALISATIONS[normalisation] == "mean":
        return total / mask.sum(1).clamp_min(1)
    return total


def gaussian_smooth(x: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """``(B, L)`` rows convolved with a normalised Gaussian of σ = ``sigma_px`` pixels (zeros beyond the ends)."""
    half = max(1, math.ceil(3 * sigma_px))
    t = torch.arange(-half, half + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (t / sigma_px) ** 2)
    kernel = (kernel / kernel.sum()).view(1, 1, -1)
    return torch.nn.functional.conv1d(x.unsqueeze(1), kernel, padding=half).squeeze(1)


def net_spec(net: nn.Module) -> dict:
    """``{"class_path", "init_args"}`` that rebuild ``net`` (its ``init_args``: the constructor's arguments but
    ``n_pixels``); a network without them cannot be saved, and is refused in one line."""
    args = getattr(net, "init_args", None)
    if not isinstance(args, dict):
        raise ConfigError(
            f"--model.net: {type(net).__name__} cannot be rebuilt from a checkpoint: give it an `init_args` dict "
            "(its constructor's arguments but n_pixels), or pass it as class_path/init_args"
        )
    return {"class_path": f"{type(net).__module__}.{type(net).__qualname__}", "init_args": dict(args)}


def build_net(spec: dict, n_pixels: int, grid: dict | None) -> nn.Module:
    """A network from ``{"class_path", "init_args"}`` for ``n_pixels`` inputs (a Doppler node gets the grid's
    wavelengths)."""
    import importlib
    import inspect

    module, _, name = str(spec["class_path"]).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(f"--model.net: no class {spec['class_path']!r} to rebuild the network from") from None
    args = dict(spec.get("init_args") or {})
    if args.get("doppler_node") is not None and "wave" in inspect.signature(cls).parameters and grid is not None:
        args["wave"] = SpectralGrid(**grid).wavelength
    return cls(n_pixels, **args)


class NonFiniteLossError(RuntimeError):
    """Training produced a non-finite loss: stop rather than train (and report) on NaN weights."""


def kl_weight_at(step: int, kl_weight: float, warmup_start: int, warmup_steps: int) -> float:
    """λ ramps linearly from 0 at ``warmup_start`` to ``kl_weight`` ``warmup_steps`` later."""
    if warmup_steps <= 0:
        return kl_weight if step >= warmup_start else 0.0
    return kl_weight * min(max((step - warmup_start) / warmup_steps, 0.0), 1.0)


class SpectrumAutoencoder(L.LightningModule):
    """(Variational) autoencoder of spectra, after Sedaghat et al. (2021).

    Args:
        latent_dim: latent nodes.
        depth: encoder layers kept from the paper's 15 (shorter nets for CPU runs).
        n_pixels: input length; linked from the DataModule's grid by the CLI.
        variational: VAE (sample in training, μ at evaluation) or deterministic AE.
        kl_weight: λ, the KL weight after warm-up.
        kl_warmup_start: where the ramp of λ starts, in optimizer steps (a float below 1: a fraction of the
            run's total steps).
        kl_warmup_steps: how long λ ramps linearly from 0 to ``kl_weight``, in optimizer steps (a float below
            1: a fraction of the run's total steps).
        normalisation: ``sum`` — the error summed over each spectrum's unmasked pixels, KL summed
            over nodes (λ ≈ 3 works); ``mean`` (alias ``paper``) — the error averaged over pixels (the
            authors' successor code; λ ≈ 0.3 at full size). Both averaged over the batch.
        reconstruction: ``l1`` (the paper's; its optimum is the per-pixel median, which drops a
            line whose position varies by more than its width) or ``gaussian`` (squared error, the
            mean: a line moving with RV stays as a shallow trough the decoder can sharpen).
        noise_scale: σ of ``gaussian``, in normalised flux.
        kl_capacity: capacity annealing (Burgess et al. 2018): the KL target C in nats; the training loss is
            ``recon + λ·|KL − C|`` with C growing linearly from 0 to this, so the code takes on information in
            the order it lowers the reconstruction error; 0 (default): the plain ``λ·KL``. Validation losses
            stay ``recon + λ·KL``.
        kl_capacity_steps: how long C grows to ``kl_capacity``, in optimizer steps (a float below 1: a fraction
            of all steps).
        kl_capacity_weight: the capacity term's λ (0: ``kl_weight``).
        kl_capacity_until: the step at which the capacity phase ends (a float below 1: a fraction of all steps;
            0: never); after it the loss is ``recon + kl_weight·KL``, which prunes what the capacity kept twice.
        loss_blur_px: a coarse scale in the training loss: the error of the residual smoothed by a Gaussian of
            σ = this many pixels is added (0: none), so a feature that moves by more than its own width still
            gives a gradient towards its position; validation losses never include it.
        loss_blur_steps: the smoothed term's weight falls linearly from 1 to 0 over this many optimizer steps
            (a float below 1: a fraction of all steps).
        doppler_node: make this latent node a radial velocity that shifts the decoded spectrum (see
            ``nets.DopplerShift``): a physics prior; None: no such node.
        doppler_scale: km/s per unit of the Doppler node.
        warp_knots: let the decoder resample its output along the wavelength axis by a displacement linear in
            the code, interpolated between this many control points (``nets.Warp``; 0: none): a built-in shift
            operator whose span contains the Doppler shift (the network picks the node that drives it).
        warp_init: the warp's coefficients start at N(0, this²).
        coord_channels: give every decoder layer the pixel position as an extra channel (CoordConv).
        output_level: the decoder's output bias at initialisation (``ConvAutoencoder``): 1 starts it at the
            level of the stores' median-normalised spectra, not at 0 (a starting point, not a constraint).
        grid: the data's grid (``SpectralGrid.describe()``), linked from the DataModule by the CLI.
        lr: learning rate of the default optimizer (Adam) when ``optimizer`` is not given.
        net: an injected network: in YAML a ``class_path`` and ``init_args`` without ``n_pixels`` (the grid's
            length is passed as the first argument), in Python a module or ``n_pixels -> module``. It needs
            ``n_pixels``, ``latent_dim``, ``encode`` and ``decode`` as :class:`~spectra_lightning.nets.ConvAutoencoder`.
            None: a ``ConvAutoencoder`` from ``latent_dim``, ``depth`` and the Doppler options.
        optimizer: ``class_path``/``init_args`` of a ``torch.optim`` optimizer (default Adam(lr)).
        scheduler: optionally, an LR scheduler the same way (stepped per epoch; ``ReduceLROnPlateau``
            watches ``val/objective``).
    """

    def __init__(
        self,
        latent_dim: int = 32,
        depth: int = 15,
        n_pixels: int = HARPS_LENGTH,
        variational: bool = True,
        kl_weight: float = 3.0,
        kl_warmup_start: float = 0,
        kl_warmup_steps: float = 0.3,
        normalisation: Literal["sum", "mean", "paper"] = "sum",
        reconstruction: Literal["l1", "gaussian"] = "l1",
        noise_scale: float = 0.02,
        loss_blur_px: float = 0.0,
        loss_blur_steps: float = 0.5,
        kl_capacity: float = 0.0,
        kl_capacity_steps: float = 0.8,
        kl_capacity_weight: float = 0.0,
        kl_capacity_until: float = 0.0,
        doppler_node: int | None = None,
        doppler_scale: float = 30.0,
        warp_knots: int = 0,
        warp_init: float = 0.05,
        coord_channels: bool = False,
        output_level: float = 0.0,
        grid: dict | None = None,
        lr: float = 1e-3,
        net: Callable[[int], nn.Module] | None = None,
        optimizer: OptimizerCallable | None = None,
        scheduler: LRSchedulerCallable | None = None,
    ):
        super().__init__()
        for name, value, ok, want in (
            ("kl_weight", kl_weight, kl_weight >= 0, ">= 0"),
            ("lr", lr, lr > 0, "> 0"),
            ("latent_dim", latent_dim, latent_dim >= 1, ">= 1"),
            ("noise_scale", noise_scale, noise_scale > 0, "> 0"),
            ("doppler_scale", doppler_scale, doppler_scale > 0, "> 0"),
        ):
            if not ok:
                raise ConfigError(f"--model.{name} must be {want}, got {value}")
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.optimizer, self.scheduler = optimizer, scheduler
        if isinstance(net, dict):  # a checkpoint's (or a config's) {"class_path", "init_args"}
            net = build_net(net, n_pixels, grid)
        elif net is not None:
            if not isinstance(net, nn.Module):
                net = net(n_pixels)
            self.hparams["net"] = net_spec(net)  # every checkpoint rebuilds its model, however it was built
        else:
            self.hparams.pop("net", None)
        if net is None:
            wave = SpectralGrid(**grid).wavelength if grid is not None else None
            if doppler_node is not None and (wave is None or len(wave) != n_pixels):
                raise ConfigError("doppler_node needs the data's grid (the CLI links it; pass grid=... otherwise)")
            net = ConvAutoencoder(
                n_pixels,
                latent_dim,
                depth,
                doppler_node=doppler_node,
                doppler_scale=doppler_scale,
                wave=wave,
                coord_channels=coord_channels,
                warp_knots=warp_knots,
                warp_init=warp_init,
                output_level=output_level,
            )
        else:
            got = (getattr(net, "n_pixels", None), getattr(net, "latent_dim", None))
            if got != (n_pixels, latent_dim):
                raise ConfigError(
                    f"--model.net ({type(net).__name__}) has n_pixels, latent_dim = {got}, but the data "
                    f"has {n_pixels} px and --model.latent_dim is {latent_dim}"
                )
            if doppler_node is not None and getattr(net, "doppler_node", None) != doppler_node:
                raise ConfigError(
                    "--model.doppler_node is set but the injected net has no such node: set it on the net"
                )
            if warp_knots or coord_channels or output_level:
                raise ConfigError(
                    "--model.warp_knots / coord_channels / output_level build the default net: set them on the"
                    " injected net"
                )
        self.net = net
        self.train_means = torch.nn.ModuleDict({k: MeanMetric() for k in ("loss", "recon", "kl")})

    # -- schedule -------------------------------------------------------------
    def _steps(self, value: float) -> int:
        if 0 < value < 1:
            total = self.trainer.estimated_stepping_batches if self._trainer is not None else 0
            return int(value * total) if total and total != float("inf") else 0
        return int(value)

    @property
    def current_kl_capacity(self) -> float | None:
        """The KL target C (nats) at this step when ``kl_capacity`` is set, else None."""
        h = self.hparams
        if not h.get("kl_capacity"):
            return None
        until = self._steps(h.get("kl_capacity_until", 0.0))
        if until and self.global_step >= until:
            return None
        steps = self._steps(h.kl_capacity_steps)
        return h.kl_capacity * min(self.global_step / steps, 1.0) if steps > 0 else h.kl_capacity

    @property
    def current_blur_weight(self) -> float:
        h = self.hparams
        if not h.get("loss_blur_px") or not self.training:
            return 0.0
        steps = self._steps(h.loss_blur_steps)
        return max(0.0, 1.0 - self.global_step / steps) if steps > 0 else 0.0

    @property
    def current_kl_weight(self) -> float:
        if not self.hparams.variational:
            return 0.0
        h = self.hparams
        return kl_weight_at(
            self.global_step, h.kl_weight, self._steps(h.kl_warmup_start), self._steps(h.kl_warmup_steps)
        )

    # -- steps -------------------------------------------------------------------
    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        return finish_batch(batch) if isinstance(batch, dict) else batch

    def forward(self, flux: torch.Tensor):
        """``(B, L)`` -> reconstruction ``(B, L)``, μ ``(B, D)``, log σ² ``(B, D)``; a sample is decoded in
        training (VAE), μ otherwise."""
        mu, logvar = self.net.encode(flux)
        sample = self.hparams.variational and self.training
        return self.net.decode(reparameterise(mu, logvar) if sample else mu), mu, logvar

    def encode(self, flux: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Spectra ``(B, L)`` -> μ, log σ², each ``(B, D)``."""
        return self.net.encode(flux)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, D)`` -> spectra ``(B, L)``."""
        return self.net.decode(z)

    def _shared_step(self, batch: Batch, stage: str):
        flux, mask = batch["flux"], batch["mask"]
        recon, mu, logvar = self(flux)
        # weight 0 marks padding repeats that equalise DDP ranks: they add nothing
        w = batch.get("weight")
        w = torch.ones(flux.shape[0], device=flux.device) if w is None else w.to(flux.dtype)
        norm = w.sum().clamp_min(1.0)
        h = self.hparams
        rec = (
            masked_error(
                recon,
                flux,
                mask.to(flux.dtype),
                h.normalisation,
                h.reconstruction,
                h.noise_scale,
                h.get("loss_blur_px", 0.0),
                self.current_blur_weight,
            )
            * w
        ).sum() / norm
        kl_nodes = (kl_divergence(mu.float(), logvar.float()) * w[:, None].float()).sum(0) / norm
        kl = kl_nodes.sum() if self.hparams.variational else torch.zeros((), device=flux.device)
        weight = self.current_kl_weight
        capacity = self.current_kl_capacity if stage == "train" else None
        # capacity annealing (Burgess et al. 2018): the KL is held near a target C that grows, not pushed to 0
        if capacity is None:
            loss = rec + weight * kl
        else:
            loss = rec + (self.hparams.get("kl_capacity_weight") or weight) * (kl - capacity).abs()
        bs = flux.shape[0]
        values = {"loss": loss, "recon": rec, "kl": kl}
        if stage != "train":
            # the same objective in every epoch (the final λ, no capacity term): what checkpoints and sweeps
            # compare; `loss` follows the schedule, so a warm-up or capacity phase would make early epochs "best"
            values["objective"] = rec + (h.kl_weight * kl if h.variational else 0.0)
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
                self.train_means[k].update(v.detach(), bs)
            if getattr(self._trainer, "is_last_batch", True):
                # the Metric objects are logged once an epoch: Lightning moves a logged Metric's result state
                # on every `log` call, ~4 % of a quickstart step when done per step (docs/benchmarks.md)
                self.log_dict({f"train/{k}_epoch": self.train_means[k] for k in values}, on_step=False, on_epoch=True)
            self.log("train/kl_weight", weight, on_step=True, on_epoch=False, batch_size=bs)
        else:
            self.log_dict(
                {f"{stage}/{k}": v for k, v in values.items()},
                prog_bar=True,
                on_step=False,
                on_epoch=True,
                batch_size=bs,
                sync_dist=True,
            )
            if self.hparams.variational:
                self.log_dict(
                    {f"{stage}/kl_node/{i}": v for i, v in enumerate(kl_nodes)},
                    on_step=False,
                    on_epoch=True,
                    batch_size=bs,
                    sync_dist=True,
                )
        return loss, mu, logvar

    def training_step(self, batch, batch_idx):
        loss = self._shared_step(batch, "train")[0]
        # any rank's non-finite loss stops every rank (no rank waits forever in the next all-reduce)
        if self.trainer.strategy.reduce_boolean_decision(bool(~torch.isfinite(loss.detach())), all=False):
            raise NonFiniteLossError(self._non_finite_message(loss, batch))
        return loss

    def _non_finite_message(self, loss: torch.Tensor, batch: dict) -> str:
        rows = batch["index"].detach().cpu().numpy()
        ids = None
        try:
            ids = self.trainer.datamodule.store.meta.get("id")
        except AttributeError:
            pass
        names = [str(ids[r]) for r in rows] if ids is not None else [f"row {r}" for r in rows]
        shown = ", ".join(names[:8]) + (f" ... ({len(names)} in all)" if len(names) > 8 else "")
        where = "this rank's loss" if torch.isfinite(loss) else f"the loss is {float(loss)}"
        return (
            f"non-finite loss at step {self.global_step} (epoch {self.current_epoch}; {where}); batch spectra: "
            f"{shown}. Lower --model.lr, check those spectra (`verify`), or use precision 32"
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
        optimizer = (
            self.optimizer(self.parameters())
            if self.optimizer
            else torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        )
        if self.scheduler is None:
            return optimizer
        scheduler = self.scheduler(optimizer)
        config = {"scheduler": scheduler, "interval": "epoch"}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = "val/objective"
        return {"optimizer": optimizer, "lr_scheduler": config}

    # -- checkpoints -------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["spectra_lightning_format"] = CHECKPOINT_FORMAT

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        version = checkpoint.get("spectra_lightning_format", 0)
        if version > CHECKPOINT_FORMAT:
            raise ConfigError(
                f"checkpoint format {version} is newer than this spectra_lightning reads "
                f"({CHECKPOINT_FORMAT}): upgrade spectra_lightning"
            )
        # 0 -> 1 changed nothing stored: format-0 checkpoints load as they are
