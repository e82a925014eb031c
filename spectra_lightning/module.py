"""The LightningModule: masked L1 reconstruction + λ·KL, with a linear KL warm-up.

Batches are dicts ``{"flux": (B, L), "mask": (B, L) bool, "index": (B,), "labels": (B, K)}``
(or float16 ``flux`` with NaN = masked and no ``mask``, completed on the device by :func:`finish_batch`)
and optionally ``"weight": (B,)`` (0 for padding repeats; see ``data_modules``); labels never
reach the loss. Validation, test and predict steps
return ``{"mu", "logvar", "index", "labels"}`` so callbacks read the codes without a
second pass over the data.
"""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch
from torchmetrics import MeanMetric

from .errors import ConfigError
from .grid import SpectralGrid
from .nets import FULL_LENGTH, ConvAutoencoder

LOGVAR_RANGE = (-12.0, 8.0)  # keeps exp(logvar) finite in fp16/bf16 and early training


def kl_per_node(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, 1)) per spectrum and node, ``(B, D)`` in nats."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def masked_error(recon: torch.Tensor, flux: torch.Tensor, mask: torch.Tensor, normalisation: str,
                 reconstruction: str = "l1", noise_scale: float = 0.02) -> torch.Tensor:
    """Per-spectrum reconstruction error over unmasked pixels ``(B,)``, summed (``sum``) or
    averaged (``paper``): ``l1`` = |r| (the paper's), ``gaussian`` = r²/(2σ²)·σ, i.e. a Gaussian
    negative log-likelihood rescaled by σ so that it matches |r| in size for residuals of ~σ."""
    r = recon - flux
    err = (r.abs() if reconstruction == "l1" else r.pow(2) / (2 * noise_scale)) * mask
    total = err.sum(1)
    if normalisation == "paper":
        return total / mask.sum(1).clamp_min(1)
    return total


