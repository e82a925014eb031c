"""spectra_lightning: learn stellar parameters from large archives of spectra without labels.

The package is in wings that follow the pipeline (docs/architecture.md): ``physics`` (the grid), ``store``,
``ingest``, ``data_modules``, ``model``, ``metrics``, ``analysis``, ``explorer``, ``callbacks`` and ``cli`` on top.
"""

from importlib.metadata import PackageNotFoundError, version

from spectra_lightning.common import moved

try:
    __version__ = version("spectra-lightning")
except PackageNotFoundError:  # a source tree on the path, not installed
    __version__ = "unknown"

moved.install()  # 0.4's module paths (spectra_lightning.nets ...) import, with a warning, for one release
