"""Check a store whole: every chunk its rows need, every row against its CRC-32, duplicate ids (:func:`verify`), and
the ``verify`` command."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import zarr

from spectra_lightning.common.progress import progress as progress_of
from spectra_lightning.store.spectra_store import (
    SpectraStore,
    StoreError,
    error_text,
    expected_keys,
    row_checksums,
    row_ranges,
    stored_keys,
)


def _checked_block(
    store: SpectraStore, name: str, array: zarr.Array, sums: np.ndarray, start: int, stop: int
) -> tuple[list[dict], list[int]]:
    """Rows ``start..stop-1`` of ``array`` (``flux`` or ``ivar``): its chunks that do not decode, and the rows of
    the readable ones whose bytes do not match ``sums`` (their CRC-32; < 0: none recorded)."""
    try:
        rows = np.asarray(array[start:stop])
        index = np.arange(start, stop)
        bad: list[dict] = []
    except Exception:
        bad = store.damaged_chunks(np.arange(start, stop), name)
        skip = np.zeros(stop - start, bool)
        for d in bad:
            skip[d["rows"][0] - start : d["rows"][1] - start + 1] = True
        index = start + np.flatnonzero(~skip)
        if not len(index):
            return bad, []
        rows = np.asarray(array.oindex[index, :])  # the block's readable chunks
    have = sums[index]
    known = have >= 0
    got = row_checksums(rows[known])
    return bad, [int(index[known][j]) for j in np.flatnonzero(got != have[known])]


def verify(store: SpectraStore, block: int = 256, progress: bool = False) -> dict:
    """Check a store as far as it can be read, listing every problem rather than stopping at the first.

    - every array (flux and each ``meta/<name>``) has every chunk its committed rows need (a lost chunk
      otherwise reads back as fill values);
    - every flux chunk decodes, and every committed row's flux matches its CRC-32;
    - a store made with checksums (attribute ``checksums``) has one for every row;
    - ids are unique.

    Returns ``{"n_spectra", "checked", "unchecked", "mismatched": [{"row", "id"}], "missing_chunks": [{"array",
    "chunk", "rows"}], "damaged_chunks": [{"array", "chunk", "rows", "error"}], "missing_checksums": [rows],
    "duplicate_ids": {id: [rows]}, "ok"}``; ``unchecked`` rows have no checksum (written before checksums
    existed; in a store with the ``checksums`` attribute they are ``missing_checksums`` too).
    """

    n = store.n
    missing, damaged = [], []
    arrays = {"flux": store.flux, **{f"meta/{k}": a for k, a in store.meta_group.arrays()}}
    if store.ivar is not None:
        arrays["ivar"] = store.ivar
    for name, arr in arrays.items():
        have = stored_keys(arr)
        for key, (a, b) in expected_keys(arr, n).items():
            if key not in have:
                missing.append({"array": name, "chunk": key, "rows": [a, b]})
    meta = {}
    for name, arr in store.meta_group.arrays():
        try:
            meta[name] = arr[:n]
        except Exception as e:
            damaged.append({"array": f"meta/{name}", "chunk": "?", "rows": [0, n - 1], "error": error_text(e)})
    ids = np.asarray(meta.get("id", np.arange(n)), dtype=object).astype(str)
    crc = np.asarray(meta.get("crc32", np.full(n, -1)), dtype=np.int64)
    mismatched: list[dict] = []
    step = max(block, store.flux.chunks[0])
    step -= step % store.flux.chunks[0]
    checked = [("flux", store.flux, crc)]
    if store.ivar is not None:  # the inverse variances: decodable, and as committed (meta/ivar_crc32)
        checked.append(("ivar", store.ivar, np.asarray(meta.get("ivar_crc32", np.full(n, -1)), dtype=np.int64)))
    for name, array, sums in checked:
        blocks = progress_of(range(0, n, step), desc=f"verify {name}", unit="block", enabled=progress)
        for start in blocks:
            bad, rows_at = _checked_block(store, name, array, sums, start, min(start + step, n))
            damaged += bad
            for row in rows_at:
                mismatched.append({"row": row, "id": str(ids[row])} | ({"array": name} if name != "flux" else {}))
    missing_crc = np.flatnonzero(crc < 0).tolist() if store.attrs.get("checksums") else []
    unique, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    duplicate_ids = {str(unique[k]): np.flatnonzero(inverse == k).tolist() for k in np.flatnonzero(counts > 1)}
    return {
        "n_spectra": n,
        "checked": int((crc >= 0).sum()),
        "unchecked": int((crc < 0).sum()),
        "mismatched": mismatched,
        "missing_chunks": missing,
        "damaged_chunks": damaged,
        "missing_checksums": missing_crc,
        "duplicate_ids": duplicate_ids,
        "ok": not (mismatched or duplicate_ids or missing or damaged or missing_crc),
    }


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
