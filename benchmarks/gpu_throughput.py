"""Full-size training and ``encode`` throughput on a GPU, fed by the real streaming DataModule.

    python benchmarks/gpu_throughput.py --out docs/benchmarks.md          # on a machine with a GPU (< 8 min, H200)
    python benchmarks/gpu_throughput.py --grid tiny --n 64 --steps 4 --device cpu   # a CPU smoke run of the script
    python benchmarks/gpu_throughput.py --compile ...    # each precision also with torch.compile'd encoder/decoder

Writes a store of ``--n`` spectra on the paper's grid (327,680 px, float16, the archive format: ``--unique``
synthetic spectra, repeated with 1 % noise so that no two rows compress alike; the generator makes ~3 full-size
spectra a second per core, too slow to draw thousands within the budget), then
times ``Trainer.fit`` of the full-size network (15 layers, latent ``--latent``) streamed from it by
``StreamingSpectraDataModule`` (``--workers`` loader processes, batch ``--batch``) in fp32 and in bf16-mixed, eager
and with ``--compile`` also compiled (inductor; the warm-up's time, compilation included, reported apart) —
spectra per second after ``--warmup`` untimed steps, and the ratio to eager fp32 in the same run — and ``encode`` of the whole store (spectra per second, the
model from the bf16 run's checkpoint). Goals (issue #19): ≥ 2,000 spectra/s/GPU training, ≥ 10,000 spectra/s encode.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

import lightning as L
import numpy as np
import torch
from report import publish

from spectra_lightning.analysis.encode import encode
from spectra_lightning.data_modules import StreamingSpectraDataModule
from spectra_lightning.ingest.synth import SynthSpec, synthesize
from spectra_lightning.model.kl_schedules import LinearWarmup
from spectra_lightning.model.losses import AbsoluteError
from spectra_lightning.model.module import SpectrumAutoencoder
from spectra_lightning.model.nets import ConvAutoencoder
from spectra_lightning.store import SpectraStore

NAMES = {"32-true": "fp32", "bf16-mixed": "bf16-mixed"}


class Clock(L.Callback):
    """Wall time from the start of step ``warmup`` to the end of the last step."""

    def __init__(self, warmup: int):
        self.warmup, self.t0, self.t1, self.spectra = warmup, None, None, 0
        self.start = 0.0

    def on_train_start(self, trainer, pl_module):
        self.start = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.warmup:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx >= self.warmup:
            self.spectra += int(batch["flux"].shape[0])
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.t1 = time.perf_counter()


def train(store: str, run: Path, a, precision: str, compiled: bool) -> tuple[float, float, Path]:
    """Spectra/s of the timed steps, seconds of the warm-up steps (compilation included), the checkpoint."""
    dm = StreamingSpectraDataModule(
        store=store,
        batch_size=a.batch,
        val_fraction=0.01,
        num_workers=a.workers,
        pin_memory=a.device != "cpu",
        shuffle_buffer=256,
    )
    dm.prepare_data()
    model = SpectrumAutoencoder(  # the paper's parts: L1 averaged over pixels, λ = 0.3
        net=ConvAutoencoder(dm.n_pixels, a.latent, a.depth),
        loss=AbsoluteError("mean"),
        kl_schedule=LinearWarmup(0.3),
        n_pixels=dm.n_pixels,
        grid=dm.grid_spec,
    )
    if compiled:  # what encode/decode call (the module never calls net.forward)
        model.net.encoder = torch.compile(model.net.encoder)
        model.net.decoder = torch.compile(model.net.decoder)
    clock = Clock(a.warmup)
    trainer = L.Trainer(
        accelerator="gpu" if a.device != "cpu" else "cpu",
        devices=1,
        precision=precision,
        max_steps=a.warmup + a.steps,
        limit_val_batches=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(run),
        callbacks=[clock],
    )
    trainer.fit(model, datamodule=dm)
    trainer.save_checkpoint(run / "model.ckpt")
    return clock.spectra / (clock.t1 - clock.t0), clock.t0 - clock.start, run / "model.ckpt"


def build_store(path: str, n: int, unique: int, grid: str) -> None:
    src = f"{path}.src"
    synthesize(src, SynthSpec(n=unique, seed=0, grid=grid), progress=False)
    base = SpectraStore.open(src)
    rows, meta = base.read(np.arange(unique)), base.meta
    rng = np.random.default_rng(0)
    with SpectraStore.create(path, base.grid) as store:
        for start in range(0, n, 64):
            idx = np.arange(start, min(start + 64, n))
            noisy = rows[idx % unique] * (1 + 0.01 * rng.standard_normal((len(idx), rows.shape[1])))
            cols = {k: v[idx % unique] for k, v in meta.items() if k not in ("id", "crc32")}
            cols["id"] = np.array([f"g{i}" for i in idx])
            cols["object"] = np.array([f"star{i}" for i in idx])
            store.append(noisy.astype(np.float32), cols)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=8192, help="spectra in the store (default %(default)s)")
    p.add_argument("--unique", type=int, default=128, help="distinct synthetic spectra in it (default %(default)s)")
    p.add_argument("--grid", default="harps", help="the store's grid (default %(default)s: full size)")
    p.add_argument("--latent", type=int, default=128)
    p.add_argument("--depth", type=int, default=15)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--steps", type=int, default=100, help="timed steps per precision")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--device", default="cuda")
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd networks")
    p.add_argument("--dir", help="where to build the store (default: a temporary folder)")
    p.add_argument("--out", help="append the section to this markdown file")
    a = p.parse_args()
    device = (
        torch.cuda.get_device_name() if a.device != "cpu" else f"CPU ({platform.machine()}, {os.cpu_count()} cores)"
    )
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        store = f"{tmp}/s.zarr"
        t0 = time.perf_counter()
        build_store(store, a.n, min(a.unique, a.n), a.grid)
        t_store = time.perf_counter() - t0
        runs = {}  # (precision, compiled): (spectra/s, warm-up s)
        for compiled in (False, True) if a.compile else (False,):
            for precision in ("32-true", "bf16-mixed"):
                rate, warm, path = train(store, Path(tmp) / f"{precision}{compiled}", a, precision, compiled)
                runs[precision, compiled] = rate, warm
                if precision == "bf16-mixed" and not compiled:
                    ckpt = path
        t0 = time.perf_counter()
        encode(ckpt, store, f"{tmp}/codes.zarr", batch_size=256, device=a.device, progress=False)
        encode_rate = a.n / (time.perf_counter() - t0)
    base = runs["32-true", False][0]
    lines = [
        f"## Full-size throughput on {device} ({date.today()})",
        "",
        f"`python benchmarks/gpu_throughput.py` with --n {a.n} --grid {a.grid} --latent {a.latent} --depth {a.depth} "
        f"--batch {a.batch} --workers {a.workers} --steps {a.steps}{' --compile' if a.compile else ''}: a float16 store of {a.unique} synthetic spectra "
        f"repeated with 1 % noise (written in {t_store:.0f} s), `StreamingSpectraDataModule` feeding `Trainer.fit` ({a.warmup} warm-up steps untimed), "
        f"then `encode` of the whole store (batch 256). torch {torch.__version__}, lightning {L.__version__}.",
        "",
        "| what | spectra/s | × eager fp32 | warm-up s | goal |",
        "|---|---|---|---|---|",
        *(
            f"| training, {NAMES[precision]}{', compiled' if compiled else ''} | {rate:.0f} | {rate / base:.2f} | "
            f"{warm:.0f} | ≥ 2,000 |"
            for (precision, compiled), (rate, warm) in runs.items()
        ),
        f"| encode (bf16-trained model, fp32 inference) | {encode_rate:.0f} | - | - | ≥ 10,000 |",
    ]
    publish(lines, a.out)


if __name__ == "__main__":
    main()
