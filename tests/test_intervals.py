"""Intervals, null levels and the distinct rule, against Gaussians whose MI is known exactly."""

import numpy as np

from spectra_lightning.metrics.intervals import half_sample_se, label_intervals, permutation_null
from spectra_lightning.metrics.mi import best_pair, mi_ksg


def gaussian(n, rhos, seed):
    """``y (N,)`` and ``codes (N, len(rhos))`` with corr(code_j, y) = rhos[j]; MI_j = -½ ln(1 - ρ_j²)."""
    rng = np.random.default_rng(seed)
    y = rng.standard_normal(n)
    codes = np.column_stack([r * y + np.sqrt(1 - r**2) * rng.standard_normal(n) for r in rhos])
    return codes, y


def estimate(x, y):
    return mi_ksg(x, y, k=3)


def test_the_standard_error_matches_the_spread_over_independent_samples():
    rho, n = 0.8, 400
    values, ses = [], []
    for seed in range(24):
        codes, y = gaussian(n, [rho], seed)
        values.append(estimate(codes, y)[0])
        ses.append(half_sample_se(estimate, codes, y, reps=20, seed=seed)[0])
    spread = np.std(values, ddof=1)
    assert 0.6 < np.mean(ses) / spread < 1.6, (np.mean(ses), spread)


def test_the_interval_covers_the_true_mi():
    rho, n = 0.7, 400
    truth = -0.5 * np.log(1 - rho**2)
    covered = 0
    for seed in range(20):
        codes, y = gaussian(n, [rho, 0.0], seed)
        r = label_intervals(estimate, codes, y, 0, 1, estimate(codes, y), reps=20, seed=seed)
        lo, hi = r["best"]["interval"]
        covered += lo <= truth <= hi
    assert covered >= 15, covered  # ~19 of 20 expected at 95 %; KSG's small bias at n = 400 costs a few


def test_the_null_is_the_estimator_without_dependence():
    codes, y = gaussian(300, [0.0], 1)
    null = permutation_null(estimate, codes, y, reps=40)
    assert 0 <= null["mean"] < 0.05 and null["mean"] <= null["p95"] < 0.15
    hits = sum(estimate(*gaussian(300, [0.0], s))[0] > null["p95"] for s in range(2, 42))
    assert hits <= 6  # independent data exceed the null's 95th percentile about 1 time in 20


def test_the_null_is_the_best_of_all_nodes_by_chance():
    """With 16 nodes and no dependence, the best of them by chance sits higher than one node's null: the level a
    label's best node must pass."""
    rng = np.random.default_rng(9)
    codes, y = rng.standard_normal((300, 16)), rng.standard_normal(300)
    one, every = permutation_null(estimate, codes[:, :1], y, reps=30), permutation_null(estimate, codes, y, reps=30)
    assert every["p95"] > one["p95"] and every["mean"] > 2 * one["mean"]


def test_distinct_needs_a_real_gap_and_a_signal():
    codes, y = gaussian(500, [0.95, 0.5], 3)
    r = label_intervals(estimate, codes, y, 0, 1, estimate(codes, y), reps=20)
    assert r["distinct"] and r["best"]["interval"][0] > r["runner_up"]["interval"][1]
    codes, y = gaussian(500, [0.6, 0.58], 4)  # two equal carriers: never distinct
    r = label_intervals(estimate, codes, y, 0, 1, estimate(codes, y), reps=20)
    assert not r["distinct"]
    codes, y = gaussian(500, [0.0], 5)  # a single node but no signal: below the null
    r = label_intervals(estimate, codes, y, 0, None, estimate(codes, y), reps=20)
    assert not r["distinct"] and r["runner_up"] is None


def test_a_pair_is_never_below_its_best_member_beyond_the_interval():
    for seed in range(6):
        codes, y = gaussian(400, [0.995, 0.1, 0.3], seed)  # ~2.3 nat: where the 2-D estimate sags
        values = estimate(codes, y)
        r = label_intervals(estimate, codes, y, 0, 2, values, reps=20, seed=seed)
        pair = best_pair(codes, y, [0, 1, 2])
        assert 0 in pair["best_pair"]
        assert pair["value"] >= r["best"]["interval"][0], (pair, r["best"])
