"""``verify``: check a store's rows against their checksums and its ids for duplicates."""

from __future__ import annotations

import argparse
import json
import sys

from .store import SpectraStore, StoreError, verify


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m spectra_lightning verify",
        description="Check every committed spectrum of a store: its flux against the CRC-32 written with its "
        "metadata (a row whose flux does not belong to its id fails), duplicate ids, and the "
        "store's shape. Exit code 0 when consistent, 1 when not, 2 when the store cannot be opened.",
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
    else:
        print(
            f"{a.store}: {result['n_spectra']} spectra, {result['checked']} checked against their checksums"
            + (
                f", {result['unchecked']} without a checksum (written before checksums existed)"
                if result["unchecked"]
                else ""
            )
        )
        for m in result["mismatched"]:
            print(f"  row {m['row']} (id {m['id']}): flux does not match its checksum")
        for key, rows in result["duplicate_ids"].items():
            print(f"  id {key} appears in rows {', '.join(map(str, rows))}")
        print(
            "consistent"
            if result["ok"]
            else f"INCONSISTENT: {len(result['mismatched'])} rows with foreign flux, "
            f"{len(result['duplicate_ids'])} duplicated ids"
        )
    return 0 if result["ok"] else 1
