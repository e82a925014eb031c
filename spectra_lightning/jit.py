"""Optional numba: ``njit`` compiles where numba is installed (the ``[fast]`` extra) and is a no-op
decorator elsewhere; ``available`` says which. Kernels built with it are only called when available."""

try:
    from numba import njit
    available = True
except ImportError:  # pragma: no cover - exercised where numba is absent
    available = False

    def njit(*args, **kwargs):
        return (lambda f: f) if not args or not callable(args[0]) else args[0]

__all__ = ["available", "njit"]
