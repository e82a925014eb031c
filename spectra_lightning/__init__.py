"""spectra_lightning: learn stellar parameters from large archives of spectra without labels.

The package is in wings that follow the pipeline (docs/architecture.md): ``physics`` (the grid), ``store``,
``ingest``, ``data_modules``, ``model``, ``metrics``, ``analysis``, ``explorer``, ``callbacks`` and ``cli`` on top.
"""

from spectra_lightning.common import moved

moved.install()  # 0.2's module paths (spectra_lightning.nets ...) import, with a warning, for one release
