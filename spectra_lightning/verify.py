"""``verify``: check a store's rows against their checksums and its ids for duplicates."""

from __future__ import annotations

import argparse
import json
import sys

from .store import SpectraStore, StoreError, row_ranges, verify


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m spectra_lightning verify",
        description="Check every committed spectrum of a store: that every array has every chunk its rows need, "
        "that every flux chunk decodes, each row's flux against the CRC-32 written with its metadata (a row "
        "whose flux does not belong to its id fails), duplicate ids, and the store's shape; every problem is "
        "listed. Exit code 0 when consistent, 1 when not, 2 when the store cannot be opened.",
    )
    p.add_argument("store", help="store path or fsspec URL")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    try:
        result = verify(SpectraStore.open(a.store), progress=not a.quiet)
    except (StoreError, OSError) as e:
        print(f"verify: error: {e}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(result, indent=1))
        return 0 if result["ok"] else 1
    unchecked = result["unchecked"] - len(result["missing_checksums"])
    print(
        f"{a.store}: {result['n_spectra']} spectra, {result['checked']} checked against their checksums"
        + (f", {unchecked} without a checksum (written before checksums existed)" if unchecked else "")
    )
    for c in result["missing_chunks"]:
        print(f"  {c['array']}: chunk {c['chunk']} (rows {c['rows'][0]}-{c['rows'][1]}) is missing")
    for c in result["damaged_chunks"]:
        print(
            f"  {c['array']}: chunk {c['chunk']} (rows {c['rows'][0]}-{c['rows'][1]}) cannot be decoded ({c['error']})"
        )
    if result["missing_checksums"]:
        print(f"  rows {row_ranges(result['missing_checksums'])} have no checksum in a store written with checksums")
    for m in result["mismatched"]:
        print(f"  row {m['row']} (id {m['id']}): flux does not match its checksum")
    for key, rows in result["duplicate_ids"].items():
        print(f"  id {key} appears in rows {', '.join(map(str, rows))}")
    if result["ok"]:
        print("consistent")
        return 0
    counts = {
        "missing chunks": len(result["missing_chunks"]),
        "undecodable chunks": len(result["damaged_chunks"]),
        "rows without their checksum": len(result["missing_checksums"]),
        "rows with foreign flux": len(result["mismatched"]),
        "duplicated ids": len(result["duplicate_ids"]),
    }
    print("INCONSISTENT: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v))
    return 1
