"""Store layouts for streaming: rows per chunk, with and without shards, in the same run.

    python benchmarks/chunk_layout.py [--n 256] [--out docs/benchmarks.md]

Writes ``--n`` full-length spectra (the real spectra in ``../shared/data/real``, ingested, then
repeated with 1 % noise) as float16 Blosc-lz4 arrays in several layouts and times reading them in
64-row blocks (what the streaming DataModule does), against a float32 memmap copy of the same rows.
Warm page cache: this measures decode cost, not the disk.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import zarr
from report import publish

from spectra_lightning.ingest.pipeline import ingest
from spectra_lightning.store import SpectraStore

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
LAYOUTS = [(1, 64), (8, 64), (16, 64), (8, None), (16, None), (32, None), (64, None)]  # (chunk rows, shard rows)


def rows(tmp: Path, n: int) -> np.ndarray:
    ingest([str(REAL / "harps"), str(REAL / "other")], str(tmp / "real.zarr"), workers=2, progress=False)
    real = SpectraStore.open(tmp / "real.zarr")
    base = real.read(np.arange(real.n)).astype(np.float32)
    noise = 1 + 0.01 * np.random.default_rng(0).standard_normal((n, base.shape[1]))
    return (base[np.arange(n) % len(base)] * noise).astype(np.float16)


def rate(read, n: int, repeats: int = 3) -> float:
    read(0)
    t = time.perf_counter()
    for _ in range(repeats):
        for s in range(0, n, 64):
            read(s)
    return repeats * n / (time.perf_counter() - t)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = rows(tmp, a.n)
        n, length = data.shape
        mm = np.lib.format.open_memmap(tmp / "m.npy", mode="w+", dtype=np.float32, shape=data.shape)
        mm[:] = data.astype(np.float32)
        mm.flush()
        mm = np.load(tmp / "m.npy", mmap_mode="r")
        base = rate(lambda s: np.array(mm[s : s + 64]), n)
        lines = [
            f"## Store layouts: rows per chunk ({date.today()})",
            "",
            f"Machine: {platform.machine()}, {os.cpu_count()} cores. {n} real-based spectra × {length:,} px, "
            "float16 Blosc-lz4 (bit-shuffle), read in 64-row blocks; float32 memmap of the same rows in the same run.",
            "",
            "| layout | spectra/s | ÷ memmap | ÷ 1-row chunks in 64-row shards |",
            "|---|---|---|---|",
            f"| np.memmap float32 | {base:.0f} | 1.00 | — |",
        ]
        first = None
        for chunk, shard in LAYOUTS:
            name = f"{chunk}-row chunks" + (f" in {shard}-row shards" if shard else "")
            arr = zarr.open_group(str(tmp / f"{chunk}_{shard}.zarr"), mode="w").create_array(
                "flux",
                shape=data.shape,
                dtype="float16",
                chunks=(chunk, length),
                shards=(shard, length) if shard else None,
                fill_value=np.nan,
                compressors=zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle"),
            )
            arr[:] = data
            r = rate(lambda s: arr[s : s + 64], n)
            first = first or r
            lines.append(f"| {name} | {r:.0f} | {r / base:.2f} | {r / first:.2f} |")
            print(lines[-1], flush=True)
    publish(lines, a.out)


if __name__ == "__main__":
    main()
