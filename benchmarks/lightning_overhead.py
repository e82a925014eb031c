"""Lightning's overhead on the quickstart training step: ``Trainer.fit`` against a plain PyTorch loop.

    python benchmarks/lightning_overhead.py [--batches 60] [--rounds 3] [--out docs/benchmarks.md]

Three loops read the same DataLoader and train the same model, built from the recipe's YAML (quickstart +
quickstart_doppler: latent 32, depth 9, 8,192 px, squared error, plain λ·KL after a warm-up) with Adam on the same in-memory batches of 32 synthetic
spectra (float32 flux + mask, as the map-style DataModule delivers them), in one process, for ``--rounds``
rounds with the order rotating. The plain loop computes what ``SpectrumAutoencoder._shared_step`` does
(forward, masked error, KL, backward, step) and logs nothing; ``Trainer.fit`` runs (a) the module with a bare
training step (the same loss, nothing else: Lightning's own loop) and (b) the project's module as the CLI
does (its step logging, epoch means, the non-finite check); no validation, checkpoints, logger or progress
bar. The first ``--warmup`` steps of each are not timed. Overhead = time per step / the plain loop's − 1.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import tempfile
import time
from datetime import date

import lightning as L
import numpy as np
import torch
from recipe import recipe_model
from report import publish

from spectra_lightning.ingest.synth import SynthSpec, synthesize
from spectra_lightning.metrics.latent import kl_to_prior
from spectra_lightning.model.module import SpectrumAutoencoder
from spectra_lightning.store import SpectraStore, fill_masked
from spectra_lightning.store.batch import finish_batch

RECIPE = ("quickstart.yaml", "quickstart_doppler.yaml")  # the Doppler-node recipe: plain λ·KL after a warm-up


def make_batches(n_batches: int, size: int = 32) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/s.zarr"
        synthesize(path, SynthSpec(n=n_batches * size, seed=0, grid="quickstart"), progress=False)
        flux, mask = fill_masked(SpectraStore.open(path).read(np.arange(n_batches * size)))
    return [
        {
            "flux": torch.from_numpy(flux[i : i + size]),
            "mask": torch.from_numpy(mask[i : i + size]),
            "index": torch.arange(i, i + size),
        }
        for i in range(0, n_batches * size, size)
    ]


def step_loss(model: SpectrumAutoencoder, b: dict, step: int, total: int | None) -> torch.Tensor:
    """The recipe's training loss of one batch (what ``_shared_step`` computes, without its logging)."""
    recon, mu, logvar = model(b["flux"])
    kl = kl_to_prior(mu, logvar).mean(0).sum()
    return model.loss(recon, b).mean() + model.kl_schedule.term(kl, step, total)


class BareStep(SpectrumAutoencoder):
    """The module with a training step that only computes the loss: no logging, no epoch means, no
    non-finite check. ``Trainer.fit`` on it against the plain loop is Lightning's own loop; the full module
    against this is the project's per-step bookkeeping."""

    def training_step(self, batch, batch_idx):
        return step_loss(self, batch, self.global_step, self._total_steps())


def new_model(cls: type[SpectrumAutoencoder] = SpectrumAutoencoder) -> SpectrumAutoencoder:
    return recipe_model(*RECIPE, cls=cls)[0]


def plain(batches: list[dict], warmup: int) -> float:
    """Seconds per step of a hand-written loop (same math as the module's training step)."""
    model, opt, _ = recipe_model(*RECIPE)
    model.train()
    total = len(batches)
    for step, b in enumerate(torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False)):
        if step == warmup:
            t0 = time.perf_counter()
        loss = step_loss(model, finish_batch(dict(b)), step, total)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if not torch.isfinite(loss):
            raise RuntimeError("non-finite loss")
    return (time.perf_counter() - t0) / (total - warmup)


class StepClock(L.Callback):
    def __init__(self, warmup: int):
        self.warmup, self.t0, self.t1, self.steps = warmup, None, None, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.warmup:
            self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.t1, self.steps = time.perf_counter(), batch_idx + 1 - self.warmup


def lightning(batches: list[dict], warmup: int, cls: type[SpectrumAutoencoder] = SpectrumAutoencoder) -> float:
    """Seconds per step of ``Trainer.fit`` on the same batches."""
    model = new_model(cls)
    clock = StepClock(warmup)
    loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[clock],
        log_every_n_steps=20,
    )
    trainer.fit(model, train_dataloaders=loader)
    return (clock.t1 - clock.t0) / clock.steps


LOOPS = {
    "plain": ("plain PyTorch", plain),
    "bare": ("`Trainer.fit`, a bare step (loss only)", functools.partial(lightning, cls=BareStep)),
    "module": ("`Trainer.fit`, the project's module", lightning),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=60)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", help="append the section to this markdown file")
    a = p.parse_args()
    batches = make_batches(a.batches)
    names = list(LOOPS)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(a.rounds):  # rotate which goes first: a load that drifts hits all alike
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(LOOPS[name][1](batches, a.warmup))
            print(f"round {r + 1}: {name} {1e3 * times[name][-1]:.1f} ms/step", flush=True)
    best_base = min(times["plain"])

    def paired(name: str) -> float:  # each round against the plain round run next to it
        return float(np.median(np.array(times[name]) / np.array(times["plain"])))

    rows = [
        f"| {LOOPS[n][0]} | {1e3 * np.median(times[n]):.1f} | {1e3 * min(times[n]):.1f} | "
        f"{', '.join(f'{1e3 * t:.1f}' for t in times[n])} | {paired(n):.3f} | {min(times[n]) / best_base:.3f} |"
        for n in names
    ]
    lines = [
        f"## Lightning's overhead on the quickstart step ({date.today()})",
        "",
        f"`python benchmarks/lightning_overhead.py --batches {a.batches} --rounds {a.rounds}`. Machine: "
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"lightning {L.__version__}. The quickstart network on {a.batches} in-memory batches of 32 spectra; "
        f"{a.warmup} warm-up steps untimed; {a.rounds} rounds, the order rotating. The baseline is a plain PyTorch "
        "loop with the same model, batches, optimizer and loss, measured in the same run; the bare step is "
        "`Trainer.fit` on the module with a training step that only computes the loss (Lightning's own loop), "
        "the module is the project's (its step logging, epoch means, non-finite check).",
        "",
        "| loop | ms per step: median | best | rounds (ms) | ÷ plain (paired median) | ÷ plain (best) |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"Overhead of `Trainer.fit` with the project's module: {100 * (paired('module') - 1):+.1f} % (median of the "
        f"{a.rounds} paired rounds' ratios), {100 * (min(times['module']) / best_base - 1):+.1f} % best against best; "
        f"of Lightning's loop alone: {100 * (paired('bare') - 1):+.1f} % / "
        f"{100 * (min(times['bare']) / best_base - 1):+.1f} %. Target ≤ 3 %.",
    ]
    publish(lines, a.out)


if __name__ == "__main__":
    main()
