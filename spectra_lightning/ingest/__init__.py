"""Spectra into a store: readers (one per file format, behind one registry), label tables, the synthetic
generator, and the parallel, resumable ingest pipeline (``ingest.pipeline``) with its command
(``ingest.command``). Readers never write; the pipeline does."""

from spectra_lightning.common.moved import names_moved_to

# 0.4's names of the module spectra_lightning.ingest (a package now), importing for one release with a warning
__getattr__ = names_moved_to(__name__, {"ingest": "pipeline", "expand_inputs": "pipeline", "main": "command"})
