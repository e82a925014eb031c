"""spectra_lightning: learn stellar parameters from large archives of spectra without labels.

From Python (docs/api.md)::

    import spectra_lightning as sl
    model = sl.load("RUN/checkpoints/last.ckpt")   # or an exported model file, or its URL
    codes = model.encode(wave, flux)               # -> codes.mu (N, D), codes.sigma, codes.informative

The package is in wings that follow the pipeline (docs/architecture.md): ``physics`` (the grid), ``store``,
``ingest``, ``data_modules``, ``model``, ``metrics``, ``analysis``, ``explorer``, ``callbacks``, ``api`` and ``cli``
on top.
"""

from typing import Any

from spectra_lightning.common import moved
from spectra_lightning.common.version import VERSION

__version__ = VERSION

moved.install()  # 0.4's module paths (spectra_lightning.nets ...) import, with a warning, for one release

_API = ("load", "Model", "Codes", "SpectraStore")  # imported on first use: `import spectra_lightning` stays light


def __getattr__(name: str) -> Any:
    if name in _API:
        from spectra_lightning import api

        return getattr(api, name)
    raise AttributeError(f"module 'spectra_lightning' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
