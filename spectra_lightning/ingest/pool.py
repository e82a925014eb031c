"""Reading processes: files read and put on the grid in worker processes, a few per task, results taken back in
input order, rows crossing to the writer through shared memory (Linux) rather than pickles."""

from __future__ import annotations

import ctypes
import mmap
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from spectra_lightning.common.allocator import keep_freed_memory
from spectra_lightning.ingest.placement import Placement, process
from spectra_lightning.physics import grid_kernel

TASK_FILES = 8  # files per worker task: enough to amortise a task's overhead, few enough to keep workers even


# what every file's task shares, set once per worker process by the pool's initializer (a task then pickles only
# its paths): the placement rules and the shared-memory row slots
_worker_setup: tuple[Placement, np.ndarray | None] | None = None


def _init_worker(how: Placement, slots: np.ndarray | None, parent: int) -> None:
    global _worker_setup
    _worker_setup = (how, slots)
    _follow(parent)
    # every file allocates ~20 MB of arrays of a few MB each: fresh pages cost as much as the grid work itself
    keep_freed_memory(trim=256 << 20)


def _follow(parent: int) -> None:
    """In a worker: end with the ingest process should it be killed (``kill -9``), rather than wait
    forever for tasks (each forked worker holds the task queue's write end too, so it never sees the
    end of the queue). Linux only (``prctl``); elsewhere an orphaned worker waits until killed."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: this signal when the parent ends
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it ended before prctl
        os._exit(1)


def _worker(group: int, paths: list[Path]) -> list[tuple]:
    """One task: a few files in a row (one round trip to the worker for several files). With shared
    ``slots``, each row is written into ``slots[group, j]`` and sent as None (the writer reads it there)."""
    assert _worker_setup is not None, "a worker runs after _init_worker"
    how, slots = _worker_setup
    if slots is None:
        return [process(p, how) for p in paths]
    results = [process(p, how, slots[group, j]) for j, p in enumerate(paths)]
    return [(r[0], None, r[2]) if r[0] == "ok" else r for r in results]  # "many": rows pickled, not in slots


def _shared_slots(groups: int, length: int, dtype) -> np.ndarray | None:
    """``(groups, TASK_FILES, L)`` rows in memory shared with forked workers (Linux), or None elsewhere
    (rows are then pickled). Rows cross to the writer without pickling, a pipe and a fresh array each."""
    if not sys.platform.startswith("linux"):  # macOS: forking is unsafe with its system libraries
        return None
    shape = (groups, TASK_FILES, length)
    return np.frombuffer(mmap.mmap(-1, int(np.prod(shape)) * np.dtype(dtype).itemsize), dtype).reshape(shape)


class ReaderPool:
    """Files read and put on the grid in worker processes (even with one worker: this process then only
    writes), ``TASK_FILES`` per task, results taken in input order with a bounded number of tasks in
    flight. On Linux each task writes its rows into its own group of shared-memory slots, free again once
    the caller has copied them (rows cross without pickling). Use as a context manager."""

    def __init__(self, paths: list[Path], how: Placement, workers: int):
        self.paths, self.in_flight = paths, 2 * workers + 1
        self.slots = _shared_slots(self.in_flight, how.grid.length, how.dtype)
        grid_kernel.warm()  # once here rather than in every (forked) worker
        context = multiprocessing.get_context("fork") if self.slots is not None else None
        self.pool = ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(how, self.slots, os.getpid())
        )

    def __iter__(self) -> Iterator[tuple[int, tuple]]:
        """``(input index, result)`` in input order; an ``ok`` result's flux row ``(L,)`` is valid only until
        the next item is asked for (it may live in a slot the next task reuses)."""
        queue: deque = deque()
        free_groups = list(range(self.in_flight))
        for start in range(0, len(self.paths) + TASK_FILES, TASK_FILES):
            task = range(start, min(start + TASK_FILES, len(self.paths)))
            while queue and (len(queue) == self.in_flight or not task):
                done, group, fut = queue.popleft()
                for j, (i, result) in enumerate(zip(done, fut.result())):
                    if result[0] == "ok" and result[1] is None and self.slots is not None:
                        result = (result[0], self.slots[group, j], result[2])
                    yield i, result
                free_groups.append(group)
            if task:
                group = free_groups.pop()
                queue.append((task, group, self.pool.submit(_worker, group, [self.paths[i] for i in task])))

    def __enter__(self) -> ReaderPool:
        return self

    def __exit__(self, *exc) -> None:
        self.pool.shutdown(cancel_futures=True)
