"""Lightning's overhead on the quickstart training step: ``Trainer.fit`` against a plain PyTorch loop.

    python benchmarks/lightning_overhead.py [--batches 60] [--rounds 3] [--out docs/benchmarks.md]

Both loops read the same DataLoader and train the quickstart network (latent 32, depth 9, 8,192 px, Gaussian loss, Doppler node, λ with its
warm-up) with Adam on the same in-memory batches of 32 synthetic spectra (float32 flux + mask, as the map-style
DataModule delivers them), in one process, alternating for ``--rounds`` rounds. The plain loop does what
``SpectrumAutoencoder._shared_step`` computes (forward, masked error, KL, backward, step) and logs nothing;
``Trainer.fit`` runs the module as the CLI does (its step logging, the non-finite check), without validation,
checkpoints, a logger or a progress bar. The first ``--warmup`` steps of each are not timed. Overhead =
Trainer's time per step / the plain loop's − 1.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from datetime import date

import lightning as L
import numpy as np
import torch
from report import publish

from spectra_lightning.batch import finish_batch
from spectra_lightning.grid import GRIDS
from spectra_lightning.module import SpectrumAutoencoder, kl_divergence, masked_error
from spectra_lightning.store import SpectraStore, fill_masked
from spectra_lightning.synth import SynthSpec, synthesize

QUICKSTART = {
    "latent_dim": 32,
    "depth": 9,
    "reconstruction": "gaussian",
    "noise_scale": 0.02,
    "doppler_node": 0,
    "doppler_scale": 30.0,
    "kl_weight": 60.0,
    "kl_warmup_steps": 0.3,
    "normalisation": "sum",
    "lr": 1e-3,
}


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


def new_model() -> SpectrumAutoencoder:
    torch.manual_seed(0)
    grid = GRIDS["quickstart"]
    return SpectrumAutoencoder(n_pixels=grid.length, grid=grid.describe(), **QUICKSTART)


def plain(batches: list[dict], warmup: int) -> float:
    """Seconds per step of a hand-written loop (same math as the module's training step)."""
    model = new_model().train()
    opt = torch.optim.Adam(model.parameters(), lr=QUICKSTART["lr"])
    total, warm = len(batches), int(0.3 * len(batches))
    h = model.hparams
    for step, b in enumerate(torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False)):
        if step == warmup:
            t0 = time.perf_counter()
        b = finish_batch(dict(b))
        recon, mu, logvar = model(b["flux"])
        rec = masked_error(recon, b["flux"], b["mask"].float(), h.normalisation, h.reconstruction, h.noise_scale).mean()
        kl = kl_divergence(mu, logvar).mean(0).sum()
        loss = rec + QUICKSTART["kl_weight"] * min(step / warm, 1.0) * kl
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


def lightning(batches: list[dict], warmup: int) -> float:
    """Seconds per step of ``Trainer.fit`` on the same batches."""
    model = new_model()
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=60)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", help="append the section to this markdown file")
    a = p.parse_args()
    batches = make_batches(a.batches)
    times: dict[str, list[float]] = {"plain": [], "lightning": []}
    for r in range(a.rounds):  # alternate which goes first: a load that drifts hits both alike
        order = ("plain", "lightning") if r % 2 == 0 else ("lightning", "plain")
        for name in order:
            times[name].append(plain(batches, a.warmup) if name == "plain" else lightning(batches, a.warmup))
    base, lit = float(np.median(times["plain"])), float(np.median(times["lightning"]))
    best_base, best_lit = min(times["plain"]), min(times["lightning"])
    paired = float(np.median(np.array(times["lightning"]) / np.array(times["plain"])))  # each round against its pair
    lines = [
        f"## Lightning's overhead on the quickstart step ({date.today()})",
        "",
        f"`python benchmarks/lightning_overhead.py --batches {a.batches} --rounds {a.rounds}`. Machine: "
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"lightning {L.__version__}. The quickstart network on {a.batches} in-memory batches of 32 spectra; "
        f"{a.warmup} warm-up steps untimed; medians of {a.rounds} alternating rounds. The baseline is a plain PyTorch "
        "loop with the same model, batches, optimizer and loss, measured in the same run.",
        "",
        "| loop | ms per step: median | best | rounds (ms) | ÷ plain (median) | ÷ plain (best) |",
        "|---|---|---|---|---|---|",
        f"| plain PyTorch | {1e3 * base:.1f} | {1e3 * best_base:.1f} | "
        f"{', '.join(f'{1e3 * t:.1f}' for t in times['plain'])} | 1.000 | 1.000 |",
        f"| `Trainer.fit` | {1e3 * lit:.1f} | {1e3 * best_lit:.1f} | "
        f"{', '.join(f'{1e3 * t:.1f}' for t in times['lightning'])} | {lit / base:.3f} | {best_lit / best_base:.3f} |",
        "",
        f"Overhead: {100 * (paired - 1):+.1f} % as the median of the {a.rounds} paired rounds' ratios (each Lightning "
        "round against the plain round run next to it: the estimate least moved by a load that comes and goes), "
        f"{100 * (lit / base - 1):+.1f} % on medians, {100 * (best_lit / best_base - 1):+.1f} % best against best; "
        "target ≤ 3 %.",
    ]
    publish(lines, a.out)


if __name__ == "__main__":
    main()
