"""The process's memory allocator, set for training: freed activations stay mapped for the next step.

Each training step allocates and frees the same few-MB activation tensors. With glibc's defaults those blocks
come from fresh ``mmap`` calls or from a heap top that ``free`` hands back to the kernel, so every step touches
its activations' pages for the first time again: a page fault per 4 KiB. On the quickstart step (2 CPU cores) that
was about a quarter of the step's time (``benchmarks/train_step.py``). Raising glibc's mmap threshold to its
ceiling and its trim threshold far above a step's memory keeps the freed pages mapped and reused; the peak memory
does not grow (the pages kept are the ones the step already used), and the arithmetic is unchanged.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # mallopt(3) parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc's ceiling on 64-bit (4 MiB × sizeof(long)): larger blocks are always mmapped
TRIM_THRESHOLD = 2**30  # free heap tops are returned to the kernel only beyond 1 GiB


def keep_freed_memory(trim: int = TRIM_THRESHOLD) -> bool:
    """Keep freed blocks of up to 32 MiB mapped for reuse (glibc's ``mallopt``), and free heap tops up to ``trim``
    bytes (training: 1 GiB; ingest's reading workers, which each hold a few files' arrays: less); True where it
    took effect.

    A no-op returning False where the C library is not glibc (macOS, Windows, musl). Process-wide and
    irreversible; DataLoader workers forked afterwards inherit it.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):  # a C library without mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, trim))
