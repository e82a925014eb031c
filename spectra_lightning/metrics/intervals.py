"""How sure an MI estimate is: a standard error, the estimator's null level at that n, and the rule that calls a
label's best node *distinct* from the runner-up.

Pure functions over arrays; ``estimate(x (N, D), y (N,)) -> (D,)`` is any per-column MI estimator (the
report passes :func:`~spectra_lightning.metrics.mi.mi_ksg`).

* Standard error: the spread of the estimate over ``reps`` half-samples drawn without replacement (the
  delete-n/2 jackknife). For a statistic that averages over points, the standard deviation of half-sample
  estimates without replacement equals the full sample's standard error (the finite-population factor
  √(1 − ½) cancels the √2 of the halved n). A bootstrap with replacement is not used: its repeated points sit at
  distance 0 from each other, which a k-nearest-neighbour estimator reads as extra information.
* Null: the largest estimate over all nodes between ``x`` and ``reps`` random permutations of ``y`` (no
  dependence, same n and marginals): its mean and 95th percentile — what the best of D nodes reaches by chance.
* Distinct (:data:`DISTINCT_RULE`): the best node's interval lies wholly above the runner-up's interval (the
  runner-up among *all* nodes: a collapsed node counts with the MI it has) and above that null's 95th percentile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Z95 = 1.959963984540054
DISTINCT_RULE = (
    "best − 1.96·se > max(runner-up among all nodes + 1.96·se, 95th percentile of the best of all nodes' MI with "
    "the label permuted)"
)

Estimator = Callable[[np.ndarray, np.ndarray], np.ndarray]


def half_sample_se(estimate: Estimator, x: np.ndarray, y: np.ndarray, reps: int = 30, seed: int = 0) -> np.ndarray:
    """``(D,)`` standard errors of ``estimate(x (N, D), y (N,))`` from ``reps`` half-samples without replacement."""
    rng = np.random.default_rng([seed, 11])
    n = len(y)
    half = n // 2
    draws = [estimate(x[idx], y[idx]) for idx in (rng.permutation(n)[:half] for _ in range(reps))]
    return np.asarray(np.std(draws, axis=0, ddof=1))


def permutation_null(
    estimate: Estimator, x: np.ndarray, y: np.ndarray, reps: int = 30, seed: int = 0
) -> dict[str, float]:
    """The largest estimate over the columns of ``x (N, D)`` with permuted ``y (N,)``: ``{"mean", "p95", "reps"}``
    (nats) — with D columns, what the best of them reaches by chance."""
    rng = np.random.default_rng([seed, 13])
    values = np.array([float(np.max(estimate(x, y[rng.permutation(len(y))]))) for _ in range(reps)])
    return {"mean": float(values.mean()), "p95": float(np.percentile(values, 95)), "reps": reps}


def interval(value: float, se: float) -> list[float]:
    """``[value − 1.96·se, value + 1.96·se]``, the lower end clipped at 0 (MI is never negative)."""
    return [float(max(value - Z95 * se, 0.0)), float(value + Z95 * se)]


def distinct(best: dict[str, Any], runner_up: dict[str, Any] | None, null_p95: float) -> bool:
    """:data:`DISTINCT_RULE` for ``{"value", "se"}`` dicts (no runner-up: only the null counts)."""
    low = best["value"] - Z95 * best["se"]
    above = runner_up["value"] + Z95 * runner_up["se"] if runner_up is not None else 0.0
    return bool(low > max(above, null_p95))


def label_intervals(
    estimate: Estimator,
    codes: np.ndarray,
    y: np.ndarray,
    best: int | None,
    runner_up: int | None,
    values: np.ndarray,
    reps: int = 30,
    seed: int = 0,
) -> dict[str, Any]:
    """Intervals of a label's best and runner-up node, the null at this n over all D nodes and the distinct
    verdict.

    ``codes (N, D)``, ``y (N,)`` (finite), ``values (D,)`` the full-sample estimates. Returns ``{"best":
    {"node", "value", "se", "interval"}, "runner_up": {...} or None, "null": {"mean", "p95", "reps", "n",
    "over_nodes"}, "distinct": bool, "rule": str, "se_method": str}``.
    """
    if best is None:
        return {"best": None, "runner_up": None, "null": None, "distinct": False, "rule": DISTINCT_RULE}
    nodes = [best] + ([runner_up] if runner_up is not None else [])
    se = half_sample_se(estimate, codes[:, nodes], y, reps, seed)
    entries = [
        {"node": int(node), "value": float(values[node]), "se": float(s), "interval": interval(float(values[node]), s)}
        for node, s in zip(nodes, se)
    ]
    null = {**permutation_null(estimate, codes, y, reps, seed), "n": len(y), "over_nodes": codes.shape[1]}
    second = entries[1] if len(entries) > 1 else None
    return {
        "best": entries[0],
        "runner_up": second,
        "null": null,
        "distinct": distinct(entries[0], second, null["p95"]),
        "rule": DISTINCT_RULE,
        "se_method": f"half-samples without replacement ({reps})",
    }
