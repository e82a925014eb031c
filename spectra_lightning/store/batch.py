"""The batch contract between the DataModules and the LightningModule, in one place.

Two wire forms leave a DataLoader and one form reaches the loss:

* map-style (``SpectraDataModule``): ``flux (B, L)`` float32 with masked pixels 0 and ``mask (B, L)`` bool;
* streaming (``StreamingSpectraDataModule``): ``flux (B, L)`` in the store's dtype (float16) with NaN where
  masked and no ``mask`` (half the bytes through workers, pinned memory and PCIe), plus ``weight (B,)``.

:func:`finish_batch` turns either into the model's form (float32 flux, masked pixels 0, bool mask) after
the transfer to the device. Every form carries ``index (B,)`` (store rows) and ``labels (B, K)`` (the
metric callbacks' columns, NaN where unknown); labels never reach the loss.
"""

from __future__ import annotations

from typing import TypedDict

import torch


class Batch(TypedDict, total=False):
    flux: torch.Tensor  # (B, L) float32, or float16 with NaN = masked before finish_batch
    mask: torch.Tensor  # (B, L) bool, True = measured; absent on the streaming wire
    index: torch.Tensor  # (B,) int64 store rows
    labels: torch.Tensor  # (B, K) float32, K = the DataModule's label columns
    weight: torch.Tensor  # (B,) float32; 0 for padding repeats that equalise DDP ranks (streaming only)
    ivar: torch.Tensor  # (B, L) inverse variance of flux, in its units; 0 where masked (stores that keep it)


class Item(TypedDict, total=False):
    """One map-style row, before the default collate stacks items into a :class:`Batch`."""

    flux: torch.Tensor  # (L,) float32, masked pixels 0
    mask: torch.Tensor  # (L,) bool
    index: torch.Tensor  # () int64
    labels: torch.Tensor  # (K,) float32
    ivar: torch.Tensor  # (L,) float32, 0 where masked; only from a store that keeps inverse variances


def finish_batch(batch: Batch) -> Batch:
    """Give a batch its float32 ``flux`` (masked pixels 0) and bool ``mask`` where it has none, and its ``ivar``
    (when it has one) float32 with 0 wherever the pixel is masked or the value is not a finite positive number;
    in place."""
    if "mask" not in batch:
        flux = batch["flux"].float()  # float16 ops are slow on CPUs: widen first, then work in place
        batch["mask"] = torch.isfinite(flux)  # NaN is the store's mask; ±inf must never reach the loss either
        batch["flux"] = flux.masked_fill_(~batch["mask"], 0.0)
    if "ivar" in batch:
        ivar = batch["ivar"].float()
        usable = batch["mask"] & torch.isfinite(ivar) & (ivar > 0)
        batch["ivar"] = torch.where(usable, ivar, torch.zeros_like(ivar))
    return batch
