"""The ``ingest`` command: options, the summary it prints, and its exit codes."""

from __future__ import annotations

import argparse
import os
import sys

from spectra_lightning.ingest.pipeline import ingest
from spectra_lightning.ingest.placement import MIN_FLUX, MIN_USABLE
from spectra_lightning.ingest.readers import FORMAT_NAMES
from spectra_lightning.physics.grid import GRIDS
from spectra_lightning.store.spectra_store import CODECS, DEFAULT_CHUNK_ROWS, DEFAULT_CODEC

EXIT_OK, EXIT_ERROR, EXIT_REJECTS = 0, 2, 3  # documented in `ingest --help` (1 stays Python's own: a crash)
EXIT_CODES = f"""exit codes:
  {EXIT_OK}  done: every input ingested (or already present, or a duplicate of another file's spectrum)
  {EXIT_REJECTS}  done, some inputs rejected: each is listed, and kept in the store's 'rejects' attribute
  {EXIT_ERROR}  nothing done: a bad option, no input file, or no input that could be ingested (no store is
     left behind then)"""


def report(s: dict, output: str, shown: int = 20) -> None:
    """The summary of an ingest, on stdout: counts, then each rejected, duplicate, renamed and warned input."""
    print(
        f"ingested {s['ingested']} spectra into {output} ({s['n_spectra']} in the store); "
        f"{s['already_present']} already present, {s['duplicates']} duplicates of another file's spectrum, "
        f"{s['skipped']} skipped (not science spectra), {s['rejected']} rejected, {len(s['warnings'])} with warnings; "
        f"{s['files_per_s']:.1f} files/s, {s['mb_per_s']:.1f} MB/s"
    )
    sections = (
        ("rejected", s["rejects"], "{}"),
        ("skipped", s["skipped_files"], "{}"),
        ("not read", s.get("not_read", {}), "{}"),
        ("duplicate", s["duplicates_of"], "the same spectrum as {}, stored once"),
        ("renamed", s["renamed"], "stored as {} (another spectrum has its name)"),
        ("warning", s["warnings"], "{}"),
    )
    for label, entries, text in sections:
        for path, value in list(entries.items())[:shown]:
            print(f"  {label} {path}: {text.format(value)}")
        if len(entries) > shown:
            print(f"  ... and {len(entries) - shown} more {label} (store attribute 'last_ingest' counts them)")
    if s["unmatched_labels"]:
        print(
            f"  {len(s['unmatched_labels'])} label rows matched no spectrum: {', '.join(s['unmatched_labels'][:5])}"
            + (" ..." if len(s["unmatched_labels"]) > 5 else "")
        )


def parser() -> argparse.ArgumentParser:
    """The ``ingest`` command's options (its help names every format and grid it knows)."""
    p = argparse.ArgumentParser(
        prog="python -m spectra_lightning ingest",
        description=f"Put FITS spectra on a grid in a store: {FORMAT_NAMES}.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="FITS files (optionally .gz), directories or globs")
    p.add_argument("--output", required=True, help="store to create or extend (path or URL)")
    p.add_argument(
        "--labels",
        help="CSV joined on id / file / miles_id / object (its columns become metadata), or "
        "MILES_params.db as sdss-mangadap ships it; cells follow the rules of `analyze --help`",
    )
    p.add_argument(
        "--labels-text",
        action="append",
        default=[],
        metavar="COL",
        help="keep this label column as text even where its cells are numbers (repeatable)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=max(1, (os.cpu_count() or 2) - 1),
        help="reading processes; the main process writes (default %(default)s)",
    )
    p.add_argument(
        "--grid",
        default="harps",
        help=f"a named grid ({', '.join(GRIDS)}; harps: the paper's, the default) or an explicit one: "
        "START:STOP:STEP[:LENGTH] in Å (linear, air), e.g. 3540.5:7409.6:0.9, or log:START:STOP:STEP[:LENGTH] with "
        "STEP in dex (vacuum); :air or :vacuum at the end says the medium",
    )
    p.add_argument(
        "--min-flux",
        type=float,
        default=MIN_FLUX,
        help="flag (meta/low_flux) spectra in detector counts (ADP, s1d, e2ds) whose raw median is below "
        "this (default %(default)s, the paper's); normalised or calibrated spectra are never flagged",
    )
    p.add_argument(
        "--min-usable",
        type=float,
        default=MIN_USABLE,
        help="reject a spectrum when fewer of its pixels than this fraction are usable (finite flux and, where the "
        "file gives one, inverse variance > 0; default %(default)s)",
    )
    p.add_argument(
        "--dtype",
        default="float16",
        choices=["float16", "float32"],
        help="the stored flux of a new store: float16 (the archive format, half the bytes) or float32 "
        "(default %(default)s)",
    )
    p.add_argument(
        "--codec",
        default=DEFAULT_CODEC,
        choices=list(CODECS),
        help="compression of a new store (default lz4: fastest to stream; zstd ~8%% smaller)",
    )
    p.add_argument(
        "--batch",
        type=int,
        default=16 * DEFAULT_CHUNK_ROWS,
        help="spectra per committed append (default %(default)s; each append rewrites the metadata)",
    )
    p.add_argument(
        "--ivar",
        choices=["auto", "yes", "no"],
        default="auto",
        help="a new store keeps each pixel's inverse variance from the files that have it (the survey formats); "
        "auto: on a logarithmic grid (docs/store-format.md)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str]) -> int:
    """The ``ingest`` command (exit codes: :data:`EXIT_CODES`)."""
    p = parser()
    a = p.parse_args(argv)
    if a.workers < 1:
        p.error(f"--workers must be at least 1, got {a.workers}")
    try:
        s = ingest(
            a.inputs,
            a.output,
            a.grid,
            a.workers,
            a.labels,
            a.min_flux,
            a.dtype,
            a.codec,
            progress=not a.quiet,
            batch=a.batch,
            labels_text=tuple(a.labels_text),
            ivar={"auto": None, "yes": True, "no": False}[a.ivar],
            min_usable=a.min_usable,
        )
    except (OSError, ValueError) as e:
        print(f"ingest: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    report(s, a.output)
    if s.get("store_removed"):
        print(f"ingest: error: no input could be ingested: no store written at {a.output}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_REJECTS if s["rejects"] else EXIT_OK
