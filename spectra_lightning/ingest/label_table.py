"""Label tables: one reader and one set of rules for every command that joins labels to spectra.

``ingest --labels`` (joined on id, file, MILES id or object) and ``analyze --labels`` (joined on the codes'
ids) both read CSVs through :class:`LabelTable`. The rules:

- The file is UTF-8, with or without a byte-order mark (a spreadsheet's "CSV UTF-8"); header names are
  stripped of surrounding spaces.
- A cell is *missing* when it is empty or one of :data:`MISSING` (any case): it becomes NaN.
- A cell is a *number* when it is a plain decimal number (``5777``, ``-0.18``, ``+0.22``, ``1e-3``), an
  approximate one (``~3600`` -> 3600), or alternatives separated by ``|`` (``3203|3344`` -> 3203, the first);
  surrounding spaces are ignored.
- A column is numeric when at least as many of its non-missing cells are numbers as are not (a column of
  missing cells only is numeric, all NaN); any other
  cell in a numeric column is an error naming the file, line, column and value (a decimal comma such as
  ``4,49`` too: it is never truncated). Columns named in ``text`` are kept as text whatever they hold;
  columns without a single number are text.
- The join key (the first of the table's key columns that the file has) must be unique: repeated values
  are an error listing them. A secondary key column (e.g. ``object`` in a table keyed by ``file``) is used
  for joining only where its value is unique.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

MISSING = frozenset({"", "nan", "na", "n/a", "null", "none", "-", "--", "?"})
_NUMBER = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")
_DECIMAL_COMMA = re.compile(r"^[-+]?\d+,\d+$")


class LabelTableError(ValueError):
    """A label table that cannot be used; the message names the file (and line, column, value) and why."""


def parse_cell(cell: str | None) -> float | None:
    """A cell's number by the module's rules: a float, NaN when missing, None when it is not a number."""
    text = (cell or "").strip()
    if text.lower() in MISSING:
        return math.nan
    text = text.split("|", 1)[0].strip().removeprefix("~").strip()
    return float(text) if _NUMBER.match(text) else None


def read_csv(path: str | Path, text: str | None = None) -> tuple[list[str], list[dict[str, str]], list[int]]:
    """``(header, rows, line numbers)`` of a CSV file (``text``: its content, if already read)."""
    try:
        if text is None:
            with open(path, encoding="utf-8-sig", newline="") as f:
                text = f.read()
        reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
        rows, lines = [], []
        for row in reader:
            rows.append(row)
            lines.append(reader.line_num)
        header = [(h or "").strip() for h in reader.fieldnames or []]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise LabelTableError(f"{path}: cannot read as CSV ({getattr(e, 'strerror', None) or e})") from None
    if not header:
        raise LabelTableError(f"{path}: empty CSV (no header line)")
    raw = reader.fieldnames or []
    rows = [{h: (r.get(k) or "") for h, k in zip(header, raw)} for r in rows]
    return header, rows, lines


class LabelTable:
    """A label table: ``numeric`` ``{column: (R,) float}`` and ``text`` ``{column: [str]}`` over its R rows,
    joined through :meth:`row_of`.

    Args:
        path: the CSV (or, with ``rows``, the name to show in messages).
        keys: the columns a spectrum can be joined on, in order of preference; the first one the file has
            is the primary key (unique), the others are used where their value is unique.
        text: columns to keep as text even where they hold numbers.
        normalise: ``(key column, cell) -> the value joined on`` (e.g. a file name without its extension).
        rows: already parsed ``(header, rows)`` (e.g. from a format that is not CSV); then ``path`` is not read.
    """

    def __init__(
        self,
        path: str | Path,
        keys: Iterable[str] = ("id",),
        text: Iterable[str] = (),
        normalise: Callable[[str, str], str] | None = None,
        rows: tuple[list[str], list[dict[str, str]]] | None = None,
    ):
        self.path = str(path)
        if rows is None:
            self.header, self.rows, self.lines = read_csv(path)
        else:
            self.header, self.rows = rows
            self.lines = list(range(2, len(self.rows) + 2))
        if not self.rows:
            raise LabelTableError(f"{path}: empty label table (a header and no rows)")
        self._normalise = normalise or (lambda key, value: value.strip())
        self.keys = [k for k in keys if k in self.header]
        unknown_text = sorted(set(text) - set(self.header))
        if unknown_text:
            raise LabelTableError(f"{path}: no column {unknown_text[0]!r} to keep as text (header: {self.header})")
        self.numeric: dict[str, np.ndarray] = {}
        self.text: dict[str, list[str]] = {}
        for column in self.header:
            if column and column not in self.keys:
                self._add_column(column, force_text=column in set(text))
        self.index = self._build_index()

    def require_key(self, wanted: Iterable[str]) -> None:
        """Fail with one line when the table has none of the ``wanted`` key columns (showing its header)."""
        if not self.keys:
            raise LabelTableError(
                f"{self.path}: needs one of the columns {', '.join(wanted)} to join on; the header read is "
                f"{self.header}"
            )

    def _add_column(self, column: str, force_text: bool) -> None:
        cells = [r[column] for r in self.rows]
        values = [parse_cell(c) for c in cells]
        bad = [i for i, v in enumerate(values) if v is None]
        numbers = sum(v is not None and not math.isnan(v) for v in values)
        if force_text or (bad and (numbers == 0 or numbers < len(bad))):
            self.text[column] = [c.strip() for c in cells]
            return
        if bad:
            i = bad[0]
            cell = cells[i].strip()
            why = "a decimal comma (write 4.49, not 4,49)" if _DECIMAL_COMMA.match(cell) else "not a number"
            more = f" ({len(bad) - 1} more such cells)" if len(bad) > 1 else ""
            raise LabelTableError(
                f"{self.path}: line {self.lines[i]}, column {column!r}: {cell!r} is {why}{more}; missing values "
                f"are empty, NaN, NA, null or -; keep the column as text with --labels-text {column}"
            )
        self.numeric[column] = np.array(values, dtype=np.float64)

    def _build_index(self) -> dict[str, dict[str, int]]:
        index: dict[str, dict[str, int]] = {}
        for n, key in enumerate(self.keys):
            seen: dict[str, list[int]] = {}
            for i, row in enumerate(self.rows):
                value = self._normalise(key, row[key])
                if value:
                    seen.setdefault(value, []).append(i)
            repeated = {v: rows for v, rows in seen.items() if len(rows) > 1}
            if repeated and n == 0:
                listed = "; ".join(
                    f"{v!r} (lines {', '.join(str(self.lines[i]) for i in rows)})"
                    for v, rows in list(repeated.items())[:5]
                )
                more = f" and {len(repeated) - 5} more" if len(repeated) > 5 else ""
                raise LabelTableError(
                    f"{self.path}: {len(repeated)} value(s) of the key column {key!r} appear more than once: "
                    f"{listed}{more}; keep one row per spectrum"
                )
            index[key] = {v: rows[0] for v, rows in seen.items() if len(rows) == 1}
        return index

    def row_of(self, candidates: dict[str, str]) -> int | None:
        """The row whose key matches: ``candidates`` maps key columns to the spectrum's (normalised) value,
        tried in the table's key order; None when no key matches."""
        for key in self.keys:
            value = candidates.get(key)
            i = self.index[key].get(value) if value else None
            if i is not None:
                return i
        return None

    def column(self, name: str) -> np.ndarray | list[str]:
        if name in self.numeric:
            return self.numeric[name]
        if name in self.text:
            return self.text[name]
        raise LabelTableError(f"{self.path}: no label column {name!r} (header: {self.header})")
