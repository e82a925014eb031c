"""Streaming from an S3 server against the same store on local disk, in one run.

Starts moto's S3 server on loopback (the ``[s3]`` extra and ``moto[server]``), writes one synthetic store
to local disk, uploads its files unchanged to a bucket, then times one training epoch of
``StreamingSpectraDataModule`` from each (batch 32; 0 and 2 loader workers), and the raw GETs of every
object in the store (the server's ceiling). Appends a section to docs/benchmarks.md with ``--out``.

    python benchmarks/s3_streaming.py --out docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import s3fs
from report import publish

from spectra_lightning.data_modules import StreamingSpectraDataModule
from spectra_lightning.ingest.synth import SynthSpec, synthesize
from spectra_lightning.store import SpectraStore


def start_server() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    url = f"http://127.0.0.1:{port}"
    os.environ.update(
        AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
    )
    return server, url


def epoch_rate(store: str, workers: int, rounds: int) -> tuple[float, int]:
    """Best spectra/s over ``rounds`` training epochs (the first one untimed: page cache, connections)."""
    dm = StreamingSpectraDataModule(
        store=store, batch_size=32, val_fraction=0.0, num_workers=workers, shuffle_buffer=256, labels=[]
    )
    dm.setup("fit")
    loader = dm.train_dataloader()
    best, n = float("inf"), 0
    for r in range(rounds + 1):
        t = time.perf_counter()
        n = sum(int(b["flux"].shape[0]) for b in loader)
        if r:
            best = min(best, time.perf_counter() - t)
    return n / best, n


def raw_get_rate(fs: s3fs.S3FileSystem, prefix: str) -> tuple[float, int]:
    """MB/s of fetching every object under ``prefix`` with one concurrent ``cat`` (and the bytes)."""
    keys = fs.find(prefix)
    t = time.perf_counter()
    blobs = fs.cat(keys)
    size = sum(len(b) for b in blobs.values())
    return size / 1e6 / (time.perf_counter() - t), size


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1024, help="spectra in the store")
    p.add_argument("--grid", default="quickstart", help="a named grid (harps: the paper's 327,680 px)")
    p.add_argument("--rounds", type=int, default=2, help="timed epochs per reader (best kept)")
    p.add_argument("--out", help="append the section to this markdown file")
    a = p.parse_args()
    server, endpoint = start_server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "s.zarr"
            synthesize(str(local), SynthSpec(n=a.n, seed=0, grid=a.grid), progress=False)
            fs = s3fs.S3FileSystem(skip_instance_cache=True)
            fs.mkdir("bench")
            fs.put(str(local), "bench/s.zarr", recursive=True)
            remote = "s3://bench/s.zarr"
            store = SpectraStore.open(remote)
            length, chunk = store.flux.shape[1], store.block_rows
            mb = sum(f.stat().st_size for f in local.rglob("*") if f.is_file()) / 1e6
            rows = []
            for workers in (0, 2):
                for name, path in (("local disk", str(local)), ("S3 (moto, loopback)", remote)):
                    rate, n = epoch_rate(path, workers, a.rounds)
                    rows.append((name, workers, rate, n))
            get_mb_s, size = raw_get_rate(fs, "bench/s.zarr")
    finally:
        server.kill()
        server.wait()
    base = {w: r for name, w, r, _ in rows if name == "local disk"}
    lines = [
        f"## Streaming from S3 vs local disk ({date.today()})",
        "",
        f"`python benchmarks/s3_streaming.py --n {a.n} --grid {a.grid}`. Machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, s3fs {s3fs.__version__}. One store of {a.n} "
        f"synthetic spectra × {length:,} px (float16, lz4, {chunk}-row chunks; {mb:.1f} MB on disk), uploaded "
        "unchanged to a bucket of moto's S3 server on loopback (endpoint from `AWS_ENDPOINT_URL`). One training "
        f"epoch of `StreamingSpectraDataModule` (batch 32), best of {a.rounds} after one untimed; the local "
        "store, measured in the same run, is the baseline.",
        "",
        "| source | loader workers | spectra/s | ÷ local disk |",
        "|---|---|---|---|",
        *(f"| {name} | {w} | {r:.0f} | {r / base[w]:.2f} |" for name, w, r, _ in rows),
        "",
        f"Raw GETs of the store's {size / 1e6:.1f} MB from the same server, all objects in one concurrent "
        f"`cat`: {get_mb_s:.0f} MB/s, i.e. at most ≈ {get_mb_s * 1e6 / (size / a.n):.0f} spectra/s of this size "
        "before any decoding.",
    ]
    publish(lines, a.out)


if __name__ == "__main__":
    main()