def finish_batch(batch: dict) -> dict:
    """Give a batch its float32 ``flux`` (masked pixels 0) and bool ``mask`` where it has none.

    Streaming loaders send the stored float16 rows with NaN = masked and no mask: half the
    bytes through workers, pinned memory and PCIe; the expansion happens here, on the device.
    """
    if "mask" not in batch:
        flux = batch["flux"].float()  # float16 ops are slow on CPUs: widen first, then work in place
        batch["mask"] = torch.isfinite(flux)  # NaN is the store's mask; ±inf must never reach the loss either
        batch["flux"] = flux.masked_fill_(~batch["mask"], 0.0)
    return batch


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
        kl_warmup_start, kl_warmup_steps: the ramp of λ, in optimizer steps; a float
            below 1 is a fraction of the run's total steps.
        normalisation: ``sum`` — L1 summed over each spectrum's unmasked pixels, KL summed
            over nodes (λ ≈ 3 works); ``paper`` — L1 averaged over pixels (the authors'
            successor code; λ ≈ 0.3 at full size). Both averaged over the batch.
        reconstruction: ``l1`` (the paper's; its optimum is the per-pixel median, which drops a
            line whose position varies by more than its width) or ``gaussian`` (squared error, the
            mean: a line moving with RV stays as a shallow trough the decoder can sharpen).
        noise_scale: σ of ``gaussian``, in normalised flux.
        doppler_node, doppler_scale: make latent node ``doppler_node`` a radial velocity of
            ``doppler_scale`` km/s per unit that shifts the decoded spectrum (see ``nets.DopplerShift``).
        grid: the data's grid (``SpectralGrid.describe()``), linked from the DataModule by the CLI.
        lr: Adam learning rate.
        net: an injected network; built from the arguments above when None.
    """

    def __init__(
        self,
        latent_dim: int = 32,
        depth: int = 15,
        n_pixels: int = FULL_LENGTH,
        variational: bool = True,
        kl_weight: float = 3.0,
        kl_warmup_start: float = 0,
        kl_warmup_steps: float = 0.3,
        normalisation: Literal["sum", "paper"] = "sum",
        reconstruction: Literal["l1", "gaussian"] = "l1",
        noise_scale: float = 0.02,
        doppler_node: int | None = None,
        doppler_scale: float = 30.0,
        grid: dict | None = None,
        lr: float = 1e-3,
        net: ConvAutoencoder | None = None,
    ):
        super().__init__()
        for name, value, ok, want in (("kl_weight", kl_weight, kl_weight >= 0, ">= 0"), ("lr", lr, lr > 0, "> 0"),
                                      ("latent_dim", latent_dim, latent_dim >= 1, ">= 1"),
                                      ("noise_scale", noise_scale, noise_scale > 0, "> 0"),
                                      ("doppler_scale", doppler_scale, doppler_scale > 0, "> 0")):
            if not ok:
                raise ConfigError(f"--model.{name} must be {want}, got {value}")
        self.save_hyperparameters(ignore=["net"])
        if net is None:
            wave = SpectralGrid(**grid).wavelength if grid is not None else None
            if doppler_node is not None and (wave is None or len(wave) != n_pixels):
                raise ConfigError("doppler_node needs the data's grid (the CLI links it; pass grid=... otherwise)")
            net = ConvAutoencoder(n_pixels, latent_dim, depth, doppler_node, doppler_scale, wave)
        self.net = net
        self.train_means = torch.nn.ModuleDict({k: MeanMetric() for k in ("loss", "recon", "kl")})
        if (self.net.n_pixels, self.net.latent_dim) != (n_pixels, latent_dim):
            raise ConfigError("the injected net does not match n_pixels/latent_dim")

    # -- schedule -------------------------------------------------------------
    def _steps(self, value: float) -> int:
        if 0 < value < 1:
            total = self.trainer.estimated_stepping_batches if self._trainer is not None else 0
            return int(value * total) if total and total != float("inf") else 0
        return int(value)

    @property
    def current_kl_weight(self) -> float:
        if not self.hparams.variational:
            return 0.0
        h = self.hparams
        return kl_weight_at(self.global_step, h.kl_weight, self._steps(h.kl_warmup_start), self._steps(h.kl_warmup_steps))

    # -- steps -------------------------------------------------------------------
    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        return finish_batch(batch) if isinstance(batch, dict) else batch

    def forward(self, flux: torch.Tensor):
        """``(B, L)`` -> reconstruction ``(B, L)``, μ ``(B, D)``, clamped log σ² ``(B, D)``."""
        mu, logvar = self.net.encoder(flux)
        logvar = logvar.clamp(*LOGVAR_RANGE)
        sample = self.hparams.variational and self.training
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        return self.net.decode(z), mu, logvar

    def _shared_step(self, batch: dict, stage: str):
        flux, mask = batch["flux"], batch["mask"]
        recon, mu, logvar = self(flux)
        # weight 0 marks padding repeats that equalise DDP ranks: they add nothing
        w = batch.get("weight")
        w = torch.ones(flux.shape[0], device=flux.device) if w is None else w.to(flux.dtype)
        norm = w.sum().clamp_min(1.0)
        h = self.hparams
        rec = (masked_error(recon, flux, mask.to(flux.dtype), h.normalisation, h.reconstruction, h.noise_scale)
               * w).sum() / norm
        kl_nodes = (kl_per_node(mu.float(), logvar.float()) * w[:, None].float()).sum(0) / norm
        kl = kl_nodes.sum() if self.hparams.variational else torch.zeros((), device=flux.device)
        weight = self.current_kl_weight
        loss = rec + weight * kl
        bs = flux.shape[0]
        values = {"loss": loss, "recon": rec, "kl": kl}
        if stage == "train":
            # step values are this rank's (no all-reduce per step); the epoch means are torchmetrics states,
            # reduced over ranks once per epoch when Lightning computes them
            self.log_dict({f"train/{k}_step": v for k, v in values.items()}, prog_bar=True, on_step=True,
                          on_epoch=False, batch_size=bs)
            for k, v in values.items():
                self.train_means[k].update(v.detach(), bs)
            self.log_dict({f"train/{k}_epoch": self.train_means[k] for k in values}, on_step=False, on_epoch=True)
            self.log("train/kl_weight", weight, on_step=True, on_epoch=False, batch_size=bs)
        else:
            self.log_dict({f"{stage}/{k}": v for k, v in values.items()}, prog_bar=True, on_step=False,
                          on_epoch=True, batch_size=bs, sync_dist=True)
            if self.hparams.variational:
                self.log_dict({f"{stage}/kl_node/{i}": v for i, v in enumerate(kl_nodes)},
                              on_step=False, on_epoch=True, batch_size=bs, sync_dist=True)
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
        return (f"non-finite loss at step {self.global_step} (epoch {self.current_epoch}; {where}); batch spectra: "
                f"{shown}. Lower --model.lr, check those spectra (`verify`), or use precision 32")

    def _eval_step(self, batch, stage):
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
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
