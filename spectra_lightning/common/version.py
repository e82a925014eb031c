"""The installed version, in one place (the package's ``__version__``, ``--version``, model cards)."""

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("spectra-lightning")
except PackageNotFoundError:  # a source tree on the path, not installed
    VERSION = "unknown"
