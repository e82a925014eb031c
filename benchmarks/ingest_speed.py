"""Ingest rate vs a bare astropy read loop over the same files, in the same run.

    python benchmarks/ingest_speed.py [--copies 300] [--out docs/benchmarks.md]

Makes a directory of ``--copies`` files by copying the real HARPS 1-D spectra in
``../shared/data/real/harps`` (ADP, s1d, normalised 1-D) under new ids (``ARCFILE`` rewritten,
new file names, the flux scaled by 1 + 1e-4·k so that each copy is another spectrum), and a second one of copies of the ESO Phase-3 ADP file alone (the archive
product the paper used), then times on each

* baseline: a loop that opens each file with astropy and reads it: every HDU's header
  (astropy parses all its cards on first access; ingest needs the metadata) and data;
* ingest's own reader alone (``read``: the data and only the header cards it uses), to show
  how much of ingest's rate is its reading;
* ``ingest`` at 1 and 2 workers onto the HARPS grid into a fresh store (after a warm-up ingest of
  8 files, so that loading the compiled kernels, once per process, is not timed).

Target: ingest files/s ≥ 0.8 × bare-read files/s per worker.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from astropy.io import fits
from report import publish

from spectra_lightning.ingest.pipeline import expand_inputs, ingest
from spectra_lightning.ingest.readers import read
from spectra_lightning.physics import grid_kernel

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "harps"
BARE = ("bare astropy read (1 process)", 1)  # (row name, workers)
OWN = ("ingest's reader alone (1 process)", 1)


def make_copies(dst: Path, copies: int, adp_only: bool = False) -> list[Path]:
    sources = [p for p in sorted(REAL.rglob("*.fits")) if "ccf" not in p.parts and "e2ds" not in p.parts]
    if adp_only:
        sources = [p for p in sources if p.name.startswith("ADP.")]
    dst.mkdir()
    out = []
    for i in range(copies):
        src = sources[i % len(sources)]
        target = dst / f"bench_{i:05d}_{src.name}"
        with fits.open(src) as h:
            h[0].header["ARCFILE"] = f"BENCH.{i:05d}.fits"
            # a different spectrum each (ingest stores a spectrum copied under another name once)
            table = next((hdu for hdu in h[1:] if isinstance(hdu, fits.BinTableHDU)), None)
            if table is not None:
                table.data["FLUX"] = table.data["FLUX"] * np.float32(1 + 1e-4 * (i + 1))
            else:
                h[0].data = (h[0].data * (1 + 1e-4 * (i + 1))).astype(h[0].data.dtype)
            h.writeto(target)
        out.append(target)
    return out


def bare_read(paths: list[Path]) -> None:
    for p in paths:
        with fits.open(p, memmap=False) as h:
            for hdu in h:
                len(hdu.header)
                if hdu.data is not None:
                    if isinstance(hdu, fits.BinTableHDU):
                        for name in hdu.columns.names:
                            np.asarray(hdu.data[name])
                    else:
                        np.asarray(hdu.data)


def own_read(paths: list[Path]) -> None:
    for p in paths:
        read(p)[0]


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (ingest's worker processes)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--copies", type=int, default=300)
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds; medians are reported")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    if not REAL.exists():
        raise SystemExit(f"needs the real spectra at {REAL}")
    lines = [
        f"## Ingest rate ({date.today()})",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numba kernels {'on' if grid_kernel.available else 'off'}. HARPS grid (327,680 px), float16 lz4 "
        f"store. Bare read and ingest alternate in {a.repeats} rounds; medians. CPU = this process and its "
        "worker processes, per file.",
        "",
        "| input | run | files/s | MB/s | CPU ms/file | files/s per worker ÷ bare read |",
        "|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for label, copies, adp_only in (
            (f"{a.copies} HARPS 1-D files (ADP, s1d, normalised)", a.copies, False),
            (f"{a.copies // 2} ADP files", a.copies // 2, True),
        ):
            src = tmp / ("adp" if adp_only else "mixed")
            make_copies(src, copies, adp_only)
            paths = expand_inputs([str(src)])[0]
            mb = sum(q.stat().st_size for q in paths) / 1e6
            bare_read(paths[:10])  # warm the page cache and imports
            ingest([str(q) for q in paths[:8]], str(tmp / "warm.zarr"), progress=False)  # compiled kernels loaded
            shutil.rmtree(tmp / "warm.zarr")
            runs: dict[tuple[str, int], list[tuple[float, float]]] = {}
            for _ in range(a.repeats):
                for row, read in ((BARE, bare_read), (OWN, own_read)):
                    c, t = cpu_seconds(), time.perf_counter()
                    read(paths)
                    runs.setdefault(row, []).append((time.perf_counter() - t, cpu_seconds() - c))
                for workers in (1, 2):
                    out = tmp / f"store{workers}.zarr"
                    c, t = cpu_seconds(), time.perf_counter()
                    s = ingest([str(src)], str(out), workers=workers, progress=False)
                    runs.setdefault((f"ingest --workers {workers}", workers), []).append(
                        (time.perf_counter() - t, cpu_seconds() - c)
                    )
                    assert s["ingested"] == len(paths), s
                    shutil.rmtree(out)
            base = float(np.median([el for el, _ in runs[BARE]]))
            for (name, workers), rs in runs.items():
                el, cpu = float(np.median([r[0] for r in rs])), float(np.median([r[1] for r in rs]))
                rate = len(paths) / el
                ratio = "—" if (name, workers) == BARE else f"{rate / workers / (len(paths) / base):.2f}"
                lines.append(
                    f"| {label} ({mb:.0f} MB) | {name} | {rate:.1f} | {mb / el:.1f} | "
                    f"{1e3 * cpu / len(paths):.1f} | {ratio} |"
                )
                print(lines[-1], flush=True)
            shutil.rmtree(src)
    publish(lines, a.out)


if __name__ == "__main__":
    main()
