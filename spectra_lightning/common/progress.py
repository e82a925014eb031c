"""Progress on long work: a bar on a terminal; in a log file (a batch job's, a pipe) a line at each tenth of the
work instead of thousands of carriage-return updates (as ``fit`` prints one line per epoch there)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO


class LineProgress:
    """tqdm's interface as far as the commands use it (``update``, ``set_postfix_str``, a context, iteration),
    printing ``DESC: K/N UNITs (P %) in S s`` at every tenth of ``total`` and at the end."""

    def __init__(
        self,
        iterable: Iterable | None = None,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        stream: TextIO | None = None,
    ):
        self.iterable = iterable
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)  # type: ignore[arg-type]
        self.desc, self.unit, self.stream = desc, unit, stream or sys.stderr
        self.n, self.postfix, self.start, self.shown = 0, "", time.perf_counter(), -1

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.total:
            tenth = int(10 * self.n / self.total)
            if tenth > self.shown:
                self.shown = tenth
                self._line()

    def _line(self) -> None:
        share = f" ({100 * self.n / self.total:.0f} %)" if self.total else ""
        extra = f", {self.postfix}" if self.postfix else ""
        elapsed = time.perf_counter() - self.start
        print(
            f"{self.desc}: {self.n:,}/{self.total or '?':,} {self.unit}s{share} in {elapsed:.0f} s{extra}",
            file=self.stream,
            flush=True,
        )

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text

    def close(self) -> None:
        if self.total is None or self.shown < 10:
            self._line()

    def __iter__(self) -> Iterator:
        assert self.iterable is not None
        for item in self.iterable:
            yield item
            self.update(1)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            self.close()


def progress(
    iterable: Iterable | None = None, *, total: int | None = None, desc: str, unit: str, enabled: bool = True
) -> Any:
    """A tqdm bar on a terminal, :class:`LineProgress` in a log; nothing when not ``enabled``."""
    from tqdm.auto import tqdm

    if not enabled or sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not enabled)
    return LineProgress(iterable, total, desc, unit)
