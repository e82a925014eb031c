"""Optional numba: ``njit(...)`` compiles where numba is installed (the ``[fast]`` extra) and leaves the
function as it is elsewhere; ``available`` says which. Kernels built with it are only called when available."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])

try:
    _numba: Any = importlib.import_module("numba")
    available = True
except ImportError:  # pragma: no cover - exercised where numba is absent
    _numba, available = None, False


def njit(**options: Any) -> Callable[[F], F]:
    """``@njit(nogil=True, cache=True)``: numba's ``njit`` with these options, or no change without numba."""
    if _numba is None:
        return lambda f: f
    return cast(Callable[[F], F], _numba.njit(**options))


__all__ = ["available", "njit"]
