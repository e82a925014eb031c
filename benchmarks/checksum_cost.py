"""What checking every row read against its CRC-32 costs, against a training step, in one run.

Reads whole chunks of a quickstart-grid store (8,192 px) and of a HARPS-grid store (327,680 px) through
``SpectraStore.read_block`` with ``check_checksums`` on and off, alternating rounds; the baseline is a
quickstart training step (forward, backward, Adam) on a batch of 16 timed in the same run.

    python benchmarks/checksum_cost.py --out docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from datetime import date

import numpy as np
import torch
from lightning_overhead import make_batches, new_model, step_loss
from report import publish

from spectra_lightning.ingest.synth import SynthSpec, synthesize
from spectra_lightning.store import SpectraStore
from spectra_lightning.store.batch import finish_batch


def read_seconds(store: SpectraStore, check: bool) -> float:
    """Seconds per spectrum to read (and check) every chunk of ``store``."""
    store.check_checksums = check
    block = store.block_rows
    t = time.perf_counter()
    for start in range(0, store.n, block):
        store.read_block(start, min(start + block, store.n))
    return (time.perf_counter() - t) / store.n


def step_seconds(steps: int) -> float:
    batches = make_batches(steps + 2, size=16)
    model = new_model().train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for i, b in enumerate(batches):
        if i == 2:
            t = time.perf_counter()
        loss = step_loss(model, finish_batch(dict(b)), 1.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--out", help="append the result to this markdown file")
    a = p.parse_args()
    step = step_seconds(a.steps)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for grid, n in (("quickstart", 512), ("harps", 64)):
            path = f"{tmp}/{grid}.zarr"
            synthesize(path, SynthSpec(n=n, seed=0, grid=grid), progress=False)
            store = SpectraStore.open(path)
            read_seconds(store, True)  # warm the file cache
            runs = {True: [], False: []}
            for _ in range(a.rounds):
                for check in (False, True):
                    runs[check].append(read_seconds(store, check))
            rows[grid] = (store.grid.length, statistics.median(runs[False]), statistics.median(runs[True]))
    lines = [
        f"## Checking rows against their CRC-32 on read ({date.today().isoformat()})",
        "",
        f"`python benchmarks/checksum_cost.py --rounds {a.rounds}`. Machine: {platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, Python {platform.python_version()}. Whole chunks read through "
        "`SpectraStore.read_block` (float16, lz4), medians of alternating rounds; the baseline is a quickstart "
        f"training step on 16 spectra in the same run: {step * 1e3:.1f} ms.",
        "",
        "| grid | px | read ms/spectrum, unchecked | checked | checked ÷ unchecked | "
        "CRC of 16 spectra ÷ the quickstart step |",
        "|---|---|---|---|---|---|",
    ]
    for grid, (length, off, on) in rows.items():
        crc = max(on - off, 0.0)
        lines.append(
            f"| {grid} | {length:,} | {off * 1e3:.3f} | {on * 1e3:.3f} | {on / off:.2f} | {16 * crc / step:.2%} |"
        )
    lines += [
        "",
        "The check runs where the rows are read (the DataLoader workers), beside the step. On the quickstart grid it is a "
        "fraction of a percent of a step; on the full HARPS grid it is the CRC of 655 kB per spectrum, paid per loader worker: "
        "`check_checksums: false` in the data settings turns it off where the loader is the bottleneck.",
    ]
    publish(lines, a.out)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
