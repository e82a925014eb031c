"""Which latent nodes carry information: MAD of μ (the paper's tool) and KL to the prior.

Arrays in, named dicts out; ``mu`` and ``logvar`` are ``(N, D)``: N spectra, D nodes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MAD_THRESHOLD = 0.02  # the released model: MAD > 0.02 -> 6 informative nodes
KL_THRESHOLD = 0.05  # nats; a node this close to the prior carries (almost) nothing


def mad(mu: np.ndarray) -> np.ndarray:
    """``(D,)`` median absolute deviation of μ over spectra (scale 1, as scipy's default)."""
    mu = np.asarray(mu, dtype=np.float64)
    return np.asarray(np.median(np.abs(mu - np.median(mu, axis=0)), axis=0))


def kl_to_prior(mu: Any, logvar: Any) -> Any:
    """KL(N(μ, σ²) ‖ N(0, 1)) in nats, element by element, from μ and log σ² of one shape: numpy arrays or torch
    tensors (the training loss uses this too: one formula)."""
    var = logvar.exp() if hasattr(logvar, "exp") else np.exp(logvar)
    return 0.5 * (mu**2 + var - 1.0 - logvar)


def kl_per_node(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """``(D,)`` KL(q(z_d|x) ‖ N(0, 1)) averaged over spectra, in nats."""
    mu, logvar = np.asarray(mu, np.float64), np.asarray(logvar, np.float64)
    return np.asarray(kl_to_prior(mu, logvar).mean(axis=0))


def informative_nodes(
    mu: np.ndarray,
    logvar: np.ndarray | None = None,
    threshold: float = MAD_THRESHOLD,
    kl_threshold: float = KL_THRESHOLD,
    criterion: str = "auto",
) -> dict[str, Any]:
    """Rank nodes by MAD and pick the informative ones.

    Criteria:
        ``mad``: MAD > threshold (the paper's).
        ``kl``: mean KL > kl_threshold.
        ``both``: both at once.
        ``auto`` (default): ``both`` when log-variances are given, else ``mad``. MAD alone
        calls a node informative whenever μ varies, even if the posterior is as wide as the
        prior and the decoder ignores it (measured: 31 of 32 nodes above MAD 0.02 in a run
        whose total KL was 2.1 nats); KL alone ignores the paper's scale. Together they keep
        the paper's meaning and drop near-prior nodes.

    Returns ``{"threshold", "kl_threshold", "criterion", "values": (D,) MAD, "kl": (D,) or
    None, "informative": node indices, highest MAD first, "order": all nodes by MAD}``.
    """
    values = mad(mu)
    kl = kl_per_node(mu, logvar) if logvar is not None else None
    if criterion == "auto":
        criterion = "both" if kl is not None else "mad"
    if criterion in ("kl", "both") and kl is None:
        raise ValueError(f"criterion {criterion!r} needs log-variances")
    keep = {
        "mad": values > threshold,
        "kl": kl > kl_threshold if kl is not None else None,
        "both": (values > threshold) & (kl > kl_threshold) if kl is not None else None,
    }.get(criterion)
    if keep is None:
        raise ValueError(f"unknown criterion {criterion!r}; use mad, kl, both or auto")
    order = np.argsort(-values, kind="stable")
    return {
        "threshold": threshold,
        "kl_threshold": kl_threshold,
        "criterion": criterion,
        "values": values,
        "kl": kl,
        "informative": [int(i) for i in order if keep[i]],
        "order": [int(i) for i in order],
    }
