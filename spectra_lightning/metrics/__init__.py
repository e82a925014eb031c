"""Latent-space metrics as pure functions over arrays (no Lightning, no torch)."""

from spectra_lightning.metrics.latent import KL_THRESHOLD, MAD_THRESHOLD, informative_nodes, kl_per_node, mad
from spectra_lightning.metrics.mi import (
    PAPER_BINS,
    best_and_gap,
    best_pair,
    clean_label,
    ksg,
    mi_histogram,
    mi_ksg,
    mi_ksg_table,
    mi_pair_matrix,
)

__all__ = [
    "KL_THRESHOLD",
    "MAD_THRESHOLD",
    "PAPER_BINS",
    "best_and_gap",
    "best_pair",
    "clean_label",
    "informative_nodes",
    "kl_per_node",
    "ksg",
    "mad",
    "mi_histogram",
    "mi_ksg",
    "mi_ksg_table",
    "mi_pair_matrix",
]
