"""The web explorer: the queries (``app``), the stdlib HTTP server (``server``), headless-browser checks and
screenshots (``headless``), the ``explore`` command (``command``) and the page (``static/``)."""

from spectra_lightning.common.moved import names_moved_to

# 0.4's names of the module spectra_lightning.explorer (a package now), importing for one release with a warning
__getattr__ = names_moved_to(__name__, {"Explorer": "app", "ExploreError": "app", "envelope": "app"})
