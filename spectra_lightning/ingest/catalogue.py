"""An external label table joined at ingest (a CSV, or MILES_params.db as sdss-mangadap ships it), on spectrum
id, file name, MILES id or object name; its columns become the store's ``meta/<column>``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from spectra_lightning.ingest.label_table import LabelTable, LabelTableError, read_csv

_MILES_ID = re.compile(r"(?:^|_)m(\d{4})V?$")
MILES_MISSING = (99999.0, 9999.0)  # MILES_params.db's "no value" for Teff and for logg / [Fe/H]


def miles_id(spectrum_id: str) -> str:
    """``MILES_res2.50_star_m0001V`` (a MILES file's id) -> ``m0001``; "" for other ids."""
    m = _MILES_ID.search(str(spectrum_id))
    return f"m{m.group(1)}" if m else ""


def read_miles_params(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """The MILES parameter table as sdss-mangadap ships it (``MILES_params.db``: ``#`` comments, then
    ``NNNN Teff logg [Fe/H]`` per star, 99999 / 9999 for no value) -> ``(header, rows)`` keyed by ``miles_id``."""
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if not parts or line.lstrip().startswith("#"):
            continue
        if len(parts) != 4 or not parts[0].isdigit():
            raise ValueError(f"MILES parameter table: unexpected line {line.strip()!r} (want: NNNN Teff logg [Fe/H])")
        values = [("" if float(v) in MILES_MISSING else v) for v in parts[1:]]
        rows.append({"miles_id": f"m{int(parts[0]):04d}", "teff": values[0], "logg": values[1], "feh": values[2]})
    return ["miles_id", "teff", "logg", "feh"], rows


class IngestLabels:
    """An external label table (:class:`~spectra_lightning.ingest.label_table.LabelTable`, its rules) joined on spectrum
    id, file name, MILES id or object name; its columns are stored as ``meta/<column>``."""

    KEYS = ("id", "spectrum_id", "dp_id", "arcfile", "file", "miles_id", "object")

    def __init__(self, path: str | Path, text: tuple[str, ...] = ()):
        try:
            with open(path, encoding="utf-8-sig", newline="") as f:
                content = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise LabelTableError(
                f"{path}: cannot read the label table ({getattr(e, 'strerror', None) or e})"
            ) from None
        # MILES_params.db as sdss-mangadap ships it: its 99999 / 9999 are its "no value"
        miles = content.lstrip().startswith("#MILES")
        parsed = read_miles_params(content) if miles else read_csv(path, content)[:2]
        self.table = LabelTable(path, self.KEYS, text, self._norm, rows=parsed)
        self.table.require_key(self.KEYS)
        self.matched: set[int] = set()

    @staticmethod
    def _norm(key: str, value: str) -> str:
        value = value.strip()
        if key == "miles_id":
            return miles_id(value) or value
        if key in ("file", "arcfile"):
            value = Path(value).name
            for ext in (".gz", ".fits"):
                value = value[: -len(ext)] if value.endswith(ext) else value
        return value

    def match(self, meta: dict) -> int | None:
        """The table row of a spectrum (``meta``: its id, source and object), marked as matched; None if none."""
        i = self.table.row_of(
            {
                "id": meta["id"],
                "spectrum_id": meta["id"],
                "dp_id": meta["id"],
                "arcfile": meta["id"],
                "file": self._norm("file", meta["source"]),
                "object": meta["object"],
                "miles_id": miles_id(meta["id"]),
            }
        )
        if i is not None:
            self.matched.add(i)
        return i

    def mark_present(self, meta: dict[str, np.ndarray]) -> None:
        """Count as matched the rows that match spectra already in a store (``meta``: its columns)."""
        n = len(meta.get("id", []))
        blank = np.full(n, "")
        for sid, source, obj in zip(meta.get("id", blank), meta.get("source", blank), meta.get("object", blank)):
            self.match({"id": str(sid), "source": str(source), "object": str(obj).strip()})

    def lookup(self, meta: dict) -> dict:
        """The spectrum's labels ``{column: float or str}`` (NaN / "" when the table has no row for it)."""
        i = self.match(meta)
        out: dict = {}
        for name, values in self.table.numeric.items():
            out[f"label_{name}" if name in RESERVED else name] = float(values[i]) if i is not None else np.nan
        for name, cells in self.table.text.items():
            out[f"label_{name}" if name in RESERVED else name] = cells[i] if i is not None else ""
        if i is not None and not meta["object"] and "object" in self.table.keys:
            out["object"] = self.table.rows[i]["object"].strip()  # files without an OBJECT card
        return out

    def unmatched(self) -> list[str]:
        key = self.table.keys[0]
        return [self.table.rows[i][key] for i in range(len(self.table.rows)) if i not in self.matched]


RESERVED = {
    "id",
    "object",
    "instrument",
    "source",
    "product",
    "raw_median",
    "counts",
    "low_flux",
    "coverage",
    "n_masked_range",
    "snr",
    "mjd",
    "exptime",
    "airmass",
    "berv",
    "drs_rv",
    "date_obs",
    "crc32",
}
